"""Everything the exchange reads or writes, behind one interface.

`ExchangeStore` is what `exchange.pipeline.exchange` needs (a Protocol), so the pipeline can be
read and tested without Django; `DjangoStore` is the implementation over the domain apps, with
the per-process caches: organizations by login (30 s) and trust configuration (an issuer with its
policy version) stamped with the organization's configuration epoch (`issuers/epoch.py`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from django.db.models import Q

from exchange import ratelimit, recording, replay, throttled
from exchange.lookup import exchange_issuer
from issuers import services as issuer_services
from issuers.keys import get_verification_key
from issuers.models import Issuer
from kernel.ttlcache import TTLCache
from policies.matching import CompiledPolicy, Grant
from policies.selectors import compiled_policy
from tokens.errors import InvalidScope
from trustportal.models import Membership, Organization, Runner, Team

ORGANIZATION_CACHE_SECONDS = 30.0
# A trust entry is used only while the organization's epoch is the one it was stamped with; the
# TTL bounds how long an entry may live when an epoch bump was lost (the store was down).
TRUST_CACHE_SECONDS = 60.0
ISSUER_LAST_USED_GRANULARITY = timedelta(minutes=1)


@dataclass(frozen=True)
class OrganizationRef:
    id: int
    login: str


@dataclass(frozen=True)
class Trust:
    """An issuer as the exchange uses it, with its policy's id and version."""

    issuer: Any  # issuers.models.Issuer (read-only here)
    policy_id: uuid.UUID
    policy_version: int
    stamp: str | None  # the epoch seen before it was read; None: never trusted from cache


class ExchangeStore(Protocol):
    def organization(self, login: str) -> OrganizationRef | None: ...

    def cached_trust(self, organization_id: int, iss: str) -> Trust | None: ...

    def trust(self, organization_id: int, iss: str, *, stamp: str | None) -> Trust | None: ...

    def last_epoch(self, organization_id: int) -> str | None: ...

    def verification_key(self, issuer: Any, kid: str, alg: str, *, now: datetime) -> Any: ...

    def compiled_policy(self, trust: Trust) -> CompiledPolicy: ...

    def shared(
        self, buckets: Sequence[str], *, organization_id: int | None, now: float
    ) -> ratelimit.Shared: ...

    def claim_jti(self, *, issuer_id: Any, jti: str, expires: datetime, now: datetime) -> bool: ...

    def grant_target(self, organization_id: int, grant: Grant) -> dict[str, Any]: ...

    def record_allowed(self, token: Mapping[str, Any], event: Mapping[str, Any]) -> int: ...

    def record_refused(self, event: Mapping[str, Any]) -> None: ...

    def count_rate_limited(
        self, *, bucket: str, at: float, organization_id: int | None, request_id: str
    ) -> int: ...

    def touch_issuer(self, issuer: Any, now: datetime) -> None: ...


_organizations: TTLCache[str, OrganizationRef] = TTLCache(
    ttl=ORGANIZATION_CACHE_SECONDS, max_entries=10_000
)
_trust: TTLCache[tuple[int, str], Trust] = TTLCache(ttl=TRUST_CACHE_SECONDS, max_entries=20_000)
_epochs: TTLCache[int, str] = TTLCache(ttl=TRUST_CACHE_SECONDS, max_entries=20_000)


def forget_cached() -> None:
    """Drop this process's exchange caches (between tests)."""
    _organizations.clear()
    _trust.clear()
    _epochs.clear()


