"""Celery tasks: each one call into the services."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from django.db.models import Q
from django.utils import timezone

from issuers import alerts, services
from issuers.models import Issuer

logger = logging.getLogger(__name__)


@shared_task(acks_late=True, ignore_result=True)
def refresh_issuer_keys(issuer_id: str, trigger: str = "schedule") -> dict[str, Any] | None:
    """Refresh one issuer's keys (idempotent: a second run just fetches again)."""
    issuer = Issuer.objects.filter(pk=issuer_id).first()
    if issuer is None:
        return None
    fetch = services.issuer_refresh_keys(
        issuer=issuer, trigger=trigger, outbound=services.default_outbound()
    )
    if fetch is None:
        return None
    logger.info("issuer %s keys refreshed ok=%s reason=%s", issuer_id, fetch.ok, fetch.reason)
    return {"ok": fetch.ok, "reason": fetch.reason}


@shared_task(acks_late=True, ignore_result=True)
def refresh_due_issuer_keys() -> int:
    """Queue a refresh for every enabled, fetched issuer whose keys are due."""
    now = timezone.now()
    due = Issuer.objects.filter(enabled=True, static_jwks__isnull=True).filter(
        Q(next_refresh_at__isnull=True) | Q(next_refresh_at__lte=now)
    )
    ids = [str(pk) for pk in due.values_list("pk", flat=True)]
    for issuer_id in ids:
        refresh_issuer_keys.delay(issuer_id)
    logger.info("queued key refresh for %d issuers", len(ids))
    return len(ids)


@shared_task(acks_late=True, ignore_result=True)
def report_issuer_warnings() -> int:
    """Daily: log every issuer warning; alert the organization of those it must act on."""
    from issuers.selectors import issuer_warnings

    now = timezone.now()
    count = 0
    for issuer in Issuer.objects.filter(enabled=True).select_related("organization"):
        for warning in issuer_warnings(issuer, now):
            count += 1
            if warning.code in alerts.DAILY:
                alerts.reminder(issuer, warning.code, warning.message)
            logger.warning(
                "issuer %s (%s/%s): %s",
                issuer.pk,
                issuer.organization.login,
                issuer.name,
                warning.message,
            )
    return count
