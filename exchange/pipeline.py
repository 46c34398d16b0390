"""The token exchange: pure steps returning frozen results, and the one function doing I/O.

    parse → decode → verify → evaluate → mint → record

`exchange` reads through an `ExchangeStore` (`exchange/store.py`) and keeps what is known so far
in a frozen `Known`, replaced after each step, so a refusal at any step records all of it. Every
attempt writes exactly one event (rate-limited ones after the first of a window are counted).

The common path: the organization and the issuer with its policy version come from per-process
caches; the one round trip to Redis counts both rate limits and reads the organization's
configuration epoch, and the cached trust is used only when the epoch is the one it was stamped
with (otherwise, or when Redis is unreachable, it is read again from the database and the token
verified again). Then the single-use claim (single-use issuers), and one INSERT of token + event.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from django.utils import timezone

from exchange.bounded import bound_claims
from exchange.minting import Minted, mint
from exchange.ratelimit import wait_seconds
from exchange.recording import IssuerRetired
from exchange.request import ExchangeRequest, RawRequest, organization_of, parse_request, read_body
from exchange.store import DjangoStore, ExchangeStore, OrganizationRef, Trust
from exchange.verification import (
    LEEWAY_SECONDS,
    UnverifiedToken,
    VerifiedToken,
    decode_unverified,
    verify_subject_token,
)
from kernel.config import TrustPortalConfig
from policies.matching import CompiledPolicy, Evaluation, Grant, TokenRequest
from tokens.errors import InvalidRequest, InvalidScope, OAuthError, RateLimited, UntrustedToken
from tokens.models import Decision
from tokens.trace import compact_trace

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Caller:
    request_id: str
    client_ip: str | None
    user_agent: str


@dataclass(frozen=True)
class Exchanged:
    access_token: str
    issued_token_type: str
    expires_in: int
    scope: str
    event_id: int
    organization: str

    def body(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "issued_token_type": self.issued_token_type,
            "token_type": "token",
            "expires_in": self.expires_in,
            "scope": self.scope,
        }


@dataclass(frozen=True)
class Evaluated:
    """Step 4's result: the policy version that decided and how."""

    policy_id: Any
    policy_version: int
    evaluation: Evaluation


@dataclass(frozen=True)
class Known:
    """What is known so far about an attempt; each step's result replaces it."""

    caller: Caller
    now: datetime
    raw: RawRequest | None = None
    request: ExchangeRequest | None = None
    organization: OrganizationRef | None = None
    unverified: UnverifiedToken | None = None
    issuer: Any = None
    evaluated: Evaluated | None = None
    counted: bool = False  # the rate limits were counted in the round trip


# ---- pure steps ---------------------------------------------------------------------------


def parse(body: bytes, content_type: str) -> RawRequest:
    """Step 1a: the body's fields (refusals name what could be read)."""
    return read_body(body, content_type)


def decode(request: ExchangeRequest) -> UnverifiedToken:
    """Step 2: the subject token decoded, nothing trusted."""
    return decode_unverified(request.subject_token)


def iss_of(unverified: UnverifiedToken) -> str | None:
    """The `iss` to look up, or None when it cannot name an issuer (verification refuses)."""
    iss = unverified.claims.get("iss")
    return iss if isinstance(iss, str) and 0 < len(iss) <= 2048 else None


def evaluate(
    compiled: CompiledPolicy, trust: Trust, verified: VerifiedToken, request: ExchangeRequest
) -> Evaluated:
    """Step 4: the issuer's compiled policy decides (deny wins, then the first allow).

    A refusal carries the full per-definition trace (stored for the admin); an allow carries
    none: it is recomputed on demand from the stored claims and policy version.
    """
    token_request = TokenRequest(token_type=request.token_type, scope=request.scope_name)
    evaluation = compiled.decide(verified.claims, token_request)
    if evaluation.grant is None:
        evaluation = compiled.evaluate(verified.claims, token_request)
    else:
        evaluation = replace(evaluation, trace=())
    return Evaluated(trust.policy_id, trust.policy_version, evaluation)


