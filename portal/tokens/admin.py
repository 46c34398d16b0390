"""Admin for exchange events (read-only, append-only) and access tokens (view and revoke).

Events can be read by the admins and auditors of their organization and changed by nobody:
no add, change or delete, not even for superusers (the model refuses too). Tokens are never
edited in a form; org admins revoke them with an action that calls the service.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html

from portal.orgs.admin import OrgScopedAdmin, ReadOnlyAdmin, admin_org_ids
from tokens import services
from tokens.models import AccessToken, ExchangeEvent


class CappedPaginator(Paginator):
    """Counts at most CAP + 1 rows (a COUNT over a LIMIT subquery), never a whole big table."""

    CAP = 10_000

    @cached_property
    def count(self) -> int:
        rows: Any = self.object_list  # the changelist's queryset
        return int(rows[: self.CAP + 1].count())


@admin.register(ExchangeEvent)
class ExchangeEventAdmin(ReadOnlyAdmin, OrgScopedAdmin):
    list_display = ("created", "organization_login", "decision", "reason", "sub", "issuer_id")
    list_filter = ("decision",)
    search_fields = ("request_id", "sub", "reason")
    show_full_result_count = False  # no COUNT(*) over millions of rows
    paginator = CappedPaginator
    list_per_page = 50
    ordering = ("-id",)
    readonly_fields = ("history_page", *(f.name for f in ExchangeEvent._meta.fields))
    fields = readonly_fields
    actions = None

    @admin.display(description="History page")
    def history_page(self, obj: ExchangeEvent) -> str:
        if obj.organization is None:
            return "—"
        url = reverse("tokens:event", kwargs={"org": obj.organization.login, "event_id": obj.pk})
        return format_html('<a href="{}">Open with the claims and the evaluation trace</a>', url)


@admin.register(AccessToken)
class AccessTokenAdmin(OrgScopedAdmin):
    audited = False  # its saves go through services, which record the change
    list_display = (
        "prefix",
        "token_type",
        "organization",
        "name",
        "subject",
        "created",
        "expires",
        "revoked_at",
    )
    list_filter = ("token_type",)
    search_fields = ("prefix", "name", "subject")
    show_full_result_count = False
    paginator = CappedPaginator
    ordering = ("-id",)
    actions = ("revoke_selected",)
    exclude = ("token_hash",)

    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None) -> Any:
        return [f.name for f in AccessToken._meta.fields if f.name != "token_hash"]

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        # Tokens are created on the token page (shown once) or by exchange, never in a form.
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        # Revoke instead: a revoked token stays visible; the purge removes it later.
        return False

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser or bool(admin_org_ids(request))

    @admin.action(description="Revoke the selected tokens", permissions=["revoke"])
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[AccessToken]) -> None:
        allowed = admin_org_ids(request)
        now = timezone.now()
        revoked = 0
        for token in queryset:
            if request.user.is_superuser or token.organization_id in allowed:
                user = request.user if request.user.is_authenticated else None
                revoked += services.token_revoke(
                    token=token, by=user, reason="revoked in the admin", now=now
                )
        self.message_user(request, f"Revoked {revoked} token(s).", messages.SUCCESS)
