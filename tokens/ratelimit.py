"""Fixed-window rate limits shared by every process through the cache (Redis in production)."""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass

from django.core.cache import cache

logger = logging.getLogger(__name__)
WINDOW_SECONDS = 60


@dataclass(frozen=True)
class Limits:
    per_ip: int = 300
    per_subject: int = 60


def hit(bucket: str, limit: int, *, now: float | None = None) -> int | None:
    """Count one attempt in `bucket`; the seconds to wait when over `limit`, else None.

    Fails open when the cache is unreachable: rate limiting protects capacity, and an outage of
    Redis must not stop CI (single-use checks fail closed on their own).
    """
    if limit <= 0:
        return None
    now = time.time() if now is None else now
    window = int(now // WINDOW_SECONDS)
    key = "rl:" + hashlib.sha256(f"{bucket}:{window}".encode()).hexdigest()[:32]
    try:
        count = 1 if cache.add(key, 1, timeout=WINDOW_SECONDS + 5) else cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout=WINDOW_SECONDS + 5)
        count = 1
    except Exception:  # the shared store is down
        logger.warning("rate limit store unavailable; not limiting", exc_info=False)
        return None
    if count > limit:
        return max(1, int((window + 1) * WINDOW_SECONDS - now))
    return None