def grant_of(evaluated: Evaluated) -> Grant:
    """The grant of an allowing evaluation; the refusal otherwise."""
    evaluation = evaluated.evaluation
    if evaluation.decision == "deny" or evaluation.grant is None:
        if evaluation.reason == "denied_by_policy":
            raise InvalidRequest("denied_by_policy")
        raise InvalidScope("no_matching_policy")
    return evaluation.grant


def event_row(
    known: Known, *, decision: str, reason: str, error: str = "", detail: str = ""
) -> dict[str, Any]:
    """The exchange event's column values for what is known (pure)."""
    raw, request, unverified = known.raw, known.request, known.unverified
    claims = unverified.claims if unverified is not None else {}
    header = unverified.header if unverified is not None else {}
    organization = known.organization
    evaluated = known.evaluated
    login = request.organization if request else (organization.login if organization else "")
    return {
        "created": known.now,
        "request_id": known.caller.request_id[:64],
        "client_ip": known.caller.client_ip,
        "user_agent": known.caller.user_agent[:512],
        "organization_id": organization.id if organization else None,
        "organization_login": login[:200],
        "issuer_id": known.issuer.pk if known.issuer is not None else None,
        "iss": unverified.claim_text("iss") if unverified else "",
        "sub": unverified.claim_text("sub") if unverified else "",
        "aud": unverified.claim_text("aud") if unverified else "",
        "jti": (unverified.claim_text("jti") if unverified else "")[:256],
        "kid": str(header.get("kid", ""))[:200],
        "alg": str(header.get("alg", ""))[:20],
        # A refusal's claims are the sender's to choose: stored within caps only.
        "claims": claims if decision == Decision.ALLOW else bound_claims(claims),
        "subject_token_sha256": unverified.sha256 if unverified else "",
        "requested_token_type": (request.token_type if request else "")[:16],
        "requested_scope": (request.scope if request else (raw.get("scope") if raw else ""))[:300],
        "requested_expiration": request.expiration if request else None,
        "decision": decision,
        "error": error,
        "reason": reason,
        "detail": detail[:1000],
        "trace": _trace(evaluated),
        "policy_id": evaluated.policy_id if evaluated else None,
        "policy_version": evaluated.policy_version if evaluated else None,
    }


def _trace(evaluated: Evaluated | None) -> list[dict[str, Any]]:
    """A refusal's full trace; an allow's granting definition only (`tokens/trace.py`)."""
    if evaluated is None:
        return []
    grant = evaluated.evaluation.grant
    if grant is not None and evaluated.evaluation.decision == "allow":
        return compact_trace(grant.definition_index)
    return evaluated.evaluation.trace_json()


def token_row(
    known: Known, verified: VerifiedToken, minted: Minted, target: dict[str, Any]
) -> dict[str, Any]:
    """The access token's column values (pure)."""
    assert known.organization is not None and known.evaluated is not None
    return {
        "token_type": minted.token_type,
        "organization_id": known.organization.id,
        "permission": minted.permission,
        "name": f"exchange {known.caller.request_id}"[:200],
        "token_hash": minted.token_hash,
        "prefix": minted.prefix,
        "created": known.now,
        "expires": minted.expires,
        "issuer_id": verified.issuer.pk,
        "policy_id": known.evaluated.policy_id,
        "policy_version": known.evaluated.policy_version,
        "subject": str(verified.claims.get("sub", ""))[:1000],
        **target,
    }


# ---- the I/O around them ------------------------------------------------------------------


