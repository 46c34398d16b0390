"""The simulator and replay: evaluate current or draft definitions without minting anything."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from exchange.minting import granted_lifetime
from exchange.request import TOKEN_TYPES, scope_name
from exchange.verification import check_header, decode_unverified, verify_signature
from issuers.errors import KeyLookupError
from issuers.keys import get_verification_key
from kernel.errors import BadRequest
from policies.errors import PolicyInvalid
from policies.matching import CompiledPolicy, TokenRequest, VerifiedClaims, compile_policy
from policies.models import AuthPolicy
from policies.selectors import compiled_policy
from policies.validation import validate_definitions
from tokens.errors import OAuthError
from tokens.models import ExchangeEvent

REPLAY_DEFAULT = 500
REPLAY_MAX = 5000


def _definitions(policy: AuthPolicy, draft: Any) -> tuple[CompiledPolicy, Any]:
    if draft is None:
        return compiled_policy(policy.pk, policy.version, policy.definitions), policy.definitions
    errors = validate_definitions(draft)
    if errors:
        raise PolicyInvalid(errors)
    return compile_policy(draft), draft


def _token_request(token_type: Any, scope: Any) -> TokenRequest:
    if token_type not in TOKEN_TYPES:
        raise BadRequest(f"tokenType must be one of {', '.join(TOKEN_TYPES)}")
    if scope is not None and not isinstance(scope, str):
        raise BadRequest("scope must be a string")
    try:
        name = scope_name(token_type, (scope or "").strip())
    except OAuthError as exc:
        raise BadRequest(f"scope does not fit the {token_type} token type: {exc.detail}") from exc
    return TokenRequest(token_type=token_type, scope=name)


def _claims_from_token(
    policy: AuthPolicy, token: str, *, check_signature: bool, now: datetime
) -> tuple[dict[str, Any], str]:
    """Decode a pasted JWT; optionally check its signature with the issuer's cached keys."""
    try:
        unverified = decode_unverified(token)
    except OAuthError as exc:
        raise BadRequest(f"the token cannot be decoded ({exc.reason})") from exc
    if not check_signature:
        return unverified.claims, "not_checked"
    try:
        alg, kid = check_header(unverified.header)
        key = get_verification_key(policy.issuer, kid, alg, now=now)
        verify_signature(token, key, alg)
    except OAuthError as exc:
        return unverified.claims, f"invalid: {exc.reason}"
    except KeyLookupError as exc:
        return unverified.claims, f"invalid: {exc.reason}"
    return unverified.claims, "valid"


def simulate(
    *,
    policy: AuthPolicy,
    claims: Any = None,
    token: Any = None,
    check_signature: bool = False,
    token_type: Any = "organization",
    scope: Any = None,
    draft: Any = None,
    now: datetime,
) -> dict[str, Any]:
    """Evaluate claims (or a pasted token's claims) against the current or a draft policy.

    Returns the decision, the per-definition and per-rule trace, and what would be minted.
    Mints and records nothing; the claims are hypothetical, which is why they are wrapped as
    VerifiedClaims explicitly here and nowhere else outside verification.
    """
    if token is not None:
        if not isinstance(token, str) or not token.strip():
            raise BadRequest("token must be a JWT string")
        claims, signature = _claims_from_token(
            policy, token.strip(), check_signature=check_signature, now=now
        )
    elif isinstance(claims, Mapping):
        signature = "not_applicable"
    else:
        raise BadRequest('give "claims" (a JSON object) or "token" (a JWT)')
    compiled, _ = _definitions(policy, draft)
    request = _token_request(token_type, scope)
    evaluation = compiled.evaluate(VerifiedClaims(dict(claims)), request)
    grant = evaluation.grant
    minted = None
    if grant is not None:
        minted = {
            "tokenType": grant.token_type,
            "permission": grant.permission,
            "team": grant.team,
            "user": grant.user,
            "runner": grant.runner,
            "expiresIn": granted_lifetime(None, policy.issuer.max_expiration),
        }
    return {
        "decision": evaluation.decision,
        "reason": evaluation.reason,
        "definitionIndex": evaluation.deciding_index,
        "signature": signature,
        "claims": dict(claims),
        "trace": evaluation.trace_json(),
        "wouldMint": minted,
        "policyVersion": None if draft is not None else policy.version,
    }


def replay(*, policy: AuthPolicy, draft: Any, limit: Any = REPLAY_DEFAULT) -> dict[str, Any]:
    """Evaluate a draft against the issuer's last `limit` evaluated exchanges; list the changes.

    Only attempts that reached policy evaluation are replayed (their claims were verified);
    each is compared by decision and by the definition that decided.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= REPLAY_MAX:
        raise BadRequest(f"limit must be a whole number from 1 to {REPLAY_MAX}")
    compiled, _ = _definitions(policy, draft)
    events = (
        ExchangeEvent.objects.filter(
            organization_id=policy.organization_id,
            issuer_id=policy.issuer_id,
            policy_id__isnull=False,
        )
        .order_by("-id")
        .only(
            "id",
            "created",
            "sub",
            "claims",
            "requested_token_type",
            "requested_scope",
            "decision",
            "reason",
        )[:limit]
    )
    changed = []
    total = 0
    for event in events:
        total += 1
        try:
            request = _token_request(event.requested_token_type, event.requested_scope)
        except BadRequest:
            continue
        outcome = compiled.decide(VerifiedClaims(event.claims), request)
        draft_decision = "allow" if outcome.grant is not None else "deny"
        if draft_decision != event.decision:
            changed.append(
                {
                    "eventId": event.pk,
                    "created": event.created.isoformat(),
                    "sub": event.sub,
                    "tokenType": event.requested_token_type,
                    "scope": event.requested_scope,
                    "current": {"decision": event.decision, "reason": event.reason},
                    "draft": {
                        "decision": draft_decision,
                        "reason": outcome.reason,
                        "definitionIndex": outcome.deciding_index,
                    },
                }
            )
    return {"replayed": total, "changed": changed}
