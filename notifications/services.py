"""Writes: subscriptions (webhooks and e-mail), delivery attempts, and the denial alert."""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.formats import event_json
from audit.models import AuditEvent
from audit.services import audit_alert, audit_record
from kernel.secretbox import default_box
from notifications import delivery
from notifications.errors import WebhookConflict, WebhookInvalid
from notifications.models import (
    Channel,
    Delivery,
    DeliveryStatus,
    FanOutCursor,
    NotificationSettings,
    Webhook,
)
from outbound.policy import OutboundPolicy
from tokens.models import Decision, ExchangeEvent
from trustportal.models import Organization

MAX_ATTEMPTS = 6
MAX_FILTERS = 50
NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
DENIAL_WINDOW = timedelta(minutes=15)
DENIAL_ALERT_EVERY = timedelta(hours=1)
WEBHOOK_FIELDS = ("display_name", "channel", "payload_url", "email", "active", "format", "filters")


def webhook_policy() -> OutboundPolicy:
    """The outbound rules for webhook deliveries (settings read here, at the edge)."""
    config = settings.TRUSTPORTAL
    return OutboundPolicy(
        allow_http=config.allow_http_issuers, allowed_networks=config.webhook_allowed_networks
    )


def _context(webhook: Webhook) -> bytes:
    return f"trustportal:webhook:{webhook.organization_id}:{webhook.name}".encode()


def webhook_secret(webhook: Webhook) -> str:
    if not webhook.secret_ciphertext:
        return ""
    return default_box().decrypt(webhook.secret_ciphertext, context=_context(webhook))


def _clean(values: Mapping[str, Any], *, allow_http: bool) -> dict[str, Any]:
    cleaned: dict[str, Any] = {}
    if "displayName" in values:
        name = values["displayName"]
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            raise WebhookInvalid("displayName must be text of 1 to 200 characters.")
        cleaned["display_name"] = name.strip()
    if "payloadUrl" in values and values["payloadUrl"] not in (None, ""):
        url = values["payloadUrl"]
        parts = urlsplit(url) if isinstance(url, str) and len(url) <= 2000 else None
        schemes = ("https", "http") if allow_http else ("https",)
        if parts is None or parts.scheme not in schemes or not parts.hostname:
            raise WebhookInvalid("payloadUrl must be an https:// URL.")
        if parts.username or parts.password or parts.fragment:
            raise WebhookInvalid("payloadUrl must not carry credentials or a fragment.")
        cleaned["payload_url"] = url
        cleaned["channel"] = Channel.WEBHOOK
    if "email" in values and values["email"] not in (None, ""):
        email = values["email"]
        try:
            validate_email(email)
        except Exception:
            raise WebhookInvalid("email is not an e-mail address.") from None
        cleaned["email"] = email
        cleaned["channel"] = Channel.EMAIL
    if "active" in values:
        if not isinstance(values["active"], bool):
            raise WebhookInvalid("active must be true or false.")
        cleaned["active"] = values["active"]
    if "format" in values:
        if values["format"] not in ("raw", None, ""):
            raise WebhookInvalid("Only the raw format is supported.")
        cleaned["format"] = "raw"
    if "filters" in values:
        filters = values["filters"] or []
        if (
            not isinstance(filters, list)
            or len(filters) > MAX_FILTERS
            or not all(isinstance(f, str) and 0 < len(f) <= 64 for f in filters)
        ):
            raise WebhookInvalid("filters must be a list of event types.")
        cleaned["filters"] = sorted(set(filters))
    return cleaned


def _snapshot(webhook: Webhook) -> dict[str, Any]:
    return {name: getattr(webhook, name) for name in WEBHOOK_FIELDS}


@transaction.atomic
def webhook_create(
    *, organization: Organization, values: Mapping[str, Any], now: datetime | None = None
) -> Webhook:
    """A new subscription; `secret` is sealed, a name is made when none is given."""
    now = now or timezone.now()
    name = values.get("name") or secrets.token_hex(4)
    if not isinstance(name, str) or not NAME.match(name):
        raise WebhookInvalid("name must be lower-case letters, digits and dashes.")
    cleaned = _clean(values, allow_http=settings.TRUSTPORTAL.allow_http_issuers)
    if "display_name" not in cleaned:
        raise WebhookInvalid("displayName is required.")
    if not cleaned.get("payload_url") and not cleaned.get("email"):
        raise WebhookInvalid("Give a payloadUrl (webhook) or an email.")
    webhook = Webhook(organization=organization, name=name, created=now, modified=now, **cleaned)
    _set_secret(webhook, values.get("secret"))
    try:
        with transaction.atomic():
            webhook.save()
    except IntegrityError:
        raise WebhookConflict() from None
    audit_record(
        event="webhook-created",
        description=f"Notifications to {webhook.payload_url or webhook.email} were added.",
        organization=organization,
        target=webhook,
        after=_snapshot(webhook),
    )
    return webhook