class DjangoStore:
    """The exchange's store over the Django models, the shared store and the caches."""

    def __init__(self, refresh: Callable[[Issuer], Any] | None = None) -> None:
        self._refresh = refresh or _on_demand_refresh

    def organization(self, login: str) -> OrganizationRef | None:
        """Found organizations are cached per process for 30 s (a rename is a superuser
        operation); unknown logins are never cached."""
        found = _organizations.get(login)
        if found is not None:
            return found
        row = Organization.objects.filter(login=login).values_list("id", "login").first()
        if row is None:
            return None
        found = OrganizationRef(id=row[0], login=row[1])
        _organizations.set(login, found)
        return found

    def cached_trust(self, organization_id: int, iss: str) -> Trust | None:
        return _trust.get((organization_id, iss))

    def trust(self, organization_id: int, iss: str, *, stamp: str | None) -> Trust | None:
        """The issuer and policy version from the database, cached under `stamp`."""
        found = exchange_issuer(organization_id=organization_id, iss=iss)
        if found is None:
            _trust.pop((organization_id, iss))
            return None
        issuer, policy = found
        trust = Trust(issuer, policy.pk, policy.version, stamp)
        if stamp is not None:
            _trust.set((organization_id, iss), trust)
        else:
            _trust.pop((organization_id, iss))
        return trust

    def last_epoch(self, organization_id: int) -> str | None:
        return _epochs.get(organization_id)

    def verification_key(self, issuer: Any, kid: str, alg: str, *, now: datetime) -> Any:
        return get_verification_key(issuer, kid, alg, now=now, refresh=self._refresh)

    def compiled_policy(self, trust: Trust) -> CompiledPolicy:
        return compiled_policy(trust.policy_id, trust.policy_version)

    def shared(
        self, buckets: Sequence[str], *, organization_id: int | None, now: float
    ) -> ratelimit.Shared:
        result = ratelimit.round_trip(buckets, organization_id=organization_id, now=now)
        if organization_id is not None:
            if result.epoch is None:  # unreachable: trust nothing this process cached
                _trust.clear()
                _epochs.clear()
            else:
                _epochs.set(organization_id, result.epoch)
        return result

    def claim_jti(self, *, issuer_id: Any, jti: str, expires: datetime, now: datetime) -> bool:
        return replay.claim_jti(issuer_id=issuer_id, jti=jti, expires=expires, now=now)

    def grant_target(self, organization_id: int, grant: Grant) -> dict[str, Any]:
        """The team / user / runner the grant names, which must exist in the organization."""
        if grant.token_type == "team":
            team = Team.objects.filter(organization_id=organization_id, name=grant.team).first()
            if team is None:
                raise InvalidScope("unknown_team", str(grant.team)[:100])
            return {"team_id": team.pk}
        if grant.token_type == "personal":
            user_id = (
                Membership.objects.filter(
                    organization_id=organization_id,
                    user__username=grant.user,
                    user__is_active=True,
                )
                .values_list("user_id", flat=True)
                .first()
            )
            if user_id is None:
                raise InvalidScope("unknown_user", str(grant.user)[:100])
            return {"user_id": user_id}
        if grant.token_type == "runner":
            runner = Runner.objects.filter(
                organization_id=organization_id, name=grant.runner
            ).first()
            if runner is None:
                raise InvalidScope("unknown_runner", str(grant.runner)[:100])
            return {"runner_id": runner.pk}
        return {}

    def record_allowed(self, token: Mapping[str, Any], event: Mapping[str, Any]) -> int:
        return recording.record_allowed(token, event)

    def record_refused(self, event: Mapping[str, Any]) -> None:
        recording.record_refused(event)

    def count_rate_limited(
        self, *, bucket: str, at: float, organization_id: int | None, request_id: str
    ) -> int:
        return throttled.count_rate_limited(
            bucket=bucket, at=at, organization_id=organization_id, request_id=request_id
        )

    def touch_issuer(self, issuer: Any, now: datetime) -> None:
        """Note the issuer's last use, at most once a minute (no epoch bump: not trust)."""
        if issuer.last_used is None or now - issuer.last_used >= ISSUER_LAST_USED_GRANULARITY:
            Issuer.objects.filter(pk=issuer.pk).filter(
                Q(last_used__isnull=True) | Q(last_used__lt=now - ISSUER_LAST_USED_GRANULARITY)
            ).update(last_used=now)
            issuer.last_used = now


def _on_demand_refresh(issuer: Issuer) -> None:
    issuer_services.issuer_refresh_keys(
        issuer=issuer, trigger="on_demand", outbound=issuer_services.default_outbound()
    )
