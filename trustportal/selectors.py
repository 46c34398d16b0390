"""Reads about organizations and who may see them."""

from __future__ import annotations

from collections.abc import Collection, Iterable

from django.contrib.auth.models import AnonymousUser
from django.db.models import Exists, OuterRef, QuerySet

from trustportal.models import Membership, Organization, Role, Team, User

READ_ROLES = (Role.ADMIN, Role.AUDITOR)


def organizations_for_user(
    user: User | AnonymousUser, *, roles: Iterable[str] | None = None
) -> QuerySet[Organization]:
    """The organizations where `user` holds one of `roles` (any if None; all for superusers)."""
    if not user.is_authenticated:
        return Organization.objects.none()
    if user.is_superuser:
        return Organization.objects.all()
    memberships = Membership.objects.filter(user=user)
    if roles is not None:
        memberships = memberships.filter(role__in=list(roles))
    return Organization.objects.filter(pk__in=memberships.values("organization_id"))


def role_of(user: User, organization: Organization) -> str | None:
    """The user's role in the organization, or None when they do not belong to it."""
    membership = (
        Membership.objects.filter(user=user, organization=organization)
        .values_list("role", flat=True)
        .first()
    )
    return membership


def memberships_of(user: User) -> QuerySet[Membership]:
    """A user's memberships with their organizations, for the landing page."""
    return Membership.objects.filter(user=user).select_related("organization")


def users_in_organizations(organization_ids: Collection[int]) -> QuerySet[User]:
    """Users with a membership in at least one of the organizations (any role)."""
    inside = Membership.objects.filter(user=OuterRef("pk"), organization_id__in=organization_ids)
    return User.objects.filter(Exists(inside))


def users_wholly_within(organization_ids: Collection[int]) -> QuerySet[User]:
    """Users whose every membership is in the organizations, and who have at least one.

    Superusers and staff are never included: their reach is site-wide, whatever their
    memberships say. This is the set an admin of those organizations may change.
    """
    outside = Membership.objects.filter(user=OuterRef("pk")).exclude(
        organization_id__in=organization_ids
    )
    return users_in_organizations(organization_ids).filter(
        ~Exists(outside), is_superuser=False, is_staff=False
    )
def members_of(organization: Organization) -> QuerySet[Membership]:
    """The organization's memberships with their users, by username."""
    return (
        Membership.objects.filter(organization=organization)
        .select_related("user")
        .order_by("user__username")
    )


def membership_in(organization: Organization, membership_id: int) -> Membership | None:
    """One membership of the organization (None for another organization's)."""
    return members_of(organization).filter(pk=membership_id).first()


def teams_of(organization: Organization) -> QuerySet[Team]:
    """The organization's teams with their members, by name."""
    return (
        Team.objects.filter(organization=organization).prefetch_related("members").order_by("name")
    )


def team_in(organization: Organization, team_id: int) -> Team | None:
    """One team of the organization (None for another organization's)."""
    return Team.objects.filter(organization=organization, pk=team_id).first()


def member_user(organization: Organization, user_id: int) -> User | None:
    """A user who belongs to the organization (None for anyone else)."""
    return User.objects.filter(pk=user_id, memberships__organization=organization).first()
