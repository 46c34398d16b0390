"""Reads: audit records of an organization, filtered and paged newest first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import QuerySet

from audit.models import AuditEvent, Category
from audit.tenant import Tenant
from kernel.paging import Page, keyset_page


@dataclass(frozen=True)
class AuditFilters:
    before_time: datetime | None = None  # records at or before (Pulumi's `startTime`)
    after_time: datetime | None = None  # records at or after
    event: str = ""
    user: str = ""  # the acting user's login
    object_type: str = ""
    object_id: str = ""
    request_id: str = ""


def audit_events(organization: Tenant, filters: AuditFilters) -> QuerySet[AuditEvent]:
    rows = AuditEvent.objects.filter(organization_id=organization.pk, category=Category.CHANGE)
    if filters.before_time is not None:
        rows = rows.filter(created__lte=filters.before_time)
    if filters.after_time is not None:
        rows = rows.filter(created__gte=filters.after_time)
    if filters.event:
        rows = rows.filter(event=filters.event)
    if filters.user:
        rows = rows.filter(actor_username=filters.user)
    if filters.object_type:
        rows = rows.filter(object_type=filters.object_type)
        if filters.object_id:
            rows = rows.filter(object_id=filters.object_id)
    if filters.request_id:
        rows = rows.filter(request_id=filters.request_id)
    return rows


def audit_page(
    organization: Tenant, filters: AuditFilters, *, before: int | None, limit: int
) -> Page[AuditEvent]:
    return keyset_page(audit_events(organization, filters), before=before, limit=limit)


def event_types(organization: Tenant) -> list[str]:
    """The event types this organization's log holds (for the page's filter)."""
    return sorted(
        set(
            AuditEvent.objects.filter(organization_id=organization.pk, category=Category.CHANGE)
            .values_list("event", flat=True)
            .distinct()[:500]
        )
    )
