"""The shared store (Redis in production) for code that needs more than Django's cache API.

`redis_client()` is the default cache's own Redis client when the cache is Redis, so a caller
can send several commands in one round trip (a pipeline); None otherwise (the local-memory cache
of the tests and of `make run`), where callers fall back to the cache API. Keys written through
the client carry `PREFIX` so they stay apart from the cache API's own keys.
"""

from __future__ import annotations

from typing import Any

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache

PREFIX = "trustportal:x:"


def redis_client() -> Any | None:
    """The Redis client behind the default cache, or None when the cache is not Redis."""
    backend = caches["default"]
    if isinstance(backend, RedisCache):
        return backend._cache.get_client(write=True)  # type: ignore[attr-defined]
    return None
