"""Writes: organizations and their members."""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction

from trustportal.models import Membership, Organization, Role, User, slug_validator


@dataclass(frozen=True)
class Bootstrapped:
    organization: Organization
    admin: User
    created_organization: bool
    created_admin: bool


def organization_bootstrap(*, login: str, admin_login: str, email: str = "") -> Bootstrapped:
    """Create (or find) an organization and make `admin_login` its admin; idempotent.

    Does not set a password: the caller decides how the admin signs in.
    """
    slug_validator(login)
    if not admin_login.strip():
        raise ValidationError("The admin login must not be empty.")
    with transaction.atomic():
        organization, created_org = Organization.objects.get_or_create(
            login=login, defaults={"name": login}
        )
        admin, created_admin = User.objects.get_or_create(
            username=admin_login, defaults={"email": email}
        )
        if created_admin:
            admin.set_unusable_password()
            admin.save(update_fields=["password"])
        elif email and admin.email != email:
            admin.email = email
            admin.save(update_fields=["email"])
        Membership.objects.update_or_create(
            organization=organization, user=admin, defaults={"role": Role.ADMIN}
        )
    return Bootstrapped(organization, admin, created_org, created_admin)


def membership_set(*, organization: Organization, user: User, role: str) -> Membership:
    """Give `user` the role in the organization (creating the membership if needed)."""
    if role not in Role.values:
        raise ValidationError(f"Unknown role {role!r}.")
    membership, _ = Membership.objects.update_or_create(
        organization=organization, user=user, defaults={"role": role}
    )
    return membership
