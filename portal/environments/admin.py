"""Admin for environments, scoped per organization; definitions are edited in the portal.

The admin never edits a definition (that would bypass sealing of secrets and the revision
history): environments are created and edited on the environment pages or through the API.
Here org admins see environments with their revisions, change team and runner grants (saved
through `grants.grant_set`), delete environments, and read the open record.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import Model
from django.forms import BaseInlineFormSet, ModelChoiceField
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from environments import grants
from environments.models import (
    AccessEvent,
    CredentialIssuance,
    Environment,
    Grant,
    Revision,
    SigningKey,
)
from portal.orgs.admin import OrgScopedAdmin, ReadOnlyAdmin, admin_org_ids, readable_org_ids
from trustportal.models import Runner, Team


def _may_view(request: HttpRequest, obj: Model | None) -> bool:
    if request.user.is_superuser:
        return True
    if obj is None:
        return bool(readable_org_ids(request))
    return getattr(obj, "organization_id", None) in readable_org_ids(request)


class RevisionInline(admin.TabularInline[Revision, Environment]):
    """Revisions, read-only: history is never edited."""

    model = Revision
    extra = 0
    can_delete = False
    fields = ("number", "created", "creator_login", "creator_token")
    readonly_fields = fields
    ordering = ("-number",)

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return _may_view(request, obj)


class GrantForm(forms.ModelForm[Grant]):
    """One grant row: a team or a runner of the environment's organization, and a level."""

    class Meta:
        model = Grant
        fields = ("team", "runner", "permission")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        team, runner = data.get("team"), data.get("runner")
        if (team is None) == (runner is None):
            raise forms.ValidationError("Choose a team or a runner, not both.")
        environment = getattr(self.instance, "environment", None)
        owner = team or runner
        if (
            environment is not None
            and owner is not None
            and owner.organization_id != environment.organization_id
        ):
            raise forms.ValidationError("The team or runner must belong to this organization.")
        return data


class GrantInline(admin.TabularInline[Grant, Environment]):
    """Team and runner grants, editable by the organization's admins."""

    model = Grant
    form = GrantForm
    extra = 1
    fields = ("team", "runner", "permission")

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return _may_view(request, obj)

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return request.user.is_superuser or (
            obj is not None and getattr(obj, "organization_id", None) in admin_org_ids(request)
        )

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self.has_add_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self.has_add_permission(request, obj)

    def formfield_for_foreignkey(
        self, db_field: Any, request: HttpRequest, **kwargs: Any
    ) -> ModelChoiceField[Any] | None:
        if not request.user.is_superuser and db_field.related_model in (Team, Runner):
            kwargs["queryset"] = db_field.related_model.objects.filter(
                organization_id__in=admin_org_ids(request)
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(Environment)
class EnvironmentAdmin(OrgScopedAdmin):
    """Environments: read-only facts, grants, revisions; no adding, no definition editing."""

    list_display = ("project", "name", "organization", "revision", "modified", "page")
    list_filter = ("organization",)
    search_fields = ("project", "name")
    fields = ("organization", "project", "name", "revision", "created", "modified", "created_by")
    readonly_fields = fields
    inlines = (GrantInline, RevisionInline)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False  # created on the environment pages or through the API

    @admin.display(description="Editor")
    def page(self, obj: Environment) -> str:
        url = reverse(
            "environments:detail",
            kwargs={"org": obj.organization.login, "project": obj.project, "name": obj.name},
        )
        return format_html('<a href="{}">open in the portal</a>', url)

    def save_formset(
        self,
        request: HttpRequest,
        form: Any,
        formset: BaseInlineFormSet[Any, Any, Any],
        change: Any,
    ) -> None:
        if formset.model is not Grant:
            super().save_formset(request, form, formset, change)
            return
        environment = form.instance
        # The admin's change message reads these; the service, not formset.save(), writes.
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        for inline in formset.forms:
            data = getattr(inline, "cleaned_data", None)
            if not data or not inline.has_changed():
                continue
            delete = data.get("DELETE", False)
            previous: Grant | None = inline.instance if inline.instance.pk else None
            if previous is not None and (
                delete or (previous.team_id, previous.runner_id) != _owner_ids(data)
            ):
                grants.grant_set(
                    environment=environment,
                    team=previous.team,
                    runner=previous.runner,
                    permission=None,
                )
            if not delete:
                grants.grant_set(
                    environment=environment,
                    team=data.get("team"),
                    runner=data.get("runner"),
                    permission=data["permission"],
                )


def _owner_ids(data: dict[str, Any]) -> tuple[int | None, int | None]:
    team, runner = data.get("team"), data.get("runner")
    return (team.pk if team else None, runner.pk if runner else None)


@admin.register(AccessEvent)
class AccessEventAdmin(ReadOnlyAdmin, OrgScopedAdmin):
    """The open record: read-only for org admins and auditors."""

    list_display = ("created", "kind", "project", "name", "revision", "login", "token_label")
    list_filter = ("kind",)
    search_fields = ("project", "name", "login", "token_label", "request_id")
    readonly_fields = (
        "kind",
        "created",
        "organization",
        "project",
        "name",
        "revision",
        "imports",
        "expires",
        "token_type",
        "token_label",
        "token",
        "exchange_event",
        "login",
        "user",
        "request_id",
        "client_ip",
        "user_agent",
    )
    fields = readonly_fields


@admin.register(CredentialIssuance)
class CredentialIssuanceAdmin(ReadOnlyAdmin, OrgScopedAdmin):
    """Every fn::open provider call, issued or failed: read-only for org admins and auditors."""

    list_display = (
        "created",
        "outcome",
        "provider",
        "project",
        "name",
        "role",
        "audience",
        "login",
        "expires_at",
    )
    list_filter = ("outcome", "provider")
    search_fields = ("project", "name", "role", "audience", "subject", "login", "request_id")
    readonly_fields = (
        "created",
        "organization",
        "project",
        "name",
        "root_environment",
        "path",
        "provider",
        "outcome",
        "reason",
        "message",
        "role",
        "audience",
        "subject",
        "expires_at",
        "details",
        "login",
        "token",
        "token_label",
        "exchange_event",
        "access_event",
        "request_id",
    )
    fields = readonly_fields


@admin.register(SigningKey)
class SigningKeyAdmin(ReadOnlyAdmin, admin.ModelAdmin[SigningKey]):
    """The portal's OIDC signing keys, for superusers, read-only; the sealed key is not shown."""

    list_display = ("kid", "state", "created", "activated", "deactivated", "retired")
    list_filter = ("state",)
    readonly_fields = (
        "kid",
        "state",
        "public_jwk",
        "created",
        "activated",
        "deactivated",
        "retired",
    )
    fields = readonly_fields

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_superuser)

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return bool(request.user.is_superuser)
