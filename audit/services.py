"""Writes: one audit record per configuration change, in the change's own transaction."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from functools import partial
from typing import Any

from django.db import transaction
from django.utils import timezone

from audit.context import Actor, current_actor
from audit.diff import diff
from audit.models import AuditEvent, Category
from audit.tenant import Tenant

# Called after the commit of every record (notifications register here: `notifications.apps`).
_after_commit: list[Callable[[int], None]] = []


def on_recorded(callback: Callable[[int], None]) -> None:
    """Call `callback(audit_event_id)` after each recorded change commits."""
    if callback not in _after_commit:
        _after_commit.append(callback)


def audit_record(
    *,
    event: str,
    description: str,
    organization: Tenant | None,
    target: Any = None,
    object_type: str = "",
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    secret_fields: frozenset[str] = frozenset(),
    actor: Actor | None = None,
    category: str = Category.CHANGE,
    now: datetime | None = None,
) -> AuditEvent:
    """Record one change by the current actor (or `actor`).

    Must run inside the transaction that makes the change, so a change that fails leaves no
    record and a record never describes a change that did not happen.
    """
    actor = actor or current_actor()
    record = AuditEvent(
        created=now or timezone.now(),
        organization_id=organization.pk if organization is not None else None,
        organization_login=organization.login if organization is not None else "",
        category=category,
        event=event[:64],
        description=description[:500],
        object_type=(object_type or (type(target).__name__.lower() if target is not None else ""))[
            :64
        ],
        object_id=str(getattr(target, "pk", "") or "")[:64],
        object_repr=str(target)[:300] if target is not None else "",
        changes=diff(before, after, secret_fields=secret_fields),
        actor_kind=actor.kind,
        actor_user_id=actor.user_id,
        actor_username=actor.username[:150],
        actor_token_id=actor.token_id,
        actor_token_name=actor.token_name[:200],
        actor_token_lineage=list(actor.token_lineage),
        client_ip=actor.client_ip,
        user_agent=actor.user_agent[:512],
        request_id=actor.request_id[:64],
    )
    record.save(force_insert=True)
    for callback in _after_commit:
        transaction.on_commit(partial(callback, record.pk))
    return record


def audit_alert(
    *, event: str, description: str, organization: Tenant | None, target: Any = None
) -> AuditEvent:
    """Record an alert the portal raises itself (delivered by notifications, not a change)."""
    return audit_record(
        event=event,
        description=description,
        organization=organization,
        target=target,
        actor=Actor(),
        category=Category.ALERT,
    )
