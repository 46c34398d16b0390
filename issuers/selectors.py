"""Reads: issuers of an organization, their keys, fetch history and warnings."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import QuerySet

from issuers.certificates import pin_mismatch_failing
from issuers.keys import STALE_AFTER, STALE_WARNING, issuer_health_problem
from issuers.models import Issuer, IssuerKey, KeyFetch
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
