"""Writes: creating and revoking access tokens."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from tokens.format import display_prefix, generate_token, hash_token
from tokens.models import AccessToken, Permission, TokenType
from trustportal.models import Organization, Runner, Team, User

LAST_USED_GRANULARITY = timedelta(minutes=1)


def token_create(
    *,
    token_type: str,
    organization: Organization | None = None,
    team: Team | None = None,
    user: User | None = None,
    runner: Runner | None = None,
    permission: str = "",
    name: str = "",
    description: str = "",
    expires: datetime | None = None,
    created_by: User | None = None,
    now: datetime | None = None,
    rng: Callable[[int], bytes] = secrets.token_bytes,
) -> tuple[AccessToken, str]:
    """Create a token and return the row and the plaintext (shown once, never stored)."""
    if token_type not in TokenType.values:
        raise ValueError(f"unknown token type {token_type!r}")
    if token_type == TokenType.ORGANIZATION and not permission:
        permission = Permission.STANDARD
    if team is not None:
        organization = team.organization
    if runner is not None:
        organization = runner.organization
    plaintext = generate_token(token_type, rng=rng)
    token = AccessToken.objects.create(
        token_type=token_type,
        organization=organization,
        team=team,
        user=user,
        runner=runner,
        permission=permission if token_type == TokenType.ORGANIZATION else "",
        name=name,
        description=description,
        token_hash=hash_token(plaintext),
        prefix=display_prefix(plaintext),
        created=now or timezone.now(),
        created_by=created_by,
        expires=expires,
    )
    return token, plaintext


def token_revoke(
    *, token: AccessToken, by: User | None = None, reason: str = "", now: datetime | None = None
) -> bool:
    """Revoke one token; False when it was already revoked (the first revocation is kept)."""
    with transaction.atomic():
        updated = AccessToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
            revoked_at=now or timezone.now(), revoked_by=by, revoked_reason=reason[:500]
        )
    token.refresh_from_db(fields=["revoked_at", "revoked_by", "revoked_reason"])
    return bool(updated)


def token_touch(*, token: AccessToken, now: datetime) -> None:
    """Record use, at most once a minute per token (one conditional UPDATE, no read)."""
    if token.last_used is not None and now - token.last_used < LAST_USED_GRANULARITY:
        return
    AccessToken.objects.filter(pk=token.pk).exclude(
        last_used__gt=now - LAST_USED_GRANULARITY
    ).update(last_used=now)
    token.last_used = now
