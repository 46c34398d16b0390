"""Writes: creating and revoking access tokens, recording their use, purging what expired."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from audit.diff import snapshot
from audit.services import audit_record
from tokens.errors import TokenInvalid
from tokens.filters import TokenFilters
from tokens.format import display_prefix, generate_token, hash_token
from tokens.lineage import expiry_within_parent, lock_active_parent, revoke_lineage
from tokens.models import (
    EVENT_PURGE_BATCH,
    AccessToken,
    ExchangeEvent,
    Permission,
    RateLimitedWindow,
    TokenType,
    UsedJti,
)
from tokens.selectors import forget_cached_tokens, tokens_selected
from tokens.usage import UsageBuffer, default_buffer
from trustportal.models import Organization, Runner, Team, User

logger = logging.getLogger(__name__)

LAST_USED_GRANULARITY = timedelta(minutes=1)
# Expired or revoked tokens stay visible (and linkable from their events) this long.
TOKEN_PURGE_GRACE = timedelta(days=7)
PURGE_BATCH = 10_000
USAGE_WRITE_BATCH = 1_000
# Long-lived tokens made by hand: a lifetime longer than this is refused (None means never).
MAX_HAND_MADE_LIFETIME = timedelta(days=3650)
# The lifetime of a token made by hand, on the page and with `createtoken` alike.
DEFAULT_LIFETIME_DAYS = 90
HAND_MADE_TYPES = (TokenType.ORGANIZATION, TokenType.TEAM, TokenType.RUNNER)
# What an audit record shows of a token: never its hash (the prefix identifies it).
AUDITED_FIELDS = (
    "token_type",
    "permission",
    "team",
    "runner",
    "user",
    "name",
    "description",
    "prefix",
    "expires",
    "parent_id",
)


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
    parent: AccessToken | None = None,
    now: datetime | None = None,
    rng: Callable[[int], bytes] = secrets.token_bytes,
) -> tuple[AccessToken, str]:
    """Create a token and return the row and the plaintext (shown once, never stored).

    With `parent` (the token that authenticated the call creating this one) the new token is
    linked to it and expires no later than it (tokens/lineage.py); a parent revoked meanwhile
    refuses the creation with InvalidAccessToken.
    """
    if token_type not in TokenType.values:
        raise ValueError(f"unknown token type {token_type!r}")
    if token_type == TokenType.ORGANIZATION and not permission:
        permission = Permission.STANDARD
    if team is not None:
        organization = team.organization
    if runner is not None:
        organization = runner.organization
    now = now or timezone.now()
    plaintext = generate_token(token_type, rng=rng)
    with transaction.atomic():
        if parent is not None:
            lock_active_parent(parent, now)
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
            created=now,
            created_by=created_by,
            expires=expiry_within_parent(expires, parent),
            parent=parent,
        )
        # Its own event type, so a subscription can ask for admin tokens alone.
        admin = token.permission == Permission.ADMIN
        audit_record(
            event="admin-token-created" if admin else "token-created",
            description=f"The {'admin ' if admin else ''}{token.get_token_type_display()} "
            f"token {token.prefix}… was created.",
            organization=token.organization,
            target=token,
            object_type="token",
            after=snapshot(token, AUDITED_FIELDS),
        )
    return token, plaintext


def _hand_made_expiry(expires: datetime | None, now: datetime) -> datetime | None:
    if expires is None:
        return None
    if expires <= now:
        raise TokenInvalid("The expiry must be in the future.", "expires")
    if expires - now > MAX_HAND_MADE_LIFETIME:
        raise TokenInvalid("The expiry must be within ten years.", "expires")
    return expires


def token_create_for_organization(
    *,
    organization: Organization,
    token_type: str,
    name: str,
    description: str = "",
    permission: str = Permission.STANDARD,
    team_name: str = "",
    runner_name: str = "",
    expires: datetime | None = None,
    created_by: User | None = None,
    parent: AccessToken | None = None,
    now: datetime | None = None,
) -> tuple[AccessToken, str]:
    """An org admin creates a long-lived organization, team or runner token by hand.

    Checks what the form or API body says (type, name, team/runner of this organization,
    expiry) and raises TokenInvalid naming the field. Returns the row and the plaintext, which
    is shown once and never stored. Exchanged short-lived tokens are the better choice; this is
    for systems that cannot present an OIDC token. Through the API, `parent` is the calling
    token: the new one is linked to it and expires no later than it (an exchanged token can
    only create tokens that end with it).
    """
    now = now or timezone.now()
    if token_type not in HAND_MADE_TYPES:
        raise TokenInvalid("The type must be organization, team or runner.", "type")
    name = name.strip()
    if not name:
        raise TokenInvalid("Give the token a name.", "name")
    if len(name) > 200 or len(description) > 1000:
        raise TokenInvalid("The name or description is too long.", "name")
    target: dict[str, Any] = {}
    if token_type == TokenType.ORGANIZATION:
        if permission not in Permission.values:
            raise TokenInvalid("The permission must be admin or standard.", "permission")
    elif token_type == TokenType.TEAM:
        team = Team.objects.filter(organization=organization, name=team_name).first()
        if team is None:
            raise TokenInvalid(f"No team {team_name!r} in {organization.login}.", "team")
        target["team"] = team
    else:
        runner = Runner.objects.filter(organization=organization, name=runner_name).first()
        if runner is None:
            raise TokenInvalid(f"No runner {runner_name!r} in {organization.login}.", "runner")
        target["runner"] = runner
    token, plaintext = token_create(
        token_type=token_type,
        organization=organization,
        permission=permission if token_type == TokenType.ORGANIZATION else "",
        name=name,
        description=description,
        expires=_hand_made_expiry(expires, now),
        created_by=created_by,
        parent=parent,
        now=now,
        **target,
    )
    logger.info(
        "token %s (%s) created by hand in %s by %s",
        token.pk,
        token_type,
        organization.login,
        created_by.get_username() if created_by is not None else "-",
    )
    return token, plaintext


def token_create_personal(
    *,
    user: User,
    description: str = "",
    expires: datetime | None = None,
    parent: AccessToken | None = None,
    now: datetime | None = None,
) -> tuple[AccessToken, str]:
    """A user creates a personal token for themselves (`POST /api/user/tokens`).

    `parent` is the calling token: the new one is linked to it and expires no later than it.
    """
    now = now or timezone.now()
    if len(description) > 1000:
        raise TokenInvalid("The description is too long.", "description")
    return token_create(
        token_type=TokenType.PERSONAL,
        user=user,
        description=description,
        expires=_hand_made_expiry(expires, now),
        created_by=user,
        parent=parent,
        now=now,
    )


def token_revoke(
    *, token: AccessToken, by: User | None = None, reason: str = "", now: datetime | None = None
) -> bool:
    """Revoke one token and the tokens created with it (transitively), in one transaction.

    Returns False when the token itself was already revoked (the first revocation is kept);
    its descendants are revoked either way.
    """
    now = now or timezone.now()
    with transaction.atomic():
        revoked = revoke_lineage(
            roots=AccessToken.objects.filter(pk=token.pk), now=now, by=by, reason=reason
        )
        if revoked.total:
            audit_record(
                event="token-revoked",
                description=f"The token {token.prefix}… was revoked"
                + (
                    f", with {revoked.descendants} created with it." if revoked.descendants else "."
                ),
                organization=token.organization,
                target=token,
                object_type="token",
                before={"revoked": False} if revoked.tokens else None,
                after={
                    "revoked": True if revoked.tokens else None,
                    "revoked_reason": reason[:500],
                    "descendants_revoked": revoked.descendants,
                },
            )
    forget_cached_tokens()
    token.refresh_from_db(fields=["revoked_at", "revoked_by", "revoked_reason"])
    return bool(revoked.tokens)


def tokens_revoke_matching(
    *,
    organization: Organization,
    filters: TokenFilters,
    by: User | None,
    reason: str,
    upto: int | None = None,
    now: datetime | None = None,
) -> int:
    """Revoke every active token of the organization that `filters` select, and the tokens
    created with them (transitively), in one transaction; returns how many were revoked.

    Revokes exactly what `tokens.selectors.revocation_preview` counts for the same filters
    (and, with `upto`, only the roots that preview saw; tokens created with them are revoked
    whenever they were created). Refuses filters that select nothing but a status (that would
    be every token of the organization): a time range says so on purpose.
    """
    if not filters.selects_tokens():
        raise ValueError("Give at least one filter besides the status.")
    now = now or timezone.now()
    with transaction.atomic():
        revoked = revoke_lineage(
            roots=tokens_selected(organization=organization, filters=filters, now=now, upto=upto),
            now=now,
            by=by,
            reason=reason,
        )
        if revoked.total:
            audit_record(
                event="tokens-revoked",
                description=f"{revoked.total} tokens were revoked by filter.",
                organization=organization,
                object_type="token",
                after={
                    "filters": filters.as_params(),
                    "revoked_reason": reason[:500],
                    "tokens_revoked": revoked.tokens,
                    "descendants_revoked": revoked.descendants,
                },
            )
    forget_cached_tokens()
    logger.info(
        "revoked %d tokens (and %d created with them) of %s by filter %s",
        revoked.tokens,
        revoked.descendants,
        organization.login,
        filters.as_params(),
    )
    return revoked.total


def token_touch(*, token: AccessToken, now: datetime, buffer: UsageBuffer | None = None) -> None:
    """Note a use of `token` for `last_used`, off the request path.

    Nothing is noted when the stored `last_used` is less than a minute old; otherwise the use
    goes to the usage buffer (Redis, or this process) and the `flush_token_usage` task writes it
    within a minute. No database write happens here, except when a process-local buffer holds
    a use older than a minute (no Redis, so no worker can drain it): then this process drains
    its own buffer in one bulk write.
    """
    if token.last_used is not None and now - token.last_used < LAST_USED_GRANULARITY:
        return
    buffer = buffer or default_buffer()
    if buffer.record(int(token.pk), now):
        token_usage_flush(buffer=buffer)


def token_usage_flush(*, buffer: UsageBuffer | None = None) -> int:
    """Write the buffered uses to `last_used` in bulk; returns how many tokens changed.

    A token's `last_used` only moves forward, and only by a minute or more, so it is written at
    most once a minute per token however often the flush runs.
    """
    pending = (buffer or default_buffer()).drain()
    if not pending:
        return 0
    written = 0
    ids = sorted(pending)
    for start in range(0, len(ids), USAGE_WRITE_BATCH):
        chunk = ids[start : start + USAGE_WRITE_BATCH]
        stale = []
        for token in AccessToken.objects.filter(pk__in=chunk).only("pk", "last_used"):
            used_at = pending[int(token.pk)]
            if token.last_used is None or used_at - token.last_used >= LAST_USED_GRANULARITY:
                token.last_used = used_at
                stale.append(token)
        if stale:
            written += AccessToken.objects.bulk_update(stale, ["last_used"])
    return written


@dataclass(frozen=True)
class PurgeResult:
    """What one purge run removed."""

    tokens: int
    jtis: int


def _purge_in_batches(queryset: QuerySet[Any], order: str, batch_size: int) -> int:
    """Delete the queryset's rows in batches, each one statement in its own transaction.

    `DELETE … WHERE id IN (SELECT id … ORDER BY <order> LIMIT n)`: the ids never travel to
    Python, locks are held for one batch only, and concurrent inserts are never blocked.
    """
    total = 0
    while True:
        batch = queryset.order_by(order).values("pk")[:batch_size]
        with transaction.atomic():
            deleted, _ = queryset.model._default_manager.filter(pk__in=batch).delete()
        total += deleted
        if deleted < batch_size:
            return total


def tokens_purge(
    *,
    now: datetime | None = None,
    grace: timedelta = TOKEN_PURGE_GRACE,
    batch_size: int = PURGE_BATCH,
) -> PurgeResult:
    """Delete tokens expired or revoked more than `grace` ago, and used `jti`s past `expires`.

    Batches of at most `batch_size` rows, each in its own transaction. Exchange events keep
    the id of a purged token (they are never touched here).
    """
    now = now or timezone.now()
    cutoff = now - grace
    expired = AccessToken.objects.filter(expires__lt=cutoff)
    tokens = _purge_in_batches(expired, "expires", batch_size)
    tokens += _purge_in_batches(
        AccessToken.objects.filter(revoked_at__lt=cutoff), "revoked_at", batch_size
    )
    jtis = _purge_in_batches(UsedJti.objects.filter(expires__lt=now), "expires", batch_size)
    return PurgeResult(tokens=tokens, jtis=jtis)


def events_purge(*, retention_days: int, now: datetime | None = None) -> int:
    """Delete exchange events (and rate-limited counts) past the retention; 0 days keeps them."""
    if retention_days <= 0:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=retention_days)
    windows = RateLimitedWindow.objects.filter(window_start__lt=cutoff)
    _purge_in_batches(windows, "window_start", EVENT_PURGE_BATCH)
    return ExchangeEvent.purge_before(cutoff)
