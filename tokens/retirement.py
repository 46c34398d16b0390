"""Deleting or disabling an issuer, with the revocation of the access tokens it minted.

Deleting an issuer revokes every active token it minted, and the tokens created with those
(tokens/lineage.py), in the same transaction as the deletion: a failure leaves both undone.
Disabling offers the same revocation. Tokens and exchange events keep the issuer's id for the
record (their references carry no database constraint); events are never written here, so the
append-only trigger on PostgreSQL is never involved.

Does not check who may do this (the pages and the API do) and does not stop an exchange that
already passed the issuer lookup from committing its token a moment later.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from audit.services import audit_record
from issuers.errors import IssuerInvalid
from issuers.models import Issuer
from issuers.services import Outbound, issuer_snapshot, issuer_update
from tokens.lineage import revoke_lineage
from tokens.models import AccessToken
from tokens.selectors import LineageCount, forget_cached_tokens, lineage_count
from trustportal.models import User


def _minted_by(issuer: Issuer) -> QuerySet[AccessToken]:
    return AccessToken.objects.filter(issuer_id=issuer.pk)


def issuer_token_count(issuer: Issuer, *, now: datetime | None = None) -> LineageCount:
    """The active tokens the issuer minted and those created with them: what deleting revokes."""
    return lineage_count(_minted_by(issuer), now=now or timezone.now())


def issuer_tokens_revoke(
    *, issuer: Issuer, by: User | None, reason: str, now: datetime | None = None
) -> int:
    """Revoke the issuer's active tokens and their descendants; returns how many.

    Joins the caller's transaction when there is one.
    """
    with transaction.atomic():
        # Lock the issuer first: an exchange recording a token waits (its INSERT takes a share
        # lock on the row, exchange/recording.py), so no token of it commits after this revoke.
        list(Issuer.objects.select_for_update().filter(pk=issuer.pk).values_list("pk"))
        revoked = revoke_lineage(
            roots=_minted_by(issuer), now=now or timezone.now(), by=by, reason=reason
        )
    forget_cached_tokens()
    return revoked.total


def issuer_delete(*, issuer: Issuer, by: User | None = None, now: datetime | None = None) -> int:
    """Delete the issuer (its keys, fetches and policy) and revoke what it minted; the count.

    One transaction: the tokens are revoked first, then the issuer is deleted; if either fails
    neither happens. Tokens and exchange events keep the issuer's id.
    """
    name = issuer.name
    with transaction.atomic():
        revoked = issuer_tokens_revoke(
            issuer=issuer, by=by, reason=f"issuer {name} deleted"[:500], now=now
        )
        audit_record(
            event="issuer-deleted",
            description=f"The issuer {name} was deleted; {revoked} tokens were revoked with it.",
            organization=issuer.organization,
            target=issuer,
            before=issuer_snapshot(issuer),
            after={"tokens_revoked": revoked},
        )
        issuer.delete()
    return revoked


def clean_revoke_option(data: dict[str, Any]) -> bool:
    """Take `revokeTokens` out of an update body: true only together with `enabled: false`."""
    value = data.pop("revokeTokens", False)
    if not isinstance(value, bool):
        raise IssuerInvalid("revokeTokens must be true or false")
    if value and data.get("enabled") is not False:
        raise IssuerInvalid("revokeTokens goes with enabled: false (disabling the issuer)")
    return value


def issuer_update_revoking(
    *,
    issuer: Issuer,
    data: dict[str, Any],
    revoke: bool,
    outbound: Outbound,
    by: User | None = None,
    now: datetime | None = None,
) -> tuple[Issuer, int]:
    """Update the issuer and, when `revoke`, revoke what it minted, in one transaction.

    `revoke` is meant for disabling (`data["enabled"] is False`); returns the issuer and how
    many tokens were revoked.
    """
    with transaction.atomic():
        # Revoked first, so the change's one audit record can say how many.
        revoked = (
            issuer_tokens_revoke(
                issuer=issuer, by=by, reason=f"issuer {issuer.name} disabled"[:500], now=now
            )
            if revoke
            else 0
        )
        issuer = issuer_update(
            issuer=issuer,
            data=data,
            outbound=outbound,
            now=now,
            tokens_revoked=revoked if revoke else None,
        )
    return issuer, revoked
