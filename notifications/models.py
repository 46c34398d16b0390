"""Where an organization's events go: webhooks and e-mail, and every delivery attempt."""

from __future__ import annotations

from django.db import models

from trustportal.models import Organization


class Channel(models.TextChoices):
    WEBHOOK = "webhook", "Webhook"
    EMAIL = "email", "E-mail"


class Webhook(models.Model):
    """An organization's subscription: a URL (Pulumi's webhook shape) or an e-mail address."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    name = models.SlugField(max_length=64)  # the id in URLs, unique in the organization
    display_name = models.CharField(max_length=200)
    channel = models.CharField(max_length=8, choices=Channel.choices, default=Channel.WEBHOOK)
    payload_url = models.URLField(max_length=2000, blank=True)
    email = models.EmailField(blank=True)
    secret_ciphertext = models.TextField(blank=True)  # the HMAC key, sealed; never returned
    active = models.BooleanField(default=True)
    format = models.CharField(max_length=16, default="raw")
    filters = models.JSONField(default=list)  # event types; empty means every event
    created = models.DateTimeField()
    modified = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="webhook_org_name")
        ]

    def __str__(self) -> str:
        return self.display_name


class NotificationSettings(models.Model):
    """Thresholds of the alerts an organization receives."""

    organization = models.OneToOneField(
        Organization, on_delete=models.CASCADE, related_name="notification_settings"
    )
    # An alert when more exchanges than this are denied within 15 minutes (0: never).
    denial_threshold = models.PositiveIntegerField(default=50)
    last_denial_alert = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"notification settings of {self.organization_id}"


class FanOutCursor(models.Model):
    """How far the audit log has been handed to subscriptions (one row).

    Audit records are durable, so a record whose fan-out was lost (a broker down, a worker
    killed) is still delivered by the next sweep: nothing is lost between commit and delivery.
    """

    last_audit_event_id = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"fanned out up to {self.last_audit_event_id}"


class DeliveryStatus(models.TextChoices):
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed, will retry"
    GAVE_UP = "gave_up", "Failed, no more retries"


class Delivery(models.Model):
    """One attempt to deliver one event to one subscription."""

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    audit_event_id = models.BigIntegerField(null=True, blank=True)  # none for a ping
    kind = models.CharField(max_length=64)
    attempt = models.PositiveSmallIntegerField()
    payload = models.TextField()
    request_url = models.CharField(max_length=2000, blank=True)
    status = models.CharField(max_length=12, choices=DeliveryStatus.choices)
    response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True)  # the first KiB
    error = models.CharField(max_length=500, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    created = models.DateTimeField()
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    retried = models.BooleanField(default=False)  # the next attempt has been queued

    class Meta:
        indexes = [
            models.Index(fields=["webhook", "-id"], name="delivery_webhook_id"),
            models.Index(
                fields=["next_attempt_at"],
                name="delivery_retry_due",
                condition=models.Q(retried=False, next_attempt_at__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} #{self.attempt} {self.status}"
