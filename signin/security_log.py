"""The sign-in security log: one row per event in `SignInEvent` and one line on the
`trustportal.security` logger (for a SIEM), never with a password, code or token in either."""

from __future__ import annotations

import logging
from typing import Any

from signin.models import IdentityProvider, SignInEvent
from trustportal.login_throttle import client_address
from trustportal.models import Organization, User

logger = logging.getLogger("trustportal.security")


def record(
    kind: str,
    *,
    request: Any = None,
    user: User | None = None,
    username: str = "",
    method: str = "",
    provider: IdentityProvider | None = None,
    organization: Organization | None = None,
    reason: str = "",
    detail: str = "",
) -> SignInEvent:
    """Write one security event (row and log line) and return the row."""
    name = (username or (user.get_username() if user is not None else ""))[:150]
    address = client_address(request)
    event = SignInEvent.objects.create(
        kind=kind,
        method=method[:20],
        user=user if user is not None and user.pk else None,
        username=name,
        provider=provider,
        organization=organization,
        reason=reason[:64],
        detail=detail[:500],
        address=address,
    )
    level = (
        logging.INFO
        if kind not in (SignInEvent.Kind.REFUSED, SignInEvent.Kind.MFA_FAILED)
        else logging.WARNING
    )
    logger.log(
        level,
        "%s method=%s username=%r provider=%s organization=%s reason=%s address=%s detail=%r",
        kind,
        method or "-",
        name,
        provider.pk if provider is not None else "-",
        organization.login if organization is not None else "-",
        reason or "-",
        address or "-",
        detail[:500],
    )
    return event
