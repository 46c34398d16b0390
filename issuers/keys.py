"""Finding the key that verifies a token: what the exchange calls, nothing else."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Q
from django.utils import timezone

from issuers.errors import KeyLookupError
from issuers.jwks import KID_PATTERN, algorithm_fits_key, load_public_key
from issuers.models import Issuer, IssuerKey
from kernel.ttlcache import TTLCache

STALE_AFTER = timedelta(days=7)
# Warn this long before the last good key set goes stale.
STALE_WARNING = timedelta(days=2)
ON_DEMAND_INTERVAL = timedelta(seconds=60)


@dataclass(frozen=True)
class CachedKey:
    kid: str
    kty: str
    alg: str
    crv: str | None
    jwk: dict[str, Any]


# Per process: issuer id -> (keys_version, {kid: key}); parsed key objects by (issuer, kid, alg).
# The version in the issuer row decides which entry is live; old versions age out.
_keys_cache: TTLCache[Any, tuple[int, dict[str, CachedKey]]] = TTLCache(
    ttl=None, max_entries=10_000
)
_objects_cache: TTLCache[tuple[Any, int, str, str], Any] = TTLCache(ttl=None, max_entries=10_000)


def issuer_health_problem(issuer: Issuer, now: datetime) -> str | None:
    """Why the issuer's keys may not be used now, or None.

    The last good set is used while the issuer is unreachable, for up to 7 days after the last
    successful fetch; after that its tokens are refused until a fetch succeeds.
    """
    if issuer.is_static:
        return None
    if issuer.last_success_at is None:
        return "the issuer's keys have never been fetched"
    if now - issuer.last_success_at > STALE_AFTER:
        return (
            f"the issuer's keys were last fetched {issuer.last_success_at:%Y-%m-%d %H:%M} UTC, "
            "more than 7 days ago"
        )
    return None


def _active_keys(issuer: Issuer) -> dict[str, CachedKey]:
    cached = _keys_cache.get(issuer.pk)
    if cached is not None and cached[0] == issuer.keys_version:
        return cached[1]
    rows = IssuerKey.objects.filter(issuer_id=issuer.pk, removed_at__isnull=True)
    keys = {
        row.kid: CachedKey(row.kid, row.kty, row.alg, row.jwk.get("crv"), row.jwk) for row in rows
    }
    _keys_cache.set(issuer.pk, (issuer.keys_version, keys))
    return keys


def _key_object(issuer: Issuer, key: CachedKey, alg: str) -> Any:
    cache_key = (issuer.pk, issuer.keys_version, key.kid, alg)
    found = _objects_cache.get(cache_key)
    if found is None:
        found = load_public_key(key.jwk, alg)
        _objects_cache.set(cache_key, found)
    return found


def claim_on_demand_refresh(issuer: Issuer, now: datetime) -> bool:
    """Take the right to refresh this issuer now: one process wins per issuer per 60 s.

    A conditional UPDATE on the issuer row, so the gate holds across every web process and
    machine on any database, with no lock held while fetching.
    """
    won = (
        Issuer.objects.filter(pk=issuer.pk)
        .filter(
            Q(on_demand_refresh_at__isnull=True)
            | Q(on_demand_refresh_at__lte=now - ON_DEMAND_INTERVAL)
        )
        .update(on_demand_refresh_at=now)
    )
    return won == 1


def get_verification_key(
    issuer: Issuer,
    kid: str,
    alg: str,
    *,
    now: datetime | None = None,
    refresh: Callable[[Issuer], Any] | None = None,
) -> Any:
    """The public key object to verify a token of `issuer` signed with `kid` and `alg`.

    Looks `kid` up only as a dictionary key among the issuer's active keys (never another
    issuer's). Refuses an algorithm outside the issuer's allow-list or one that does not fit the
    key (or differs from the key's own `alg`). An unknown `kid` triggers at most one synchronous
    refresh per issuer per 60 s across processes (`refresh`, when given); otherwise it is refused.
    Does not verify anything itself.
    """
    now = now or timezone.now()
    if not KID_PATTERN.match(kid):
        raise KeyLookupError("bad_kid", "the kid is not of the accepted form")
    check_algorithm(alg, issuer.algorithms)
    problem = issuer_health_problem(issuer, now)
    if problem is not None:
        raise KeyLookupError("issuer_unhealthy", problem)
    key = _active_keys(issuer).get(kid)
    if (
        key is None
        and refresh is not None
        and not issuer.is_static
        and claim_on_demand_refresh(issuer, now)
    ):
        refresh(issuer)
        issuer.refresh_from_db()
        key = _active_keys(issuer).get(kid)
    if key is None:
        raise KeyLookupError("unknown_kid", "no key of this issuer has that kid")
    check_key_algorithm(key, alg)
    return _key_object(issuer, key, alg)


def check_algorithm(alg: str, allowed: Collection[str]) -> None:
    """Refuse an algorithm outside the issuer's allow-list (pure)."""
    if alg not in allowed:
        raise KeyLookupError("alg_not_allowed", f"{alg} is not allowed for this issuer")


def check_key_algorithm(key: CachedKey, alg: str) -> None:
    """Refuse `alg` for a key that declares another algorithm or cannot be used with it (pure)."""
    if key.alg and key.alg != alg:
        raise KeyLookupError("alg_mismatch", f"the key is for {key.alg}, the token says {alg}")
    if not algorithm_fits_key(alg, key.kty, key.crv):
        raise KeyLookupError("alg_mismatch", f"{alg} does not fit the issuer's {key.kty} key")
