"""Celery tasks of the tokens app: each one service call, idempotent, acknowledged late."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from tokens import services

logger = logging.getLogger(__name__)


@shared_task(acks_late=True, ignore_result=True)
def purge_tokens() -> dict[str, int]:
    """Every 5 minutes: delete tokens expired/revoked over 7 days ago and stale `jti`s."""
    result = services.tokens_purge()
    logger.info("purged %d access tokens and %d used jtis", result.tokens, result.jtis)
    return {"tokens": result.tokens, "jtis": result.jtis}


@shared_task(acks_late=True, ignore_result=True)
def purge_exchange_events() -> int:
    """Daily: delete exchange events past TRUSTPORTAL_EVENT_RETENTION_DAYS (default 400)."""
    deleted = services.events_purge(retention_days=settings.TRUSTPORTAL.event_retention_days)
    logger.info("purged %d exchange events past retention", deleted)
    return deleted


@shared_task(acks_late=True, ignore_result=True)
def flush_token_usage() -> int:
    """Every minute: write buffered token uses to `last_used` in bulk."""
    written = services.token_usage_flush()
    logger.info("wrote last_used of %d access tokens", written)
    return written