def _set_secret(webhook: Webhook, secret: Any) -> None:
    if secret is None:
        return
    if not isinstance(secret, str) or len(secret) > 500:
        raise WebhookInvalid("secret must be text of at most 500 characters.")
    webhook.secret_ciphertext = (
        default_box().encrypt(secret, context=_context(webhook)) if secret else ""
    )


@transaction.atomic
def webhook_update(
    *, webhook: Webhook, values: Mapping[str, Any], now: datetime | None = None
) -> Webhook:
    before = _snapshot(webhook)
    had_secret = bool(webhook.secret_ciphertext)
    for name, value in _clean(values, allow_http=settings.TRUSTPORTAL.allow_http_issuers).items():
        setattr(webhook, name, value)
    _set_secret(webhook, values.get("secret"))
    webhook.modified = now or timezone.now()
    webhook.save()
    after = _snapshot(webhook)
    if "secret" in values:
        before["secret"], after["secret"] = had_secret, bool(webhook.secret_ciphertext)
    audit_record(
        event="webhook-updated",
        description=f"Notifications '{webhook.display_name}' were changed.",
        organization=webhook.organization,
        target=webhook,
        before=before,
        after=after,
        secret_fields=frozenset({"secret"}),
    )
    return webhook


@transaction.atomic
def webhook_delete(*, webhook: Webhook) -> None:
    audit_record(
        event="webhook-deleted",
        description=f"Notifications '{webhook.display_name}' were removed.",
        organization=webhook.organization,
        target=webhook,
        before=_snapshot(webhook),
    )
    webhook.delete()


def subscribers(record: AuditEvent) -> list[Webhook]:
    """The active subscriptions of the record's organization that want its event type (and
    existed when it was recorded)."""
    if record.organization_id is None:
        return []
    return [
        webhook
        for webhook in Webhook.objects.filter(
            organization_id=record.organization_id, active=True, created__lte=record.created
        )
        if not webhook.filters or record.event in webhook.filters
    ]


FAN_OUT_BATCH = 500


def fan_out_pending(*, queue: Callable[[int, int], object]) -> int:
    """Queue a first delivery for each subscriber of every record past the cursor.

    The cursor row is locked for the batch: concurrent sweeps wait instead of sending twice,
    and a queueing failure rolls the cursor back so the next sweep tries again.
    """
    with transaction.atomic():
        cursor, _ = FanOutCursor.objects.select_for_update().get_or_create(pk=1)
        records = list(
            AuditEvent.objects.filter(pk__gt=cursor.last_audit_event_id).order_by("pk")[
                :FAN_OUT_BATCH
            ]
        )
        queued = 0
        for record in records:
            for webhook in subscribers(record):
                queue(webhook.pk, record.pk)
                queued += 1
        if records:
            cursor.last_audit_event_id = records[-1].pk
            cursor.save(update_fields=["last_audit_event_id"])
    return queued


def deliver_event(*, webhook_id: int, audit_event_id: int, attempt: int) -> str:
    """One attempt at delivering one record to one subscription (skipped when gone)."""
    webhook = Webhook.objects.select_related("organization").filter(pk=webhook_id).first()
    record = AuditEvent.objects.filter(pk=audit_event_id).first()
    if webhook is None or record is None or not webhook.active:
        return "skipped"
    row = deliver(
        webhook=webhook,
        kind=record.event,
        audit_event=record,
        attempt=attempt,
        policy=webhook_policy(),
    )
    return row.status


def retry_due(*, queue: Callable[[int, int, int], object], now: datetime | None = None) -> int:
    """Queue the next attempt of failed deliveries whose backoff has passed (each once)."""
    now = now or timezone.now()
    with transaction.atomic():
        due = list(
            Delivery.objects.select_for_update(skip_locked=True)
            .filter(retried=False, next_attempt_at__lte=now, audit_event_id__isnull=False)
            .order_by("next_attempt_at")[:FAN_OUT_BATCH]
        )
        for row in due:
            assert row.audit_event_id is not None
            queue(row.webhook_id, row.audit_event_id, row.attempt + 1)
        Delivery.objects.filter(pk__in=[row.pk for row in due]).update(retried=True)
    return len(due)


