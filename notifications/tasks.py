"""Celery tasks: hand new audit records to their subscribers, deliver, retry, watch denials.

Each task body is one service call (`notifications.services`); the beat schedule runs the
sweeps, and a recorded change also starts a fan-out right after its commit.
"""

from __future__ import annotations

from celery import shared_task

from notifications import services


@shared_task(acks_late=True)
def fan_out_pending() -> int:
    """Queue the first delivery of every audit record not yet handed to its subscribers."""
    return services.fan_out_pending(
        queue=lambda webhook_id, event_id: deliver.delay(webhook_id, event_id, 1)
    )


@shared_task(acks_late=True)
def deliver(webhook_id: int, audit_event_id: int, attempt: int) -> str:
    """One attempt; a failed one is retried by `retry_due` after its backoff."""
    return services.deliver_event(
        webhook_id=webhook_id, audit_event_id=audit_event_id, attempt=attempt
    )


@shared_task(acks_late=True)
def retry_due() -> int:
    """Queue the next attempt of every failed delivery whose backoff has passed."""
    return services.retry_due(
        queue=lambda webhook_id, event_id, attempt: deliver.delay(webhook_id, event_id, attempt)
    )


@shared_task(acks_late=True)
def check_denials() -> int:
    return len(services.check_denials())
