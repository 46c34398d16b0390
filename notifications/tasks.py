"""Celery tasks: fan an event out to its subscribers, deliver with retries, watch denials."""

from __future__ import annotations

from celery import shared_task

from audit.models import AuditEvent
from notifications import services
from notifications.models import Webhook


@shared_task(acks_late=True)
def fan_out(audit_event_id: int) -> int:
    """Queue the first delivery of one recorded event to each matching subscription."""
    record = AuditEvent.objects.filter(pk=audit_event_id).first()
    if record is None:
        return 0
    targets = services.subscribers(record)
    for webhook in targets:
        deliver.delay(webhook.pk, audit_event_id, 1)
    return len(targets)


@shared_task(acks_late=True)
def deliver(webhook_id: int, audit_event_id: int, attempt: int) -> str:
    """One attempt; a failed one queues the next after the backoff, up to MAX_ATTEMPTS."""
    webhook = Webhook.objects.select_related("organization").filter(pk=webhook_id).first()
    record = AuditEvent.objects.filter(pk=audit_event_id).first()
    if webhook is None or record is None or not webhook.active:
        return "skipped"
    row = services.deliver(
        webhook=webhook,
        kind=record.event,
        audit_event=record,
        attempt=attempt,
        policy=services.webhook_policy(),
    )
    if row.next_attempt_at is not None:
        delay = services.retry_delay(attempt).total_seconds()
        deliver.apply_async((webhook_id, audit_event_id, attempt + 1), countdown=delay)
    return row.status


@shared_task(acks_late=True)
def check_denials() -> int:
    return len(services.check_denials())
