"""What each exchange reason code means, in one line a person can act on.

The exchange records a stable reason code on every attempt (`ExchangeEvent.reason`) and returns
it to the caller; the history, the event page and the dashboard show this explanation next to
it. Every code the exchange can produce has an entry (`tests/tokens/test_reasons.py` finds them
in the code and fails when one is missing).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

_REASONS = {
    # Success.
    "allowed": "A policy definition allowed the exchange and a token was issued.",
    # The request itself (tokens/request.py).
    "request_too_large": "The request body is larger than the exchange accepts.",
    "malformed_body": "The body is not valid JSON or form data, or has unusable fields.",
    "unsupported_media_type": "Send application/json or application/x-www-form-urlencoded.",
    "unstorable_text": "The request holds a NUL character or a lone surrogate (never stored).",
    "untrusted_token": "Unknown organization or issuer, disabled issuer, or another audience.",
    "field_too_large": "A request field is longer than the exchange accepts.",
    "unsupported_grant_type": "grant_type must be the RFC 8693 token-exchange grant.",
    "missing_audience": "The request names no audience (urn:pulumi:org:<organization>).",
    "bad_audience": "The audience does not name an organization in the expected form.",
    "unknown_organization": "The audience names an organization that does not exist here.",
    "missing_subject_token": "The request carries no subject_token (the CI job's ID token).",
    "bad_subject_token_type": "subject_token_type must be the id_token or jwt token type.",
    "bad_requested_token_type": "requested_token_type is not an organization, team, personal "
    "or runner token type.",
    "scope_mismatch": "The scope does not fit the requested token type (e.g. team:<name>).",
    "bad_expiration": "expiration must be a positive whole number of seconds.",
    "rate_limited": "Too many attempts in a short time; the caller should retry later.",
    # The subject token's form and header (tokens/verification.py).
    "token_too_large": "The ID token is larger than the exchange accepts.",
    "malformed_token": "The ID token is not a well-formed signed JWT.",
    "jwe_not_supported": "The ID token is encrypted (JWE); only signed tokens are accepted.",
    "alg_not_allowed": "The token's signing algorithm is not allowed for this issuer.",
    "alg_mismatch": "The token's algorithm does not fit the issuer key it names.",
    "crit_not_supported": "The token's header lists critical extensions, which are refused.",
    "b64_not_supported": "The token uses unencoded payloads (b64: false), which are refused.",
    "nested_jwt": "The token wraps another JWT (cty: JWT), which is refused.",
    "missing_kid": "The token's header names no key (kid).",
    "bad_kid": "The token's key id (kid) is not of an accepted form.",
    # The issuer and its keys (tokens/verification.py, issuers/keys.py).
    "missing_iss": "The token has no issuer (iss) claim.",
    "unknown_issuer": "The token's issuer (iss) is not registered in this organization.",
    "issuer_disabled": "The token's issuer is registered but disabled.",
    "issuer_unhealthy": "The issuer's keys could not be refreshed recently enough to be trusted.",
    "unknown_kid": "No current key of the issuer has the token's key id, even after a refresh.",
    "bad_signature": "The signature does not verify with the issuer's key.",
    # The claims (tokens/verification.py).
    "missing_exp": "The token has no expiry (exp) claim.",
    "missing_iat": "The token has no issued-at (iat) claim.",
    "bad_exp": "The expiry (exp) claim is not a usable number.",
    "bad_iat": "The issued-at (iat) claim is not a usable number.",
    "bad_nbf": "The not-before (nbf) claim is not a usable number.",
    "token_expired": "The ID token had expired (exp is in the past).",
    "exp_too_far": "The ID token is valid for more than 24 hours, which is refused.",
    "iat_in_future": "The token says it was issued in the future (check clocks).",
    "token_not_yet_valid": "The token is not valid yet (nbf is in the future).",
    "missing_aud": "The token has no audience (aud) claim.",
    "bad_aud": "The token's audience (aud) is not a string or a list of strings.",
    "audience_mismatch": "The token's audience is neither this organization's nor one the "
    "issuer accepts.",
    "missing_jti": "The issuer is single-use but the token has no usable token id (jti).",
    "jti_replayed": "This ID token was already exchanged once (single-use issuer).",
    "replay_store_unavailable": "The single-use check could not be made; refused to be safe.",
    # The policy and what it grants (tokens/exchange.py).
    "denied_by_policy": "A deny definition of the issuer's policy applies; a deny always wins.",
    "no_matching_policy": "No allow definition of the policy applies to these claims and this "
    "request.",
    "unknown_team": "The policy grants a team that does not exist in the organization.",
    "unknown_user": "The policy grants a user who is not an active member of the organization.",
    "unknown_runner": "The policy grants a runner that does not exist in the organization.",
    # The service.
    "database_unavailable": "The database was unreachable; the caller should retry later.",
}

REASONS: Mapping[str, str] = MappingProxyType(_REASONS)


def explain(reason: str) -> str:
    """The one-line explanation of a reason code ("" for a code this version does not know)."""
    return REASONS.get(reason, "")
