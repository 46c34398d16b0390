"""Single-use `jti`s: recorded atomically in a store every process shares."""

from __future__ import annotations

import uuid
from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction

from tokens.errors import TemporarilyUnavailable
from tokens.models import UsedJti


def claim_jti(*, issuer_id: uuid.UUID, jti: str, expires: datetime, now: datetime) -> bool:
    """Record a `jti` until `expires`; False when it was already used.

    Redis `SET NX EX` when REDIS_URL is set (fails closed, with a clear error, when Redis is
    unreachable); otherwise a unique row in the database.
    """
    ttl = max(1, int((expires - now).total_seconds()))
    if settings.REDIS_URL:
        try:
            return bool(cache.add(f"jti:{issuer_id}:{jti}", 1, timeout=ttl))
        except Exception as exc:  # redis.exceptions.* — the store is down: refuse, never allow
            raise TemporarilyUnavailable("replay_store_unavailable", str(exc)[:200]) from exc
    try:
        with transaction.atomic():
            UsedJti.objects.create(issuer_id=issuer_id, jti=jti, expires=expires)
    except IntegrityError:
        return False
    return True
