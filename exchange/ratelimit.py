"""The exchange's one round trip to the shared store (Redis in production).

Fixed-window rate limits (per client address, per subject of an issuer) and the organization's
configuration epoch (`issuers/epoch.py`) are read together: INCR + EXPIRE for each counter and a
GET of the epoch in one pipeline. Fails open for the limits when the store is unreachable (rate
limiting protects capacity, and an outage of Redis must not stop CI); the epoch is then unknown,
so the caller reads its trust configuration from the database instead of trusting its cache.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache

from issuers.epoch import epoch_key
from kernel.sharedstore import PREFIX, redis_client

logger = logging.getLogger(__name__)
WINDOW_SECONDS = 60


@dataclass(frozen=True)
class Limits:
    per_ip: int = 300
    per_subject: int = 60


@dataclass(frozen=True)
class Shared:
    """What one round trip read: each counter's count in its window, and the epoch.

    A count is None when the store was unreachable (not limited); `epoch` is None when it is
    unknown (unreachable, or not asked), "" when the organization never had one.
    """

    counts: tuple[int | None, ...]
    epoch: str | None


def _key(bucket: str, window: int) -> str:
    return PREFIX + "rl:" + hashlib.sha256(f"{bucket}:{window}".encode()).hexdigest()[:32]


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)


def _incr(key: str) -> int:
    """One counter through the cache API (no Redis: the tests' local-memory cache)."""
    try:
        return 1 if cache.add(key, 1, timeout=WINDOW_SECONDS + 5) else int(cache.incr(key))
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout=WINDOW_SECONDS + 5)
        return 1


def round_trip(buckets: Sequence[str], *, organization_id: Any, now: float) -> Shared:
    """Count one attempt in each bucket and read the organization's epoch (None: not asked)."""
    window = int(now // WINDOW_SECONDS)
    keys = [_key(bucket, window) for bucket in buckets]
    try:
        client = redis_client()
        if client is not None:
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.incr(key)
                pipe.expire(key, WINDOW_SECONDS + 5)
            if organization_id is not None:
                pipe.get(epoch_key(organization_id))
            replies = pipe.execute()
            counts = tuple(int(replies[2 * i]) for i in range(len(keys)))
            epoch = _text(replies[-1]) if organization_id is not None else None
        else:
            counts = tuple(_incr(key) for key in keys)
            epoch = None
            if organization_id is not None:
                epoch = _text(cache.get(epoch_key(organization_id)))
    except Exception:  # the shared store is down
        logger.warning(
            "rate limit store unavailable; not limiting (trust read from the database)",
            exc_info=False,
        )
        return Shared(counts=tuple(None for _ in keys), epoch=None)
    return Shared(counts=counts, epoch=epoch)


def wait_seconds(count: int | None, limit: int, now: float) -> int | None:
    """The seconds to wait when `count` is over `limit` in the current window, else None."""
    if limit <= 0 or count is None or count <= limit:
        return None
    window = int(now // WINDOW_SECONDS)
    return max(1, int((window + 1) * WINDOW_SECONDS - now))
