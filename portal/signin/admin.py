"""Admin: org admins configure their organization's provider, mapping and sign-in policy."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from portal.orgs.admin import OrgScopedAdmin, ReadOnlyAdmin
from signin import configuration
from signin.models import GroupMapping, IdentityProvider, OrganizationSignInPolicy, SignInEvent


class IdentityProviderForm(forms.ModelForm[IdentityProvider]):
    client_secret = forms.CharField(
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False),
        help_text="Stored encrypted; never shown again. Leave empty to keep the current one.",
    )

    class Meta:
        model = IdentityProvider
        fields = [
            "organization",
            "name",
            "issuer",
            "client_id",
            "client_secret",
            "scopes",
            "groups_claim",
            "session_lifetime",
            "enabled",
        ]


class GroupMappingInline(admin.TabularInline[GroupMapping, IdentityProvider]):
    model = GroupMapping
    extra = 1
    fields = ("group", "organization", "role", "team")

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        from portal.orgs.admin import admin_org_ids
        from trustportal.models import Organization, Team

        if not request.user.is_superuser:
            if db_field.related_model is Organization:
                kwargs["queryset"] = Organization.objects.filter(pk__in=admin_org_ids(request))
            elif db_field.related_model is Team:
                kwargs["queryset"] = Team.objects.filter(organization_id__in=admin_org_ids(request))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(IdentityProvider)
class IdentityProviderAdmin(OrgScopedAdmin):
    audited = False  # its saves go through services, which record the change
    form = IdentityProviderForm
    inlines = [GroupMappingInline]
    list_display = ("name", "organization", "issuer", "client_id", "enabled")
    list_filter = ("enabled",)

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        if not request.user.is_superuser and "organization" in form.base_fields:
            # Only superusers configure a provider for the whole portal.
            form.base_fields["organization"].required = True
        return form

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        configuration.provider_save(
            provider=obj, client_secret=form.cleaned_data.get("client_secret") or ""
        )

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        configuration.provider_delete(provider=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for provider in queryset:
            configuration.provider_delete(provider=provider)

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        """Each group mapping saved or deleted through the services (one audit record each)."""
        mappings = formset.save(commit=False)
        for mapping in formset.deleted_objects:
            configuration.mapping_delete(mapping=mapping)
        for mapping in mappings:
            configuration.mapping_save(mapping=mapping)
        formset.save_m2m()


@admin.register(OrganizationSignInPolicy)
class OrganizationSignInPolicyAdmin(OrgScopedAdmin):
    audited = False  # its saves go through services, which record the change
    list_display = ("organization", "require_sso", "break_glass_user", "require_admin_mfa")

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        configuration.sign_in_policy_save(policy=obj)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        configuration.sign_in_policy_delete(policy=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for policy in queryset:
            configuration.sign_in_policy_delete(policy=policy)


@admin.register(SignInEvent)
class SignInEventAdmin(ReadOnlyAdmin, OrgScopedAdmin):
    list_display = ("created", "kind", "method", "username", "provider", "organization", "reason")
    list_filter = ("kind", "method")
    search_fields = ("username", "reason")