def exchange(
    *,
    body: bytes,
    content_type: str,
    caller: Caller,
    config: TrustPortalConfig,
    now: datetime | None = None,
    rng: Callable[[int], bytes] = secrets.token_bytes,
    refresh: Callable[[Any], Any] | None = None,
    store: ExchangeStore | None = None,
) -> Exchanged:
    """Run one exchange attempt end to end; raises an OAuthError after recording a refusal."""
    store = store or DjangoStore(refresh)
    known = Known(caller=caller, now=now or timezone.now())
    try:
        known = replace(known, raw=parse(body, content_type))
        assert known.raw is not None
        request = parse_request(known.raw, audience_prefix=config.audience_prefix)
        # An unknown organization is refused where an unknown issuer is, by the same steps and
        # with the same answer: the endpoint is no oracle of organizations or their issuers.
        known = replace(
            known, request=request, organization=store.organization(request.organization)
        )
        unverified = decode(request)
        known = replace(known, unverified=unverified)
        trust, from_cache = _lookup(store, known, unverified, cached=True)
        known = replace(known, issuer=_trusted(trust))
        try:
            verified = _verify(store, known, request, unverified, trust)
        except OAuthError:
            if not from_cache:
                raise
            # A refusal is never decided by the cache: look the issuer up again and re-verify.
            assert known.organization is not None
            from_cache = False
            trust, _ = _lookup(
                store,
                known,
                unverified,
                cached=False,
                stamp=store.last_epoch(known.organization.id),
            )
            known = replace(known, issuer=_trusted(trust))
            verified = _verify(store, known, request, unverified, trust)
        assert trust is not None
        # The one round trip: both rate limits and the epoch that validates the cached trust.
        at = time.time()
        organization = known.organization
        assert organization is not None
        sub_bucket = f"sub:{verified.issuer.pk}:{unverified.claim_text('sub')}"
        buckets, limits = _buckets(caller, config, sub_bucket)
        shared = store.shared(buckets, organization_id=organization.id, now=at)
        known = replace(known, counted=True)
        for bucket, limit, count in zip(buckets, limits, shared.counts, strict=True):
            wait = wait_seconds(count, limit, at)
            if wait is not None:
                raise RateLimited("rate_limited", wait, bucket=bucket)
        if from_cache and (shared.epoch is None or trust.stamp != shared.epoch):
            # Cached under another epoch (or unknown): read and verify again from the database.
            trust, _ = _lookup(store, known, unverified, cached=False, stamp=shared.epoch)
            known = replace(known, issuer=_trusted(trust))
            verified = _verify(store, known, request, unverified, trust)
            assert trust is not None
        if verified.issuer.single_use:
            exp = int(verified.claims["exp"])
            expires = datetime.fromtimestamp(exp + LEEWAY_SECONDS, tz=known.now.tzinfo)
            jti = str(verified.claims["jti"])
            if not store.claim_jti(
                issuer_id=verified.issuer.pk, jti=jti, expires=expires, now=known.now
            ):
                raise InvalidRequest("jti_replayed")
        known = replace(
            known, evaluated=evaluate(store.compiled_policy(trust), trust, verified, request)
        )
        assert known.evaluated is not None
        grant = grant_of(known.evaluated)
        target = store.grant_target(organization.id, grant)
        minted = mint(
            request, grant, max_expiration=verified.issuer.max_expiration, now=known.now, rng=rng
        )
        event = event_row(known, decision=Decision.ALLOW, reason="allowed")
        event.update(granted_scope=minted.scope, granted_expires=minted.expires)
        try:
            event_id = store.record_allowed(token_row(known, verified, minted, target), event)
        except IssuerRetired:
            raise UntrustedToken("issuer_disabled") from None
    except OAuthError as error:
        _record_refusal(store, known, error, config)
        raise
    store.touch_issuer(verified.issuer, known.now)
    return Exchanged(
        access_token=minted.plaintext,
        issued_token_type=request.requested_token_type,
        expires_in=minted.expires_in,
        scope=minted.scope,
        event_id=event_id,
        organization=organization.login,
    )


