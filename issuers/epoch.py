"""The per-organization configuration epoch: a counter in the shared store.

Every write to an issuer, its keys or a policy bumps the organization's epoch once the write has
committed (`transaction.on_commit`), through model signals connected in the apps' `ready()`, so
no write path can forget it (web, API, admin, Celery). The exchange caches an organization's
trust configuration per process stamped with the epoch it saw before reading the database, and
uses the cache only while the epoch it reads (in the exchange's one Redis round trip) is the same.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.cache import cache
from django.db import transaction

from kernel.sharedstore import PREFIX, redis_client

logger = logging.getLogger(__name__)


def epoch_key(organization_id: Any) -> str:
    return f"{PREFIX}epoch:{organization_id}"


def _bump_now(organization_id: Any) -> None:
    key = epoch_key(organization_id)
    try:
        client = redis_client()
        if client is not None:
            client.incr(key)
        elif not cache.add(key, 1, timeout=None):
            cache.incr(key)
    except Exception:  # the shared store is down: exchanges then read the database anyway
        logger.warning("configuration epoch of organization %s not bumped", organization_id)


def bump_epoch(organization_id: Any) -> None:
    """Bump the organization's configuration epoch now and again after the transaction commits.

    The bump after commit is the one that makes every process read the committed rows; the one
    now only makes them read the database a little earlier (what they cache then is stamped
    with an epoch that the commit's bump replaces), and it holds where nothing commits (tests
    run in a transaction that is rolled back).
    """
    if organization_id is None:
        return
    _bump_now(organization_id)
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(lambda: _bump_now(organization_id))


def read_epoch(organization_id: Any) -> str | None:
    """The current epoch through the cache API (the exchange reads it in its own round trip)."""
    value = cache.get(epoch_key(organization_id))
    return None if value is None else str(value)


def on_trust_write(sender: Any, instance: Any, **kwargs: Any) -> None:
    """Signal receiver: any saved or deleted issuer, key or policy row bumps its org's epoch."""
    organization_id = getattr(instance, "organization_id", None)
    if organization_id is None and getattr(instance, "issuer_id", None) is not None:
        # A key: its issuer, as loaded with it, or its organization by one query (a key deleted
        # with its issuer finds none; the issuer's own deletion bumps the epoch then).
        issuer = instance._state.fields_cache.get("issuer")
        if issuer is not None:
            organization_id = issuer.organization_id
        else:
            from issuers.models import Issuer

            organization_id = (
                Issuer.objects.filter(pk=instance.issuer_id)
                .values_list("organization_id", flat=True)
                .first()
            )
    bump_epoch(organization_id)


def connect(*senders: str) -> None:
    """Bump the epoch on every save and delete of these models ("app.Model")."""
    from django.db.models.signals import post_delete, post_save

    for sender in senders:
        post_save.connect(on_trust_write, sender=sender, dispatch_uid=f"epoch-save-{sender}")
        post_delete.connect(on_trust_write, sender=sender, dispatch_uid=f"epoch-delete-{sender}")
