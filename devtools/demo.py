"""The demo data `make run` seeds: organization `acme`, its admin, the development issuer."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.db import transaction

from environments.definitions import environment_seed_demo
from environments.models import Environment
from issuers.models import Issuer
from issuers.services import Outbound, issuer_preview, issuer_refresh_keys
from policies.models import AuthPolicy
from policies.registration import issuer_register
from policies.services import policy_update
from trustportal.models import Organization, User
from trustportal.services import organization_bootstrap

DEMO_ORG = "acme"
DEMO_ADMIN = "admin"
DEMO_ISSUER_NAME = "Development issuer"


def demo_policy(audience: str) -> list[dict[str, Any]]:
    """What the development issuer's tokens may obtain: pinned to acme/infra, no pull requests."""
    return [
        {
            "decision": "deny",
            "tokenType": "organization",
            "authorizedPermissions": ["admin"],
            "rules": {"event_name": ["pull_request", "pull_request_target"]},
        },
        {
            "decision": "allow",
            "tokenType": "organization",
            "authorizedPermissions": ["admin"],
            "rules": {
                "aud": audience,
                "sub": "repo:acme/infra:ref:refs/heads/main",
                "repository_owner_id": "88310",
            },
        },
    ]


def _moved_development_issuer(
    organization: Organization, issuer_url: str, outbound: Outbound
) -> Issuer | None:
    """The demo's development issuer, pointed at `issuer_url` when `make run` moved it to
    another port (`DEVISSUER_PORT`); None when there is none to move.

    An issuer's URL never changes through the portal (a new URL is a new trust root); the
    development issuer is the demo's own loopback stand-in, so it follows the port instead of
    failing with a name conflict, and keeps its policy and history.
    """
    issuer = Issuer.objects.filter(organization=organization, name=DEMO_ISSUER_NAME).first()
    if issuer is None or issuer.is_static:
        return None
    discovered = issuer_preview(url=issuer_url, thumbprints=[], outbound=outbound).discovered
    issuer.url, issuer.issuer = issuer_url, discovered.issuer
    issuer.jwks_uri, issuer.thumbprints = discovered.jwks_uri, discovered.thumbprints
    issuer.jwks_etag = ""
    issuer.save()
    issuer_refresh_keys(issuer=issuer, trigger="manual", outbound=outbound)
    return issuer


@dataclass(frozen=True)
class Demo:
    organization: Organization
    admin: User
    password: str
    issuer: Issuer | None


def demo_seed(
    *,
    state_dir: Path,
    issuer_url: str | None = None,
    outbound: Outbound | None = None,
    audience_prefix: str = "urn:pulumi:org:",
) -> Demo:
    """Create the demo once and return it; a second run reuses what exists.

    The admin's password is generated on first run and kept in `state_dir` (mode 0600) so it can
    be printed again; if someone changed the password since, the stored one is set back. With
    `issuer_url`, the development issuer is registered (over real discovery) with an example
    policy, unless it already is.
    """
    password_file = state_dir / "admin_password"
    if password_file.exists():
        password = password_file.read_text().strip()
    else:
        state_dir.mkdir(parents=True, exist_ok=True)
        password = secrets.token_urlsafe(12)
        password_file.write_text(password)
        password_file.chmod(0o600)
    with transaction.atomic():
        result = organization_bootstrap(
            login=DEMO_ORG, admin_login=DEMO_ADMIN, email="admin@acme.example"
        )
        admin = result.admin
        if result.created_organization:
            result.organization.name = "ACME Corp"
            result.organization.save(update_fields=["name"])
        if not admin.check_password(password) or not admin.is_superuser:
            admin.set_password(password)
            admin.is_superuser = True
            admin.is_staff = True
            admin.save()
    organization = result.organization
    issuer = None
    if issuer_url is not None and outbound is not None:
        issuer = Issuer.objects.filter(organization=organization, issuer=issuer_url).first()
        if issuer is None:
            issuer = _moved_development_issuer(organization, issuer_url, outbound)
        if issuer is None:
            issuer = issuer_register(
                organization=organization,
                url=issuer_url,
                name=DEMO_ISSUER_NAME,
                outbound=outbound,
            )
            policy_update(
                policy=AuthPolicy.objects.get(issuer=issuer),
                definitions=demo_policy(audience_prefix + DEMO_ORG),
                by=admin,
                note="example policy seeded by make run",
            )
    if not Environment.objects.filter(organization=organization).exists():
        environment_seed_demo(organization, admin)
    return Demo(organization=organization, admin=admin, password=password, issuer=issuer)