def retry_delay(attempt: int) -> timedelta:
    """Exponential backoff: NOTIFICATION_RETRY_BASE_SECONDS, then twice that, four times…"""
    return timedelta(seconds=settings.NOTIFICATION_RETRY_BASE_SECONDS * 2 ** (attempt - 1))


def deliver(
    *,
    webhook: Webhook,
    kind: str,
    audit_event: AuditEvent | None,
    attempt: int,
    policy: OutboundPolicy,
    send: delivery.Poster = delivery.post,
    now: datetime | None = None,
) -> Delivery:
    """Try once and record the attempt (with when the next one is due, if any)."""
    now = now or timezone.now()
    body = delivery.payload(
        kind=kind,
        organization=webhook.organization.login,
        event=event_json(audit_event) if audit_event is not None else None,
    )
    row = Delivery.objects.create(
        webhook=webhook,
        audit_event_id=audit_event.pk if audit_event else None,
        kind=kind[:64],
        attempt=attempt,
        payload=body.decode(),
        request_url=webhook.payload_url or f"mailto:{webhook.email}",
        status=DeliveryStatus.FAILED,
        created=now,
    )
    if webhook.channel == Channel.EMAIL:
        result = _send_email(webhook, kind, body)
    else:
        result = delivery.attempt(
            webhook.payload_url,
            body,
            kind=kind,
            delivery_id=str(row.pk),
            secret=webhook_secret(webhook),
            policy=policy,
            send=send,
        )
    row.response_code, row.response_body = result.response_code, result.response_body
    row.error, row.duration_ms = result.error, result.duration_ms
    if result.ok:
        row.status = DeliveryStatus.DELIVERED
    elif attempt < MAX_ATTEMPTS and kind != "ping":
        row.next_attempt_at = now + retry_delay(attempt)
    else:
        row.status = DeliveryStatus.GAVE_UP
    row.save()
    return row


def _send_email(webhook: Webhook, kind: str, body: bytes) -> delivery.Attempt:
    started = time.monotonic()
    text = json.dumps(json.loads(body), indent=2, sort_keys=True)
    try:
        send_mail(
            subject=f"[Trust Portal] {webhook.organization.login}: {kind}",
            message=text,
            from_email=None,
            recipient_list=[webhook.email],
        )
    except (OSError, Exception) as exc:
        return delivery.Attempt(
            ok=False,
            response_code=None,
            response_body="",
            error=f"sending mail failed: {type(exc).__name__}",
            duration_ms=int((time.monotonic() - started) * 1000),
        )
    return delivery.Attempt(
        ok=True,
        response_code=None,
        response_body="",
        error="",
        duration_ms=int((time.monotonic() - started) * 1000),
    )


def check_denials(*, now: datetime | None = None) -> list[int]:
    """Raise `exchange-denials-unusual` for organizations over their threshold (once an hour)."""
    now = now or timezone.now()
    alerted: list[int] = []
    for config in NotificationSettings.objects.select_related("organization").filter(
        denial_threshold__gt=0
    ):
        if config.last_denial_alert and now - config.last_denial_alert < DENIAL_ALERT_EVERY:
            continue
        denied = ExchangeEvent.objects.filter(
            organization_id=config.organization_id,
            decision=Decision.DENY,
            created__gte=now - DENIAL_WINDOW,
        ).count()
        if denied <= config.denial_threshold:
            continue
        with transaction.atomic():
            config.last_denial_alert = now
            config.save(update_fields=["last_denial_alert"])
            audit_alert(
                event="exchange-denials-unusual",
                description=(
                    f"{denied} exchanges were denied in the last 15 minutes "
                    f"(threshold {config.denial_threshold})."
                ),
                organization=config.organization,
            )
        alerted.append(config.organization_id)
    return alerted


@transaction.atomic
def settings_update(*, organization: Organization, denial_threshold: int) -> NotificationSettings:
    config, _ = NotificationSettings.objects.select_for_update().get_or_create(
        organization=organization
    )
    before = {"denial_threshold": config.denial_threshold}
    config.denial_threshold = denial_threshold
    config.save(update_fields=["denial_threshold"])
    audit_record(
        event="notification-settings-updated",
        description="The denial alert threshold was changed.",
        organization=organization,
        target=config,
        object_type="notificationsettings",
        before=before,
        after={"denial_threshold": denial_threshold},
    )
    return config
