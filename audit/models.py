"""The configuration audit log: one append-only row per change to what decides trust."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import models
from django.db.models.base import ModelBase


class AuditAppendOnlyError(RuntimeError):
    """An attempt to change or remove an audit record."""


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    """Read and insert only: `update()` and `delete()` refuse (a PostgreSQL trigger too)."""

    def update(self, **kwargs: Any) -> int:
        raise AuditAppendOnlyError("Audit records are append-only: they cannot be updated.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AuditAppendOnlyError("Audit records are append-only: they cannot be deleted.")


class ActorKind(models.TextChoices):
    USER = "user", "User"
    TOKEN = "token", "Access token"
    SYSTEM = "system", "System"


class Category(models.TextChoices):
    CHANGE = "change", "Configuration change"
    ALERT = "alert", "Alert"


class AuditEvent(models.Model):
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

    def save(
        self,
        *,
        force_insert: bool | tuple[ModelBase, ...] = False,
        force_update: bool = False,
        using: str | None = None,
        update_fields: Iterable[str] | None = None,
    ) -> None:
        """Insert a new record; refuses to write over an existing one."""
        if not self._state.adding or force_update or update_fields is not None:
            raise AuditAppendOnlyError("Audit records are append-only: a record never changes.")
        super().save(force_insert=True, using=using)

    def delete(self, using: Any = None, keep_parents: bool = False) -> tuple[int, dict[str, int]]:
        raise AuditAppendOnlyError("Audit records are append-only: they cannot be deleted.")
