"""The demo data `make run` seeds: organization `acme` and its admin."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from django.db import transaction

from trustportal.models import Organization, User
from trustportal.services import organization_bootstrap

DEMO_ORG = "acme"
DEMO_ADMIN = "admin"


@dataclass(frozen=True)
class Demo:
    organization: Organization
    admin: User
    password: str


def demo_seed(*, state_dir: Path) -> Demo:
    """Create the demo once and return it; a second run reuses what exists.

    The admin's password is generated on first run and kept in `state_dir` (mode 0600) so it can
    be printed again; if someone changed the password since, the stored one is set back.
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
    return Demo(organization=result.organization, admin=admin, password=password)
