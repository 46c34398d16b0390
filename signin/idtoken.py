"""ID token verification for sign-in, as strict as the exchange's (tokens/verification.py).

Reuses the exchange's steps: compact-form and header rules (no `none`/HMAC, no `crit`, no
nested JWT, a `kid` required), the signature with exactly one algorithm and the provider's key of
that `kid` from its JWKS, then `exp`/`iat`/`nbf` with 60 s leeway and a bounded lifetime. Then
the sign-in rules: `iss` equal to the discovered issuer, `aud` containing the client id (and
`azp` equal to it when there are several audiences), a `sub`, and the `nonce` of this sign-in.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from exchange.verification import check_claims, check_header, decode_unverified, verify_signature
from issuers.jwks import ParsedKey, algorithm_fits_key, load_public_key
from signin.errors import SignInRefused
from tokens.errors import InvalidRequest

MAX_SUBJECT_LENGTH = 255


@dataclass
class _Client:
    """The relying party as `check_claims` sees an issuer: no audience but the client id."""

    issuer: str
    enabled: bool = True
    audiences: list[str] = field(default_factory=list)
    single_use: bool = False


def _key_for(keys: Sequence[ParsedKey], kid: str, alg: str) -> Any:
    key = next((k for k in keys if k.kid == kid), None)
    if key is None:
        raise SignInRefused("unknown_key", f"no key {kid!r} in the provider's JWKS")
    if (key.alg is not None and key.alg != alg) or not algorithm_fits_key(
        alg, key.kty, key.jwk.get("crv")
    ):
        raise SignInRefused("alg_mismatch", f"key {kid!r} is not for {alg}")
    return load_public_key(key.jwk, alg)


def verify_id_token(
    token: Any,
    *,
    issuer: str,
    client_id: str,
    keys: Sequence[ParsedKey],
    nonce: str | None,
    now: datetime,
) -> dict[str, Any]:
    """The ID token's claims once every check passed; SignInRefused naming the first failure."""
    if not isinstance(token, str) or not token:
        raise SignInRefused("missing_id_token", "the token response has no id_token")
    try:
        unverified = decode_unverified(token)
        alg, kid = check_header(unverified.header)
        verify_signature(token, _key_for(keys, kid, alg), alg)
        claims = unverified.claims
        if claims.get("iss") != issuer:
            raise SignInRefused("issuer_mismatch", f"iss {str(claims.get('iss'))[:200]!r}")
        check_claims(claims, now=now, audience=client_id, issuer=_Client(issuer=issuer))
    except InvalidRequest as exc:
        raise SignInRefused(exc.reason, exc.detail) from exc
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if len(audiences) > 1 and claims.get("azp") != client_id:
        raise SignInRefused("audience_mismatch", "several audiences and azp is not this client")
    if "azp" in claims and claims["azp"] != client_id:
        raise SignInRefused("audience_mismatch", f"azp {str(claims['azp'])[:200]!r}")
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject or len(subject) > MAX_SUBJECT_LENGTH:
        raise SignInRefused("missing_subject", "sub is missing, empty or too long")
    token_nonce = claims.get("nonce")
    if (
        not nonce
        or not isinstance(token_nonce, str)
        or not hmac.compare_digest(token_nonce.encode(), nonce.encode())
    ):
        raise SignInRefused("nonce_mismatch")
    return dict(claims)
