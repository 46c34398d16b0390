"""Reads: issuers of an organization, their keys, fetch history and warnings."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import QuerySet

from issuers.certificates import pin_mismatch_failing
from issuers.keys import STALE_AFTER, STALE_WARNING, issuer_health_problem
from issuers.models import Issuer, IssuerKey, KeyFetch
from policies.models import AuthPolicy
from trustportal.models import Organization

CERT_WARNING_WINDOW = timedelta(days=14)
CHANGE_WARNING_WINDOW = timedelta(days=7)


@dataclass(frozen=True)
class IssuerWarning:
    code: str
    message: str


def issuers_of(organization: Organization) -> QuerySet[Issuer]:
    return Issuer.objects.filter(organization=organization).order_by("name")


def issuer_of(organization: Organization, issuer_id: object) -> Issuer | None:
    """The organization's issuer with that id; None for another org's issuer or a bad id."""
    try:
        key = uuid.UUID(str(issuer_id))
    except ValueError:
        return None
    return Issuer.objects.filter(organization=organization, pk=key).first()


def issuer_keys(issuer: Issuer) -> QuerySet[IssuerKey]:
    return IssuerKey.objects.filter(issuer=issuer).order_by("removed_at", "-first_seen")


def issuer_fetches(issuer: Issuer, *, limit: int = 20) -> QuerySet[KeyFetch]:
    return KeyFetch.objects.filter(issuer=issuer).order_by("-at")[:limit]


def issuer_warnings(issuer: Issuer, now: datetime) -> list[IssuerWarning]:
    """What an admin should know about an issuer now: certificate, key set and fetch health."""
    warnings: list[IssuerWarning] = []
    problem = issuer_health_problem(issuer, now)
    if problem is not None:
        warnings.append(IssuerWarning("unhealthy", f"Tokens are refused: {problem}."))
    if pin_mismatch_failing(issuer):
        refused_from = (
            f"from {issuer.last_success_at + STALE_AFTER:%Y-%m-%d %H:%M} UTC"
            if issuer.last_success_at
            else "until a fetch succeeds"
        )
        warnings.append(
            IssuerWarning(
                "pin_mismatch",
                f"The issuer's host serves a TLS certificate that matches none of the pinned "
                f"thumbprints ({issuer.last_error}). Key refreshes fail, and its tokens are "
                f"refused {refused_from}. If the issuer renewed its certificate, regenerate the "
                "thumbprints, or remove the pins to trust the certificate authorities instead.",
            )
        )
    elif issuer.last_error and (
        issuer.last_success_at is None
        or (issuer.last_error_at and issuer.last_error_at > issuer.last_success_at)
    ):
        warnings.append(
            IssuerWarning(
                "fetch_failing",
                f"Fetching keys fails ({issuer.last_error}); the last good key set is used "
                "for up to 7 days after the last success.",
            )
        )
    if (
        problem is None
        and issuer.last_success_at is not None
        and not issuer.is_static
        and now - issuer.last_success_at > STALE_AFTER - STALE_WARNING
    ):
        warnings.append(
            IssuerWarning(
                "keys_going_stale",
                f"The keys were last fetched {issuer.last_success_at:%Y-%m-%d %H:%M} UTC; unless "
                f"a fetch succeeds, tokens are refused from "
                f"{issuer.last_success_at + STALE_AFTER:%Y-%m-%d %H:%M} UTC.",
            )
        )
    if issuer.thumbprints and issuer.cert_not_after and issuer.cert_sha256 in issuer.thumbprints:
        left = issuer.cert_not_after - now
        if left < CERT_WARNING_WINDOW:
            warnings.append(
                IssuerWarning(
                    "certificate_expiring",
                    f"The pinned certificate expires {issuer.cert_not_after:%Y-%m-%d}. When the "
                    "issuer replaces it, regenerate the thumbprints.",
                )
            )
    if issuer.cert_changed_at and now - issuer.cert_changed_at < CERT_WARNING_WINDOW:
        was = f" (was {issuer.cert_previous_sha256})" if issuer.cert_previous_sha256 else ""
        trust = (
            "It matches a pinned thumbprint."
            if issuer.cert_sha256 in issuer.thumbprints
            else "It is trusted through the certificate authorities; fetches keep working."
        )
        warnings.append(
            IssuerWarning(
                "certificate_changed",
                f"The served TLS certificate changed on {issuer.cert_changed_at:%Y-%m-%d %H:%M} "
                f"UTC: it is now {issuer.cert_sha256}{was}. {trust}",
            )
        )
    if (
        issuer.keys_changed_at
        and now - issuer.keys_changed_at < CHANGE_WARNING_WINDOW
        and issuer.keys_changed_at > issuer.created + timedelta(minutes=1)
    ):
        warnings.append(
            IssuerWarning(
                "keys_changed",
                f"The issuer's key set changed on {issuer.keys_changed_at:%Y-%m-%d %H:%M} UTC.",
            )
        )
    return warnings


# Only what the exchange reads; everything else stays deferred (loaded on access, e.g. by an
# on-demand key refresh). Plain SQL because building this query with the ORM costs more than
# the database's answer does, on every exchange.
_EXCHANGE_FIELDS = (
    "id",
    "organization_id",
    "issuer",
    "audiences",
    "algorithms",
    "single_use",
    "enabled",
    "max_expiration",
    "keys_version",
    "last_success_at",
    "static_jwks",
    "last_used",
)


def _exchange_issuer_sql() -> str:
    issuer_fields = {f.attname: f.column for f in Issuer._meta.concrete_fields}
    policy = AuthPolicy._meta
    columns = ", ".join(f'i."{issuer_fields[name]}"' for name in _EXCHANGE_FIELDS)
    # Names come from the models' metadata, values are parameters: nothing from outside.
    return (
        f'SELECT {columns}, p."{policy.pk.column}" AS exchange_policy_id, '  # noqa: S608
        f'p."{policy.get_field("version").column}" AS exchange_policy_version '
        f'FROM "{Issuer._meta.db_table}" i '
        f'JOIN "{policy.db_table}" p ON p."{policy.get_field("issuer").column}" = i."id" '
        f'WHERE i."{issuer_fields["organization_id"]}" = %s '
        f'AND i."{issuer_fields["issuer"]}" = %s'
    )


_exchange_sql: str | None = None


# TODO: the exchange's issuer lookup belongs to the exchange store (the `exchange` package);
# it moves there with the exchange, and then this module no longer imports `policies`.
def exchange_issuer(*, organization_id: Any, iss: str) -> tuple[Issuer, AuthPolicy] | None:
    """The organization's issuer whose `issuer` is exactly `iss`, with its policy's id and version.

    One indexed lookup (the unique (organization, issuer) constraint). The policy comes back
    with only its id and version: the compiled definitions are cached by (id, version).
    """
    global _exchange_sql
    if _exchange_sql is None:
        _exchange_sql = _exchange_issuer_sql()
    for issuer in Issuer.objects.raw(_exchange_sql, [organization_id, iss]):
        policy = AuthPolicy.from_db(
            issuer._state.db,
            ["id", "issuer_id", "organization_id", "version"],
            [
                issuer.exchange_policy_id,  # type: ignore[attr-defined]
                issuer.pk,
                issuer.organization_id,
                issuer.exchange_policy_version,  # type: ignore[attr-defined]
            ],
        )
        return issuer, policy
    return None
