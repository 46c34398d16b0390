"""The organization's environment access page: default permission, member creation, roles.

Admins and auditors see it; only organization admins change it (through `environments.grants`,
which records each change in the audit log).
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from environments import access, grants
from environments.errors import EnvironmentConflict, EnvironmentInvalid
from environments.models import DefaultPermission, EnvironmentRole
from trustportal.access import Need, organization_for_user
from trustportal.models import Organization, Role


class SettingsForm(forms.Form):
    default_permission = forms.ChoiceField(
        label="Default permission of members and standard organization tokens",
        choices=DefaultPermission.choices,
    )
    members_can_create = forms.BooleanField(
        label="Members (and standard organization tokens) may create environments",
        required=False,
    )


class RoleForm(forms.Form):
    role_id = forms.CharField(label="Role id (the roleID of trust policies)", max_length=100)
    name = forms.CharField(label="Name", max_length=200)
    scopes = forms.CharField(
        label="Scopes, one a line: environment:open, or environment:write app, or "
        "environment:read app/prod",
        widget=forms.Textarea(attrs={"rows": 4}),
    )

    def scope_list(self) -> list[dict[str, str]]:
        out: list[dict[str, str]] = []
        for line in self.cleaned_data["scopes"].splitlines():
            if not line.strip():
                continue
            scope, _, where = line.strip().partition(" ")
            project, _, environment = where.strip().partition("/")
            item = {"scope": scope}
            if project:
                item["project"] = project
            if environment:
                item["environment"] = environment
            out.append(item)
        return out


def _page(request: HttpRequest, org: str) -> tuple[Organization, bool]:
    organization, role = organization_for_user(request.user, org, Need.READ_CONFIGURATION)
    return organization, role == Role.ADMIN


def _render(
    request: HttpRequest,
    organization: Organization,
    is_admin: bool,
    settings_form: SettingsForm,
    role_form: RoleForm,
    status: int = 200,
) -> HttpResponse:
    roles = EnvironmentRole.objects.filter(organization=organization).prefetch_related("scopes")
    return render(
        request,
        "environments/settings.html",
        {
            "organization": organization,
            "is_admin": is_admin,
            "settings_form": settings_form,
            "role_form": role_form,
            "roles": roles,
        },
        status=status,
    )


@login_required
@require_http_methods(["GET", "POST"])
def environment_settings(request: HttpRequest, org: str) -> HttpResponse:
    organization, is_admin = _page(request, org)
    current = access.settings_of(organization)
    initial = {
        "default_permission": current.default_permission,
        "members_can_create": current.members_can_create,
    }
    settings_form, role_form = SettingsForm(initial=initial), RoleForm()
    if request.method == "POST":
        if not is_admin:
            return HttpResponse("This needs an organization admin.", status=403)
        if "role_id" in request.POST:
            role_form = RoleForm(request.POST)
            if role_form.is_valid():
                try:
                    grants.environment_role_save(
                        organization=organization,
                        role_id=role_form.cleaned_data["role_id"],
                        name=role_form.cleaned_data["name"],
                        scopes=role_form.scope_list(),
                    )
                except (EnvironmentInvalid, EnvironmentConflict) as exc:
                    role_form.add_error(None, exc.message)
                else:
                    messages.success(request, "The role was saved.")
                    return redirect("environments:settings", org=organization.login)
        else:
            settings_form = SettingsForm(request.POST)
            if settings_form.is_valid():
                grants.environment_settings_update(
                    organization=organization,
                    default_permission=settings_form.cleaned_data["default_permission"],
                    members_can_create=settings_form.cleaned_data["members_can_create"],
                )
                messages.success(request, "The environment settings were saved.")
                return redirect("environments:settings", org=organization.login)
        return _render(request, organization, is_admin, settings_form, role_form, status=400)
    return _render(request, organization, is_admin, settings_form, role_form)


@login_required
@require_POST
def environment_role_delete(request: HttpRequest, org: str, role_id: str) -> HttpResponse:
    organization, is_admin = _page(request, org)
    if not is_admin:
        return HttpResponse("This needs an organization admin.", status=403)
    role = EnvironmentRole.objects.filter(organization=organization, role_id=role_id).first()
    if role is not None:
        grants.environment_role_delete(role=role)
        messages.success(request, f"The role '{role_id}' was deleted.")
    return redirect("environments:settings", org=organization.login)
