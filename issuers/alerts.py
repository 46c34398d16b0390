"""Alerts an issuer raises for its organization (delivered by notifications, logged too).

Raised at the moment something changes (key fetches start failing, the served certificate
changes) and daily while a condition lasts (`tasks.report_issuer_warnings`). Alerts are
recorded with `audit.services.audit_alert` inside the caller's transaction.
"""

from __future__ import annotations

from audit.services import audit_alert
from issuers.models import Issuer

# Daily reminders: the warnings an admin must act on, by `IssuerWarning.code`.
DAILY = ("unhealthy", "pin_mismatch", "fetch_failing", "certificate_expiring", "keys_going_stale")


def event_name(code: str) -> str:
    return "issuer-" + code.replace("_", "-")


def fetch_started_failing(issuer: Issuer, reason: str, message: str) -> None:
    audit_alert(
        event=event_name("pin_mismatch" if reason == "thumbprint_mismatch" else "fetch_failing"),
        description=(
            f"Fetching the keys of issuer '{issuer.name}' fails ({reason}): {message[:300]} "
            "The last good key set is used for up to 7 days after the last success."
        ),
        organization=issuer.organization,
        target=issuer,
    )


def certificate_changed(issuer: Issuer) -> None:
    audit_alert(
        event=event_name("certificate_changed"),
        description=(
            f"The TLS certificate served for issuer '{issuer.name}' changed to "
            f"{issuer.cert_sha256} (was {issuer.cert_previous_sha256 or 'unknown'})."
        ),
        organization=issuer.organization,
        target=issuer,
    )


def reminder(issuer: Issuer, code: str, message: str) -> None:
    audit_alert(
        event=event_name(code),
        description=f"Issuer '{issuer.name}': {message}"[:500],
        organization=issuer.organization,
        target=issuer,
    )
