"""The audit log page: configuration changes of an organization, for its admins and auditors."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from audit.formats import event_json
from audit.selectors import AuditFilters, audit_page, event_types
from trustportal.access import Need, organization_for_user
from trustportal.models import Role

PAGE_SIZE = 50
TEXT_FILTERS = ("event", "user", "request_id", "object_type", "object_id")


def _day(value: str) -> date | None:
    try:
        return date.fromisoformat(value) if value and len(value) <= 10 else None
    except ValueError:
        return None


def _filters(request: HttpRequest) -> tuple[AuditFilters, dict[str, str]]:
    values = {name: request.GET.get(name, "")[:200].replace("\x00", "") for name in TEXT_FILTERS}
    values["since"] = request.GET.get("since", "")[:10]
    values["until"] = request.GET.get("until", "")[:10]
    since, until = _day(values["since"]), _day(values["until"])
    filters = AuditFilters(
        after_time=datetime.combine(since, time.min, tzinfo=UTC) if since else None,
        before_time=(
            datetime.combine(until, time.min, tzinfo=UTC) + timedelta(days=1) - timedelta(
                microseconds=1
            )
            if until
            else None
        ),
        event=values["event"],
        user=values["user"],
        request_id=values["request_id"],
        object_type=values["object_type"],
        object_id=values["object_id"],
    )
    return filters, {k: v for k, v in values.items() if v}


@login_required
@require_GET
def audit_log(request: HttpRequest, org: str) -> HttpResponse:
    organization, role = organization_for_user(request.user, org, Need.READ_CONFIGURATION)
    filters, values = _filters(request)
    raw_before = request.GET.get("before", "")
    before = int(raw_before) if raw_before.isascii() and raw_before.isdigit() else None
    page = audit_page(organization, filters, before=before, limit=PAGE_SIZE)
    query = urlencode(values)
    return render(
        request,
        "audit/log.html",
        {
            "organization": organization,
            "is_admin": role == Role.ADMIN,
            "section": "audit",
            "records": [event_json(r) for r in page.rows],
            "event_types": event_types(organization),
            "values": values,
            "filtered": bool(values),
            "first_page": before is not None,
            "first_url": f"?{query}",
            "next_url": (
                f"?{urlencode({**values, 'before': page.next_cursor})}"
                if page.next_cursor
                else None
            ),
            "export_query": f"?{query}" if query else "",
        },
    )
