"""The registration use case: an issuer and the empty policy it starts with, in one transaction.

`issuers` knows nothing of policies: `issuers.services.issuer_create` runs discovery and saves
the issuer with its keys, and calls back inside its transaction, where the policy is created.
Every caller (API, pages, development tools) registers through `issuer_register`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone

from issuers.models import Issuer
from issuers.services import Outbound, issuer_create
from policies.services import policy_create_for_issuer
from trustportal.models import Organization


def issuer_register(
    *,
    organization: Organization,
    url: Any,
    name: Any = None,
    thumbprints: Any = None,
    jwks: Any = None,
    max_expiration: Any = None,
    audiences: Any = None,
    algorithms: Any = None,
    single_use: bool = False,
    outbound: Outbound,
    now: datetime | None = None,
) -> Issuer:
    """Register an issuer (see `issuer_create`) with its policy: no allow, so every exchange is
    denied until an admin writes one. Nothing is saved if either write fails."""
    now = now or timezone.now()

    def create_policy(issuer: Issuer) -> None:
        policy_create_for_issuer(issuer=issuer, now=now)

    return issuer_create(
        organization=organization,
        url=url,
        name=name,
        thumbprints=thumbprints,
        jwks=jwks,
        max_expiration=max_expiration,
        audiences=audiences,
        algorithms=algorithms,
        single_use=single_use,
        outbound=outbound,
        in_transaction=create_policy,
        now=now,
    )
