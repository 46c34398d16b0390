"""Bounds on the outbound work one web request may start for an organization.

A slow issuer must not hold the web workers that every organization shares, so fetches started
from web requests (registration, discovery, pin checks, manual refreshes) get:

- one deadline for the whole operation (discovery document *and* JWKS), not a timeout per step;
- at most `FETCHES_PER_ORGANIZATION` such operations in flight per organization, counted in the
  shared cache (Redis in production), so the bound holds across processes and machines. A
  further one is refused at once (`IssuerBusy`, 429) instead of queueing behind the slow one.

It fails open when the cache is unreachable (and logs it), like the exchange's rate limits: the
deadline still bounds every request, and a Redis outage must not stop admins from managing
issuers. Scheduled refreshes run in Celery workers and are not limited here.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from django.core.cache import cache

from issuers.errors import IssuerBusy

logger = logging.getLogger(__name__)

FETCHES_PER_ORGANIZATION = 1
WEB_DEADLINE = 5.0
# A slot outlives its deadline by this much, so a killed process frees it on its own.
SLOT_MARGIN = 10


def _slot_key(organization_id: object, index: int) -> str:
    return f"issuer-fetch:{organization_id}:{index}"


@contextmanager
def organization_fetch_slot(
    organization_id: object,
    *,
    limit: int = FETCHES_PER_ORGANIZATION,
    hold: float = WEB_DEADLINE + SLOT_MARGIN,
) -> Iterator[None]:
    """Hold one of the organization's fetch slots for the block; raises IssuerBusy if none.

    Does not wait for a slot: a second registration while one is running is refused at once.
    """
    token = secrets.token_hex(16)
    held: str | None = None
    try:
        for index in range(limit):
            if cache.add(_slot_key(organization_id, index), token, timeout=int(hold) + 1):
                held = _slot_key(organization_id, index)
                break
    except Exception:  # the shared store is down
        logger.warning("issuer fetch slots unavailable; not limiting", exc_info=False)
    else:
        if held is None:
            raise IssuerBusy()
    try:
        yield
    finally:
        if held is not None:
            _release(held, token)


def _release(key: str, token: str) -> None:
    """Free a slot if it is still ours (it may have expired and been taken by now)."""
    try:
        if cache.get(key) == token:
            cache.delete(key)
    except Exception:  # it expires on its own
        logger.warning("could not free an issuer fetch slot; it expires by itself")
