"""The one per-process cache: expiry, bounds, least recently used first."""

from __future__ import annotations

import pytest

from kernel.ttlcache import TTLCache


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_entries_expire_after_their_ttl() -> None:
    clock = Clock()
    cache: TTLCache[str, int] = TTLCache(ttl=5, max_entries=10, clock=clock)
    cache.set("a", 1)
    clock.now = 4.9
    assert cache.get("a") == 1
    clock.now = 5.0
    assert cache.get("a") is None
    assert len(cache) == 0


def test_it_never_holds_more_than_its_bound_and_drops_the_least_recently_used() -> None:
    cache: TTLCache[int, int] = TTLCache(ttl=None, max_entries=3)
    for i in range(3):
        cache.set(i, i)
    assert cache.get(0) == 0  # 0 is now the most recently used
    cache.set(3, 3)
    assert cache.get(1) is None
    assert [cache.get(k) for k in (0, 2, 3)] == [0, 2, 3]
    for i in range(100):
        cache.set(i + 10, i)
    assert len(cache) == 3


def test_pop_and_clear() -> None:
    cache: TTLCache[str, int] = TTLCache(ttl=None, max_entries=2)
    cache.set("a", 1)
    cache.pop("a")
    cache.pop("missing")
    assert cache.get("a") is None
    cache.set("b", 2)
    cache.clear()
    assert cache.get("b") is None


def test_a_cache_needs_room_for_one_entry() -> None:
    with pytest.raises(ValueError, match="at least one"):
        TTLCache(ttl=1, max_entries=0)
