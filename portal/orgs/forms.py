"""Forms of the members and teams page (input checks only; the services decide the rest)."""

from __future__ import annotations

from django import forms
from django.contrib.auth.validators import UnicodeUsernameValidator

from trustportal.models import Role, slug_validator


class MemberCreateForm(forms.Form):
    username = forms.CharField(
        max_length=150,
        validators=[UnicodeUsernameValidator()],
        help_text="A new account: letters, digits and @ . + - _ only.",
    )
    email = forms.EmailField(required=False, label="E-mail")
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class TeamCreateForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        validators=[slug_validator],
        help_text="Used in team tokens' scope (team:<name>): letters, digits, '.', '_' or '-'.",
    )
    display_name = forms.CharField(max_length=200, required=False, label="Display name")


class TeamMemberForm(forms.Form):
    user = forms.TypedChoiceField(coerce=int, label="Member")

    def __init__(self, *args: object, members: list[tuple[int, str]], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["user"].choices = members  # type: ignore[attr-defined]
