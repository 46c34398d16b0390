"""The token exchange: the one function doing I/O around the pure pipeline steps.

    parse_request → verify_subject_token → evaluate_policies → mint → record

Reads (organization, issuers, keys, compiled policy) happen before any write; the token and its
exchange event are written together (`tokens/recording.py`), and every attempt — allowed or
refused at any step — writes exactly one event.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Q
from django.utils import timezone

from issuers import services as issuer_services
from issuers.keys import get_verification_key
from issuers.models import Issuer
from issuers.selectors import exchange_issuer
from kernel.config import TrustPortalConfig
from policies.matching import Evaluation, Grant, TokenRequest
from policies.models import AuthPolicy
from policies.selectors import compiled_policy
from tokens import ratelimit
from tokens.bounded import bound_claims
from tokens.errors import InvalidRequest, InvalidScope, OAuthError, RateLimited, UntrustedToken
from tokens.minting import Minted, mint
from tokens.models import AccessToken, Decision, ExchangeEvent
from tokens.recording import record_allowed
from tokens.replay import claim_jti
from tokens.request import (
    ExchangeRequest,
    RawRequest,
    organization_of,
    parse_request,
    read_body,
)
from tokens.throttled import count_rate_limited
from tokens.verification import (
    LEEWAY_SECONDS,
    UnverifiedToken,
    VerifiedToken,
    decode_unverified,
    verify_subject_token,
)
from trustportal.models import Membership, Organization, Runner, Team

logger = logging.getLogger(__name__)
ISSUER_LAST_USED_GRANULARITY = timedelta(minutes=1)


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


@dataclass
class _Attempt:
    """What is known so far about an attempt, so a refusal at any step records all of it."""

    caller: Caller
    now: datetime
    raw: RawRequest | None = None
    request: ExchangeRequest | None = None
    organization: Organization | None = None
    unverified: UnverifiedToken | None = None
    issuer: Issuer | None = None
    issuer_policy: AuthPolicy | None = None  # the issuer's policy (id and version only)
    policy: AuthPolicy | None = None  # set once the policy is evaluated
    evaluation: Evaluation | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def event(
        self, *, decision: str, reason: str, error: str = "", detail: str = ""
    ) -> ExchangeEvent:
        raw, request, unverified = self.raw, self.request, self.unverified
        claims = unverified.claims if unverified is not None else {}
        header = unverified.header if unverified is not None else {}
        return ExchangeEvent(
            created=self.now,
            request_id=self.caller.request_id[:64],
            client_ip=self.caller.client_ip,
            user_agent=self.caller.user_agent[:512],
            organization=self.organization,
            organization_login=(
                request.organization
                if request
                else (self.organization.login if self.organization else "")
            )[:200],
            issuer=self.issuer,
            iss=unverified.claim_text("iss") if unverified else "",
            sub=unverified.claim_text("sub") if unverified else "",
            aud=unverified.claim_text("aud") if unverified else "",
            jti=(unverified.claim_text("jti") if unverified else "")[:256],
            kid=str(header.get("kid", ""))[:200],
            alg=str(header.get("alg", ""))[:20],
            # A refusal's claims are the sender's to choose: stored within caps only.
            claims=claims if decision == Decision.ALLOW else bound_claims(claims),
            subject_token_sha256=unverified.sha256 if unverified else "",
            requested_token_type=(request.token_type if request else "")[:16],
            requested_scope=(request.scope if request else (raw.get("scope") if raw else ""))[:300],
            requested_expiration=request.expiration if request else None,
            decision=decision,
            error=error,
            reason=reason,
            detail=detail[:1000],
            trace=self.evaluation.trace_json() if self.evaluation else [],
            policy_id=self.policy.pk if self.policy else None,
            policy_version=self.policy.version if self.policy else None,
        )


def _record_refusal(attempt: _Attempt, error: OAuthError, audience_prefix: str) -> None:
    if attempt.organization is None and attempt.request is None and attempt.raw is not None:
        # Refused before the request was fully parsed: a usable audience still names the org.
        login = organization_of(attempt.raw.get("audience"), audience_prefix)
        if login:
            attempt.organization = organization_by_login(login)
    if isinstance(error, RateLimited) and error.bucket:
        attempts = count_rate_limited(
            bucket=error.bucket,
            at=time.time(),
            organization_id=attempt.organization.pk if attempt.organization else None,
            request_id=attempt.caller.request_id,
        )
        if attempts > 1:  # the window's first is the event; the rest are only counted
            logger.info(
                "exchange rate limited request_id=%s attempts_in_window=%d",
                attempt.caller.request_id,
                attempts,
            )
            return
    event = attempt.event(
        decision=Decision.DENY, reason=error.reason, error=error.error, detail=error.detail
    )
    event.save(force_insert=True)
    if attempt.organization is not None:
        error.organization = attempt.organization.login


def _enforce_rate_limit(bucket: str, limit: int) -> None:
    wait = ratelimit.hit(bucket, limit)
    if wait is not None:
        raise RateLimited("rate_limited", wait, bucket=bucket)


_organizations: dict[str, tuple[float, Organization]] = {}
ORGANIZATION_CACHE_SECONDS = 30.0


def organization_by_login(login: str) -> Organization | None:
    """The organization with that login; found ones are cached per process for 30 s.

    Only the id and login are used on the exchange path (a rename is a superuser operation and
    takes effect within the cache period); unknown logins are never cached.
    """
    now = time.monotonic()
    cached = _organizations.get(login)
    if cached is not None and now - cached[0] < ORGANIZATION_CACHE_SECONDS:
        return cached[1]
    organization = Organization.objects.filter(login=login).only("id", "login", "name").first()
    if organization is not None:
        if len(_organizations) > 10_000:
            _organizations.clear()
        _organizations[login] = (now, organization)
    return organization


def _grant_target(organization: Organization, grant: Grant) -> dict[str, Any]:
    """The team / user / runner the grant names, which must exist in the organization."""
    if grant.token_type == "team":
        team = Team.objects.filter(organization=organization, name=grant.team).first()
        if team is None:
            raise InvalidScope("unknown_team", str(grant.team)[:100])
        return {"team": team}
    if grant.token_type == "personal":
        membership = (
            Membership.objects.select_related("user")
            .filter(organization=organization, user__username=grant.user, user__is_active=True)
            .first()
        )
        if membership is None:
            raise InvalidScope("unknown_user", str(grant.user)[:100])
        return {"user": membership.user}
    if grant.token_type == "runner":
        runner = Runner.objects.filter(organization=organization, name=grant.runner).first()
        if runner is None:
            raise InvalidScope("unknown_runner", str(grant.runner)[:100])
        return {"runner": runner}
    return {}


def _touch_issuer(issuer: Issuer, now: datetime) -> None:
    if issuer.last_used is None or now - issuer.last_used >= ISSUER_LAST_USED_GRANULARITY:
        Issuer.objects.filter(pk=issuer.pk).filter(
            Q(last_used__isnull=True) | Q(last_used__lt=now - ISSUER_LAST_USED_GRANULARITY)
        ).update(last_used=now)


def _evaluate(attempt: _Attempt, verified: VerifiedToken, request: ExchangeRequest) -> Grant:
    """Step 3: the issuer's compiled policy decides (deny wins, then the first allow)."""
    # Read with the issuer in one query: the version decides the cache entry.
    policy = attempt.issuer_policy
    assert policy is not None
    attempt.policy = policy
    compiled = compiled_policy(policy.pk, policy.version)
    token_request = TokenRequest(token_type=request.token_type, scope=request.scope_name)
    evaluation = compiled.decide(verified.claims, token_request)
    if evaluation.grant is None:
        # A refusal records the full per-definition trace for the admin; an allow records the
        # granting definition's (the cost of a full trace grows with the number of definitions).
        evaluation = compiled.evaluate(verified.claims, token_request)
    else:
        granting = compiled.definitions[evaluation.grant.definition_index]
        evaluation = replace(evaluation, trace=(granting.trace(verified.claims, token_request),))
    attempt.evaluation = evaluation
    if evaluation.decision == "deny" or evaluation.grant is None:
        if evaluation.reason == "denied_by_policy":
            raise InvalidRequest("denied_by_policy")
        raise InvalidScope("no_matching_policy")
    return evaluation.grant


