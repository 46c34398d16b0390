"""When each access token was last used, buffered off the request path and written in bulk.

API authentication records "token N used at T" here (one Redis command, or a dict update in
the embedded default); the `flush_token_usage` task drains the buffer every minute and writes
`last_used` with a few bulk UPDATEs (`tokens.services.token_usage_flush`).

- `RedisUsageBuffer` (REDIS_URL set): a sorted set shared by every process; `ZADD GT` keeps the
  latest use per token, and draining reads and deletes it in one MULTI/EXEC so concurrent
  flushes never see the same entries. A Redis outage loses usage times, never a request.
- `LocalUsageBuffer` (no Redis): per process. The Celery worker cannot see a web process's
  memory, so a web process also drains its own buffer on a use that finds an entry older than a
  minute — one bulk write per process per minute at most.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Protocol

import redis
from django.conf import settings

logger = logging.getLogger(__name__)

REDIS_KEY = "trustportal:tokens:last-used"
LOCAL_DRAIN_AFTER = timedelta(minutes=1)


class UsageBuffer(Protocol):
    """Where uses wait for the next flush."""

    def record(self, token_id: int, used_at: datetime) -> bool:
        """Note a use; True when the caller should drain now (local buffers only)."""
        ...

    def drain(self) -> dict[int, datetime]:
        """Take every pending use (latest per token), leaving the buffer empty."""
        ...

    def pending(self, token_ids: Collection[int]) -> dict[int, datetime]:
        """The uses of these tokens waiting for the next flush (read only), for pages."""
        ...


class RedisUsageBuffer:
    """Uses in a Redis sorted set (member: token id, score: Unix time of the latest use).

    A process sends a token's use to Redis at most once per `NOTE_EVERY`: `last_used` is kept
    to the minute, so the uses in between would change nothing but cost a round trip each.
    """

    NOTE_EVERY = timedelta(minutes=1)
    MAX_NOTED = 100_000

    def __init__(self, client: redis.Redis, key: str = REDIS_KEY) -> None:
        self.client = client
        self.key = key
        self._noted: dict[int, datetime] = {}

    def record(self, token_id: int, used_at: datetime) -> bool:
        noted = self._noted.get(token_id)
        if noted is not None and timedelta(0) <= used_at - noted < self.NOTE_EVERY:
            return False
        try:
            self.client.zadd(self.key, {str(token_id): used_at.timestamp()}, gt=True)
        except redis.RedisError as exc:
            logger.warning("token usage not recorded (%s)", type(exc).__name__)
            return False
        if len(self._noted) >= self.MAX_NOTED:
            self._noted.clear()
        self._noted[token_id] = used_at
        return False

    def forget(self) -> None:
        """Forget which uses this process sent (tests reuse token ids)."""
        self._noted.clear()

    def pending(self, token_ids: Collection[int]) -> dict[int, datetime]:
        ids = sorted(set(token_ids))
        if not ids:
            return {}
        try:
            scores = self.client.zmscore(self.key, [str(i) for i in ids])
        except redis.RedisError as exc:
            logger.warning("token usage not read (%s)", type(exc).__name__)
            return {}
        return {
            token_id: datetime.fromtimestamp(score, tz=UTC)
            for token_id, score in zip(ids, scores, strict=True)
            if score is not None
        }

    def drain(self) -> dict[int, datetime]:
        # MULTI/EXEC: read and delete as one step, so a concurrent flush or a use in between
        # is neither written twice nor lost.
        pipe = self.client.pipeline(transaction=True)
        pipe.zrange(self.key, 0, -1, withscores=True)
        pipe.delete(self.key)
        entries, _ = pipe.execute()
        return {int(member): datetime.fromtimestamp(score, tz=UTC) for member, score in entries}


class LocalUsageBuffer:
    """Uses in this process's memory (the embedded default without Redis)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[int, datetime] = {}
        self._oldest: datetime | None = None

    def record(self, token_id: int, used_at: datetime) -> bool:
        with self._lock:
            previous = self._pending.get(token_id)
            if previous is None or used_at > previous:
                self._pending[token_id] = used_at
            if self._oldest is None or used_at < self._oldest:
                self._oldest = used_at
            return used_at - self._oldest >= LOCAL_DRAIN_AFTER

    def pending(self, token_ids: Collection[int]) -> dict[int, datetime]:
        with self._lock:
            return {i: self._pending[i] for i in token_ids if i in self._pending}

    def drain(self) -> dict[int, datetime]:
        with self._lock:
            pending, self._pending, self._oldest = self._pending, {}, None
        return pending


_local = LocalUsageBuffer()


@cache
def _redis_buffer(url: str) -> RedisUsageBuffer:
    return RedisUsageBuffer(redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1))


def default_buffer() -> UsageBuffer:
    """The buffer this deployment uses: Redis when REDIS_URL is set, else this process's."""
    url = settings.REDIS_URL
    return _redis_buffer(url) if url else _local
