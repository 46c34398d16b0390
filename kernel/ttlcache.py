"""One bounded per-process cache for everything the portal keeps in memory between requests.

Entries expire `ttl` seconds after they were stored (never, with `ttl=None`); beyond
`max_entries` the least recently used entry goes first, so no cache grows without bound
whatever callers ask for. Safe to share between threads. What is cached, and what makes an
entry stale before its time, is the caller's business: `pop` and `clear` are there for that.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TTLCache(Generic[K, V]):
    def __init__(
        self,
        *,
        ttl: float | None,
        max_entries: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError("a cache holds at least one entry")
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K, *, clock: Callable[[], float] | None = None) -> V | None:
        """The live value for `key`, or None (an expired entry is dropped).

        `clock` replaces the cache's clock for this call (a caller with its own injected clock).
        """
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            stored, value = entry
            if self.ttl is not None and (clock or self._clock)() - stored >= self.ttl:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return value

    def set(self, key: K, value: V, *, clock: Callable[[], float] | None = None) -> None:
        with self._lock:
            self._entries[key] = ((clock or self._clock)(), value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def pop(self, key: K) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