def exchange(
    *,
    body: bytes,
    content_type: str,
    caller: Caller,
    config: TrustPortalConfig,
    now: datetime | None = None,
    rng: Callable[[int], bytes] = secrets.token_bytes,
    refresh: Callable[[Issuer], Any] | None = None,
) -> Exchanged:
    """Run one exchange attempt end to end; raises an OAuthError after recording a refusal."""
    attempt = _Attempt(caller=caller, now=now or timezone.now())
    try:
        attempt.raw = read_body(body, content_type)
        if caller.client_ip:
            _enforce_rate_limit(f"ip:{caller.client_ip}", config.rate_limit_per_ip)
        request = parse_request(attempt.raw, audience_prefix=config.audience_prefix)
        attempt.request = request
        # An unknown organization is refused where an unknown issuer is, by the same steps and
        # with the same answer: the endpoint is no oracle of organizations or their issuers.
        attempt.organization = organization_by_login(request.organization)
        attempt.unverified = decode_unverified(request.subject_token)
        verified = verify_subject_token(
            attempt.unverified,
            request.subject_token,
            issuer_for=lambda iss: _issuer_for(attempt, request.organization, iss),
            audience=request.audience,
            key_for=lambda issuer, kid, alg: _key_for(attempt, issuer, kid, alg, refresh),
            now=attempt.now,
        )
        attempt.issuer = verified.issuer
        _enforce_rate_limit(
            f"sub:{verified.issuer.pk}:{attempt.unverified.claim_text('sub')}",
            config.rate_limit_per_subject,
        )
        if verified.issuer.single_use:
            exp = int(verified.claims["exp"])
            expires = datetime.fromtimestamp(exp + LEEWAY_SECONDS, tz=attempt.now.tzinfo)
            if not claim_jti(
                issuer_id=verified.issuer.pk,
                jti=str(verified.claims["jti"]),
                expires=expires,
                now=attempt.now,
            ):
                raise InvalidRequest("jti_replayed")
        grant = _evaluate(attempt, verified, request)
        assert attempt.organization is not None  # an issuer was found in it
        target = _grant_target(attempt.organization, grant)
        minted = mint(
            request, grant, max_expiration=verified.issuer.max_expiration, now=attempt.now, rng=rng
        )
        event_id = _record_success(attempt, verified, minted, target)
    except OAuthError as error:
        _record_refusal(attempt, error, config.audience_prefix)
        raise
    _touch_issuer(verified.issuer, attempt.now)
    return Exchanged(
        access_token=minted.plaintext,
        issued_token_type=request.requested_token_type,
        expires_in=minted.expires_in,
        scope=minted.scope,
        event_id=event_id,
        organization=attempt.organization.login,
    )


