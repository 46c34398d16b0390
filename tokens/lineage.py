"""Token lineage: a token created with another token never outlives it and is revoked with it.

A token created through the API records the token that authenticated the call (`parent`):
its expiry is clamped to the parent's (a parent that expires cannot create one that never
does), and every revocation (one token, by filter, by issuer) also revokes the tokens descended
from what it revokes, transitively, in the same transaction. Descendants are hand-made tokens
(exchanges mint tokens without a parent), so the `parent` column is set on few rows and its
partial index keeps each traversal step one small lookup.

Does not decide who may create a token (the API's access checks do) and does not touch
exchange events.
"""

from __future__ import annotations

from datetime import datetime

from django.db.models import QuerySet

from tokens.errors import InvalidAccessToken
from tokens.models import AccessToken
from tokens.selectors import LineageCount, active_tokens_q, descendant_ids, id_chunks
from trustportal.models import User


def expiry_within_parent(expires: datetime | None, parent: AccessToken | None) -> datetime | None:
    """The expiry a new token gets: `expires`, clamped to its parent's (None means never)."""
    if parent is None or parent.expires is None:
        return expires
    if expires is None or expires > parent.expires:
        return parent.expires
    return expires


def lock_active_parent(parent: AccessToken, now: datetime) -> None:
    """Lock the parent's row and check it still authenticates (inside the creating transaction).

    A revocation that already updated the parent makes this wait for it and then refuse, so no
    token is created under a parent revoked meanwhile (the authentication cache may be up to
    5 s old). Raises InvalidAccessToken("revoked").
    """
    active = (
        AccessToken.objects.select_for_update()
        .filter(pk=parent.pk)
        .filter(active_tokens_q(now))
        .values_list("pk", flat=True)
    )
    if not list(active):
        raise InvalidAccessToken("revoked")


def revoke_lineage(
    *, roots: QuerySet[AccessToken], now: datetime, by: User | None, reason: str
) -> LineageCount:
    """Revoke the active tokens of `roots` and every active token descended from them.

    Runs inside the caller's transaction. `roots` must still select the roots once they are
    revoked (no status filter): their descendants are found from it afterwards. The roots go
    first, in one UPDATE that waits for any concurrent creation under them (which locks its
    parent, `lock_active_parent`); descendants follow, and the sweep repeats until a pass finds
    none, which catches a token created under a descendant while that one was being revoked.
    Does not forget cached tokens: the caller does, after its transaction.
    """
    stamp = {"revoked_at": now, "revoked_by": by, "revoked_reason": reason[:500]}
    tokens = roots.filter(active_tokens_q(now)).update(**stamp)
    descendants = 0
    while True:
        swept = 0
        for chunk in id_chunks(descendant_ids(roots)):
            swept += (
                AccessToken.objects.filter(pk__in=chunk)
                .filter(active_tokens_q(now))
                .update(**stamp)
            )
        descendants += swept
        if not swept:
            return LineageCount(tokens=tokens, descendants=descendants)
