"""Step 4 of the exchange: decide what to mint from the grant (pure)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from exchange.request import DEFAULT_EXPIRATION, ExchangeRequest
from policies.matching import Grant
from tokens.format import display_prefix, generate_token, hash_token


@dataclass(frozen=True)
class Minted:
    """A new token, before it is stored: the plaintext goes to the caller only."""

    plaintext: str
    token_hash: str
    prefix: str
    token_type: str
    permission: str
    scope: str
    expires_in: int
    expires: datetime


def granted_lifetime(requested: int | None, maximum: int) -> int:
    """The requested lifetime (default 7200 s) clamped to the issuer's maximum, never refused."""
    return min(requested or DEFAULT_EXPIRATION, maximum)


def granted_scope(request: ExchangeRequest, grant: Grant) -> str:
    if grant.token_type == "organization":
        return "admin" if grant.permission == "admin" else ""
    return request.scope


def mint(
    request: ExchangeRequest,
    grant: Grant,
    *,
    max_expiration: int,
    now: datetime,
    rng: Callable[[int], bytes] = secrets.token_bytes,
) -> Minted:
    lifetime = granted_lifetime(request.expiration, max_expiration)
    plaintext = generate_token(grant.token_type, rng=rng)
    return Minted(
        plaintext=plaintext,
        token_hash=hash_token(plaintext),
        prefix=display_prefix(plaintext),
        token_type=grant.token_type,
        permission=(grant.permission or "standard") if grant.token_type == "organization" else "",
        scope=granted_scope(request, grant),
        expires_in=lifetime,
        expires=now + timedelta(seconds=lifetime),
    )
