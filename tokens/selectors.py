"""Reads: finding the token a request presents."""

from __future__ import annotations

from datetime import datetime

from tokens.errors import InvalidAccessToken
from tokens.format import hash_token, parse_token
from tokens.models import AccessToken


def token_for_request(presented: str, *, now: datetime) -> AccessToken:
    """The active token whose plaintext is `presented`, or InvalidAccessToken with a reason.

    Checks the format and checksum before touching the database, then one indexed lookup by
    SHA-256. Does not compare secrets itself: equality of the hash is the check.
    """
    parsed = parse_token(presented)
    if parsed is None:
        raise InvalidAccessToken("malformed")
    token = (
        AccessToken.objects.select_related("organization", "team", "user", "runner")
        .filter(token_hash=hash_token(parsed.value))
        .first()
    )
    if token is None:
        raise InvalidAccessToken("unknown")
    if token.revoked_at is not None:
        raise InvalidAccessToken("revoked")
    if token.expires is not None and token.expires <= now:
        raise InvalidAccessToken("expired")
    if token.user is not None and not token.user.is_active:
        raise InvalidAccessToken("user_inactive")
    return token
