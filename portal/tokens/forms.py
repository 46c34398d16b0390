"""Forms of the token pages: creating a long-lived token and confirming a revocation."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django import forms

from tokens.errors import TokenInvalid
from tokens.models import Permission, TokenType
from tokens.services import DEFAULT_LIFETIME_DAYS
from trustportal.models import Organization, Runner, Team

LIFETIMES = (
    ("30", "30 days"),
    ("90", "90 days"),
    ("365", "1 year"),
    ("never", "Never expires (not recommended)"),
)


class TokenCreateForm(forms.Form):
    """A long-lived organization, team or runner token, made by an org admin."""

    type = forms.ChoiceField(
        choices=[
            (TokenType.ORGANIZATION, "Organization"),
            (TokenType.TEAM, "Team"),
            (TokenType.RUNNER, "Runner"),
        ],
        initial=TokenType.ORGANIZATION,
    )
    name = forms.CharField(max_length=200)
    description = forms.CharField(max_length=1000, required=False)
    permission = forms.ChoiceField(
        choices=Permission.choices,
        initial=Permission.STANDARD,
        required=False,
        help_text="Organization tokens only.",
    )
    team = forms.ChoiceField(choices=(), required=False, help_text="Team tokens only.")
    runner = forms.ChoiceField(choices=(), required=False, help_text="Runner tokens only.")
    lifetime = forms.ChoiceField(choices=LIFETIMES, initial=str(DEFAULT_LIFETIME_DAYS))

    def __init__(self, *args: Any, organization: Organization, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        blank = [("", "—")]
        teams = Team.objects.filter(organization=organization).order_by("name")
        runners = Runner.objects.filter(organization=organization).order_by("name")
        self.fields["team"].choices = blank + [(t.name, t.name) for t in teams]  # type: ignore[attr-defined]
        self.fields["runner"].choices = blank + [(r.name, r.name) for r in runners]  # type: ignore[attr-defined]
        self.has_teams = teams.exists()
        self.has_runners = runners.exists()

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        kind = data.get("type")
        if kind == TokenType.TEAM and not data.get("team"):
            self.add_error(
                "team",
                "Choose a team."
                if self.has_teams
                else "This organization has no team yet: create one under Members & teams first.",
            )
        if kind == TokenType.RUNNER and not data.get("runner"):
            self.add_error(
                "runner",
                "Choose a runner."
                if self.has_runners
                else "This organization has no runner yet: add one in the administration first.",
            )
        return data

    def expires(self, now: datetime) -> datetime | None:
        lifetime = self.cleaned_data["lifetime"]
        return None if lifetime == "never" else now + timedelta(days=int(lifetime))

    def add_service_error(self, error: TokenInvalid) -> None:
        """Show a service refusal next to the field it names (or above the form)."""
        field = error.field if error.field in self.fields else None
        self.add_error(field, error.message)


class RevokeForm(forms.Form):
    """The confirmation of a revocation: why, and an explicit yes."""

    reason = forms.CharField(max_length=500, required=False)
    confirm = forms.BooleanField(
        required=True, error_messages={"required": "Tick the box to confirm."}
    )
