"""The configuration audit log: one append-only row per change to what decides trust."""

from __future__ import annotations

from django.db import models

from kernel.appendonly import AppendOnlyModel, AppendOnlyQuerySet


class AuditEventQuerySet(AppendOnlyQuerySet["AuditEvent"]):
    """Read and insert only (a PostgreSQL trigger refuses UPDATE and DELETE too)."""


class ActorKind(models.TextChoices):
    USER = "user", "User"
    TOKEN = "token", "Access token"
    SYSTEM = "system", "System"


class Category(models.TextChoices):
    CHANGE = "change", "Configuration change"
    ALERT = "alert", "Alert"


class AuditEvent(AppendOnlyModel):
    """Who changed what, from where, when: a before/after diff with secrets left out.

    References are plain ids and names, never foreign keys that could cascade: a deleted user,
    token or organization leaves its records as they were written.
    """

    created = models.DateTimeField(db_index=True)
    # The organization's id and login as they were (no foreign key: the audit log sits below
    # the organizations in the layers, and a deleted organization keeps its records).
    organization_id = models.BigIntegerField(null=True, blank=True)
    organization_login = models.CharField(max_length=200, blank=True)
    # A change someone made, or an alert the portal raised (key fetches failing, denial spike);
    # the audit log lists changes, notifications deliver both.
    category = models.CharField(max_length=8, choices=Category.choices, default=Category.CHANGE)
    event = models.CharField(max_length=64)  # e.g. issuer-created, policy-published
    description = models.CharField(max_length=500)
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=300, blank=True)
    changes = models.JSONField(default=dict)  # {"field": [before, after]}; secrets as "[secret]"
    actor_kind = models.CharField(max_length=8, choices=ActorKind.choices)
    actor_user_id = models.BigIntegerField(null=True, blank=True)
    actor_username = models.CharField(max_length=150, blank=True)
    actor_token_id = models.BigIntegerField(null=True, blank=True)
    actor_token_name = models.CharField(max_length=200, blank=True)
    # The acting token, its parent, … up to the token an exchange or a person created.
    actor_token_lineage = models.JSONField(default=list)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    request_id = models.CharField(max_length=64, blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(fields=["organization_id", "-id"], name="audit_org_id"),
            models.Index(fields=["organization_id", "event", "-id"], name="audit_org_event_id"),
            models.Index(
                fields=["organization_id", "object_type", "object_id", "-id"],
                name="audit_org_object",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.created:%Y-%m-%d %H:%M:%S} {self.event} {self.object_repr[:60]}"
