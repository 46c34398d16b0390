"""Writes: organizations, their members and teams."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from audit.services import audit_record
from trustportal.models import Membership, Organization, Role, Team, User, slug_validator


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


# --- members and teams, as an organization admin manages them in the portal ---------------------
GENERATED_PASSWORD_BYTES = 18


class PeopleError(ValidationError):
    """A change to an organization's members or teams that is refused, with the reason."""


def _lock_organization(organization: Organization) -> None:
    """Serialize changes to the organization's admins (no two requests remove the last two)."""
    Organization.objects.select_for_update().filter(pk=organization.pk).first()


def _refuse_last_admin(membership: Membership, action: str) -> None:
    others = (
        Membership.objects.filter(organization_id=membership.organization_id, role=Role.ADMIN)
        .exclude(pk=membership.pk)
        .exists()
    )
    if membership.role == Role.ADMIN and not others:
        raise PeopleError(
            f"{membership.user.get_username()} is the last admin of the organization and "
            f"cannot be {action}: make another member an admin first."
        )


def member_role_change(*, membership: Membership, role: str) -> Membership:
    """Give a member another role; never demotes the organization's last admin."""
    if role not in Role.values:
        raise PeopleError(f"Unknown role {role!r}.")
    with transaction.atomic():
        _lock_organization(membership.organization)
        membership.refresh_from_db()
        if role != Role.ADMIN:
            _refuse_last_admin(membership, "demoted")
        before = membership.role
        membership.role = role
        membership.save(update_fields=["role"])
        if before != role:
            audit_record(
                event="member-role-changed",
                description=f"{membership.user.get_username()} is now {role} (was {before}).",
                organization=membership.organization,
                target=membership,
                object_type="membership",
                before={"user": membership.user.get_username(), "role": before},
                after={"user": membership.user.get_username(), "role": role},
            )
    return membership


def member_remove(*, membership: Membership) -> None:
    """Take a user out of the organization and its teams; never the last admin.

    The account itself stays (it may belong to other organizations).
    """
    with transaction.atomic():
        _lock_organization(membership.organization)
        membership.refresh_from_db()
        _refuse_last_admin(membership, "removed")
        for team in Team.objects.filter(organization_id=membership.organization_id):
            team.members.remove(membership.user_id)
        audit_record(
            event="member-removed",
            description=f"{membership.user.get_username()} was removed from the organization.",
            organization=membership.organization,
            target=membership,
            object_type="membership",
            before={"user": membership.user.get_username(), "role": membership.role},
        )
        membership.delete()


@dataclass(frozen=True)
class CreatedMember:
    membership: Membership
    password: str  # shown once to the admin who created the account, never stored in clear


def member_create(
    *, organization: Organization, username: str, email: str, role: str = Role.MEMBER
) -> CreatedMember:
    """Create a new account directly in the organization, with a one-time password.

    Deliberately never adopts an existing account, whatever organizations it belongs to (or
    none): an organization admin must not gain control over another tenant's people. Adding
    an existing account to an organization is a superuser's job, in the Django admin.
    """
    username = username.strip()
    if role not in Role.values:
        raise PeopleError(f"Unknown role {role!r}.")
    with transaction.atomic():
        if User.objects.filter(username__iexact=username).exists():
            raise PeopleError(
                f"The username {username!r} is taken. Choose another: an existing account is "
                "added to an organization only by a superuser, in the Django admin."
            )
        password = secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)
        user = User(username=username, email=email.strip())
        user.set_password(password)
        try:
            user.full_clean()
            with transaction.atomic():
                user.save(force_insert=True)
        except (ValidationError, IntegrityError) as exc:
            # A concurrent request took the name between the check and the insert.
            raise PeopleError(f"The username {username!r} cannot be used.") from exc
        membership = Membership.objects.create(organization=organization, user=user, role=role)
        audit_record(
            event="member-created",
            description=f"A new account {username} was created as {role}.",
            organization=organization,
            target=membership,
            object_type="membership",
            after={"user": username, "email": user.email, "role": role},
        )
    return CreatedMember(membership=membership, password=password)


def team_create(*, organization: Organization, name: str, display_name: str = "") -> Team:
    """A new, empty team of the organization (names are unique in the organization)."""
    name = name.strip()
    slug_validator(name)
    with transaction.atomic():
        if Team.objects.filter(organization=organization, name__iexact=name).exists():
            raise PeopleError(f"The organization already has a team named {name!r}.")
        team = Team.objects.create(
            organization=organization, name=name, display_name=display_name.strip()
        )
        audit_record(
            event="team-created",
            description=f"The team {name} was created.",
            organization=organization,
            target=team,
            after={"name": name, "display_name": team.display_name},
        )
        return team


@transaction.atomic
def team_delete(*, team: Team) -> None:
    """Delete a team; its team tokens go with it (they act as the team)."""
    audit_record(
        event="team-deleted",
        description=f"The team {team.name} was deleted.",
        organization=team.organization,
        target=team,
        before={"name": team.name, "members": sorted(u.get_username() for u in team.members.all())},
    )
    team.delete()


@transaction.atomic
def team_member_add(*, team: Team, user: User) -> None:
    """Put a member of the team's organization in the team (nobody from outside it)."""
    if not Membership.objects.filter(organization_id=team.organization_id, user=user).exists():
        raise PeopleError(f"{user.get_username()} is not a member of the organization.")
    if team.members.filter(pk=user.pk).exists():
        return
    team.members.add(user)
    audit_record(
        event="team-member-added",
        description=f"{user.get_username()} joined the team {team.name}.",
        organization=team.organization,
        target=team,
        after={"member": user.get_username()},
    )


@transaction.atomic
def team_member_remove(*, team: Team, user: User) -> None:
    if not team.members.filter(pk=user.pk).exists():
        return
    team.members.remove(user)
    audit_record(
        event="team-member-removed",
        description=f"{user.get_username()} left the team {team.name}.",
        organization=team.organization,
        target=team,
        before={"member": user.get_username()},
    )