def _buckets(
    caller: Caller, config: TrustPortalConfig, sub_bucket: str | None
) -> tuple[list[str], list[int]]:
    buckets: list[str] = []
    limits: list[int] = []
    if caller.client_ip and config.rate_limit_per_ip > 0:
        buckets.append(f"ip:{caller.client_ip}")
        limits.append(config.rate_limit_per_ip)
    if sub_bucket is not None and config.rate_limit_per_subject > 0:
        buckets.append(sub_bucket)
        limits.append(config.rate_limit_per_subject)
    return buckets, limits


def _lookup(
    store: ExchangeStore,
    known: Known,
    unverified: UnverifiedToken,
    *,
    cached: bool,
    stamp: str | None = None,
) -> tuple[Trust | None, bool]:
    """The requested organization's issuer named by `iss`: cached, else from the database.

    Also says whether it came from this process's cache (to be checked against the epoch).
    """
    organization = known.organization
    iss = iss_of(unverified)
    if organization is None or iss is None:
        return None, False
    trust = store.cached_trust(organization.id, iss) if cached else None
    if trust is not None:
        return trust, True
    epoch = store.last_epoch(organization.id) if cached else stamp
    return store.trust(organization.id, iss, stamp=epoch), False


def _verify(
    store: ExchangeStore,
    known: Known,
    request: ExchangeRequest,
    unverified: UnverifiedToken,
    trust: Trust | None,
) -> VerifiedToken:
    """Step 3: verify against the issuer found (SPEC §4 order, `exchange/verification.py`)."""

    def issuer_for(iss: str) -> Any:
        if known.organization is None:
            raise UntrustedToken("unknown_organization", request.organization[:200])
        return trust.issuer if trust is not None else None

    return verify_subject_token(
        unverified,
        request.subject_token,
        issuer_for=issuer_for,
        audience=request.audience,
        key_for=lambda issuer, kid, alg: store.verification_key(issuer, kid, alg, now=known.now),
        now=known.now,
    )


def _trusted(trust: Trust | None) -> Any:
    """The issuer an event names: one that was found and enabled (as verification requires)."""
    return trust.issuer if trust is not None and trust.issuer.enabled else None


def _record_refusal(
    store: ExchangeStore, known: Known, error: OAuthError, config: TrustPortalConfig
) -> None:
    if known.organization is None and known.request is None and known.raw is not None:
        # Refused before the request was fully parsed: a usable audience still names the org.
        login = organization_of(known.raw.get("audience"), config.audience_prefix)
        if login:
            known = replace(known, organization=store.organization(login))
    if not known.counted and known.raw is not None:
        # Refused before the round trip: the attempt still counts against its client address.
        at = time.time()
        buckets, limits = _buckets(known.caller, config, None)
        if buckets:
            shared = store.shared(buckets, organization_id=None, now=at)
            wait = wait_seconds(shared.counts[0], limits[0], at)
            if wait is not None:
                error = RateLimited("rate_limited", wait, bucket=buckets[0])
    if isinstance(error, RateLimited) and error.bucket:
        attempts = store.count_rate_limited(
            bucket=error.bucket,
            at=time.time(),
            organization_id=known.organization.id if known.organization else None,
            request_id=known.caller.request_id,
        )
        if attempts > 1:  # the window's first is the event; the rest are only counted
            logger.info(
                "exchange rate limited request_id=%s attempts_in_window=%d",
                known.caller.request_id,
                attempts,
            )
            _raise_as(error)
            return
    store.record_refused(
        event_row(
            known,
            decision=Decision.DENY,
            reason=error.reason,
            error=error.error,
            detail=error.detail,
        )
    )
    if known.organization is not None:
        error.organization = known.organization.login
    _raise_as(error)


def _raise_as(error: OAuthError) -> None:
    """A refusal turned into a rate limit replaces the original error (raised by the caller)."""
    if isinstance(error, RateLimited):
        raise error
