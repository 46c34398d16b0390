"""Admin for issuers, scoped per organization; registration happens in the portal's wizard.

Adding through the admin is off because registration needs discovery and the outbound guard
(the wizard runs them); edits go through `services.issuer_update` so they are checked the same
way as on the issuer page and in the API. Deleting is off too: it revokes the issuer's tokens,
so it happens on the issuer page, after a confirmation that counts them.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import F, Model, QuerySet, Window
from django.db.models.functions import RowNumber
from django.forms import Form
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html

from issuers import services
from issuers.models import Issuer, IssuerKey, KeyFetch
from portal.issuers.forms import IssuerAdminForm
from portal.orgs.admin import OrgScopedAdmin, readable_org_ids
from trustportal.models import Role
from trustportal.selectors import organizations_for_user

RECENT_FETCHES = 20
EDITABLE_FIELDS = ("name", "enabled", "max_expiration", "audiences", "algorithms", "single_use")


class _ReadOnlyInline(admin.TabularInline[Any, Issuer]):
    """An inline that only shows rows; the parent admin has already scoped the page."""

    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        # `obj` is the parent issuer; without one (the inline's queryset), rows are limited to
        # the issuer the page shows, which the parent admin scoped already.
        if request.user.is_superuser:
            return True
        if obj is None:
            return bool(readable_org_ids(request))
        return getattr(obj, "organization_id", None) in readable_org_ids(request)


class IssuerKeyInline(_ReadOnlyInline):
    model = IssuerKey
    fields = ("kid", "kty", "alg", "size", "first_seen", "last_seen", "removed_at")
    readonly_fields = fields
    ordering = ("removed_at", "-first_seen")


class KeyFetchInline(_ReadOnlyInline):
    model = KeyFetch
    fields = ("at", "trigger", "ok", "status", "keys_added", "keys_removed", "reason", "message")
    readonly_fields = fields
    verbose_name_plural = f"Recent key fetches (last {RECENT_FETCHES})"

    def get_queryset(self, request: HttpRequest) -> QuerySet[KeyFetch]:
        # A slice cannot be filtered by issuer afterwards (the formset does); a per-issuer row
        # number can.
        return (
            super()
            .get_queryset(request)
            .annotate(
                recent=Window(RowNumber(), partition_by=[F("issuer_id")], order_by=F("at").desc())
            )
            .filter(recent__lte=RECENT_FETCHES)
            .order_by("-at")
        )


@admin.register(Issuer)
class IssuerAdmin(OrgScopedAdmin):
    audited = False  # its saves go through services, which record the change
    form = IssuerAdminForm
    change_list_template = "issuers/admin_change_list.html"
    list_display = ("name", "organization", "issuer", "enabled", "last_success_at")
    list_filter = ("enabled",)
    search_fields = ("name", "issuer", "url")
    inlines = (IssuerKeyInline, KeyFetchInline)
    fieldsets = (
        (None, {"fields": ("portal_page", "organization", "name", "url", "issuer")}),
        ("Verification", {"fields": EDITABLE_FIELDS[1:]}),
        (
            "Keys and certificate",
            {
                "fields": (
                    "jwks_uri",
                    "static_jwks",
                    "thumbprints",
                    "keys_version",
                    "last_fetch_at",
                    "last_success_at",
                    "last_error",
                    "last_error_at",
                    "next_refresh_at",
                    "cert_subject",
                    "cert_issuer",
                    "cert_not_after",
                    "cert_sha256",
                    "created",
                    "modified",
                    "last_used",
                )
            },
        ),
    )

    @admin.display(description="Issuer page")
    def portal_page(self, obj: Issuer) -> str:
        url = reverse("issuers:detail", kwargs={"org": obj.organization.login, "issuer_id": obj.pk})
        return format_html(
            '<a href="{}">Open the issuer page</a> (health, keys, refresh, thumbprints, delete)',
            url,
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None) -> Any:
        # Everything but the settings is owned by registration and key refresh: the URL,
        # discovered issuer, keys and certificate facts never change through a form.
        shown = [field for _name, options in self.fieldsets for field in options["fields"]]
        return [field for field in shown if field not in EDITABLE_FIELDS]

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        # Registration needs discovery through the outbound guard: the wizard does it.
        return False

    def save_model(self, request: HttpRequest, obj: Issuer, form: Form, change: bool) -> None:
        assert isinstance(form, IssuerAdminForm)
        services.issuer_update(
            issuer=obj, data=form.service_data(), outbound=services.default_outbound()
        )

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        # Deleting revokes every token the issuer minted: the issuer page's confirmation shows
        # how many first (tokens/retirement.py), which the admin's generic one cannot.
        return False

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """The issuer list, with a link to the Register Issuer wizard per administered org."""
        organizations = organizations_for_user(request.user, roles=(Role.ADMIN,))
        links = [
            (organization, reverse("issuers:register", kwargs={"org": organization.login}))
            for organization in organizations
        ]
        return super().changelist_view(request, {**(extra_context or {}), "register_links": links})