def _issuer_for(attempt: _Attempt, login: str, iss: str) -> Issuer | None:
    if attempt.organization is None:
        raise UntrustedToken("unknown_organization", login[:200])
    found = exchange_issuer(organization_id=attempt.organization.pk, iss=iss)
    if found is None:
        return None
    issuer, attempt.issuer_policy = found
    return issuer


def _key_for(
    attempt: _Attempt, issuer: Issuer, kid: str, alg: str, refresh: Callable[[Issuer], Any] | None
) -> Any:
    attempt.issuer = issuer
    return get_verification_key(
        issuer, kid, alg, now=attempt.now, refresh=refresh or _on_demand_refresh
    )


def _on_demand_refresh(issuer: Issuer) -> None:
    issuer_services.issuer_refresh_keys(
        issuer=issuer, trigger="on_demand", outbound=issuer_services.default_outbound()
    )


def _record_success(
    attempt: _Attempt, verified: VerifiedToken, minted: Minted, target: dict[str, Any]
) -> int:
    """Step 5: the token and its event, together (no token without its event)."""
    assert attempt.policy is not None
    token = AccessToken(
        token_type=minted.token_type,
        organization=attempt.organization,
        permission=minted.permission,
        name=f"exchange {attempt.caller.request_id}"[:200],
        token_hash=minted.token_hash,
        prefix=minted.prefix,
        created=attempt.now,
        expires=minted.expires,
        issuer=verified.issuer,
        policy_id=attempt.policy.pk,
        policy_version=attempt.policy.version,
        subject=str(verified.claims.get("sub", ""))[:1000],
        **target,
    )
    event = attempt.event(decision=Decision.ALLOW, reason="allowed")
    event.granted_scope = minted.scope
    event.granted_expires = minted.expires
    return record_allowed(token, event)
