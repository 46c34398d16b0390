"""What an issuer's hosts serve over TLS: observed thumbprints, changes, pin failures.

Trust in an issuer's host comes from the certificate authorities (the system store, or
TRUSTPORTAL_ISSUER_CA_BUNDLE) on every fetch. Thumbprints an admin pins are enforced on top
of that by the guarded client (any one of them must match). Without pins the served
thumbprints are only *observed*: a new certificate is recorded on the issuer, logged and shown
as a warning, never a failure, so a routine renewal does not stop key fetches. Nothing here
does I/O or saves: the callers save the issuer inside their own transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from issuers.models import Issuer
from outbound.transport import Certificate

logger = logging.getLogger(__name__)

PIN_MISMATCH = "thumbprint_mismatch"


def record_served_certificate(
    issuer: Issuer,
    certificate: Certificate | None,
    now: datetime,
    *,
    discovered: Sequence[str] | None = None,
) -> bool:
    """Note the key host's certificate on the issuer; a change is recorded, logged, and True.

    `certificate` is the JWKS host's (the host every refresh reads). `discovered` are all the
    thumbprints seen by a full discovery (registration, regeneration); without it only the
    JWKS host's entry of the observed thumbprints is replaced. Does not decide trust.
    """
    if certificate is None:
        return False
    previous = issuer.cert_sha256
    changed = bool(previous and previous != certificate.sha256)
    if changed:
        issuer.cert_changed_at = now
        issuer.cert_previous_sha256 = previous
        logger.warning(
            "issuer %s (%s): the served TLS certificate changed from %s to %s (%s)",
            issuer.pk,
            issuer.issuer,
            previous,
            certificate.sha256,
            "pinned thumbprints" if issuer.thumbprints else "trusted through the CA store",
        )
    others = discovered if discovered is not None else issuer.observed_thumbprints
    issuer.observed_thumbprints = list(
        dict.fromkeys([certificate.sha256, *(t for t in others if t != previous)])
    )
    issuer.cert_sha256 = certificate.sha256
    issuer.cert_subject = certificate.subject[:1000]
    issuer.cert_issuer = certificate.issuer[:1000]
    issuer.cert_not_after = certificate.not_after
    return changed


def note_fetch_refused(issuer: Issuer, reason: str, message: str) -> None:
    """Log a fetch that the issuer's own pins refused (the admin must act); ignores others."""
    if reason == PIN_MISMATCH:
        logger.warning(
            "issuer %s (%s): the served TLS certificate matches none of the pinned "
            "thumbprints; key refreshes fail until the pins are regenerated or removed: %s",
            issuer.pk,
            issuer.issuer,
            message,
        )


def pin_mismatch_failing(issuer: Issuer) -> bool:
    """Whether the latest key fetch failed because the pins no longer match (pure)."""
    return bool(
        issuer.thumbprints
        and issuer.last_error_reason == PIN_MISMATCH
        and (
            issuer.last_success_at is None
            or (issuer.last_error_at is not None and issuer.last_error_at > issuer.last_success_at)
        )
    )
