"""Reads: which providers to offer, who must use single sign-on, who needs a second factor."""

from __future__ import annotations

from django.db.models import QuerySet

from signin.models import IdentityProvider, OrganizationSignInPolicy
from trustportal.models import Membership, Role, User


def providers_for_login_page() -> QuerySet[IdentityProvider]:
    """The enabled providers, each offered as "Sign in with <name>"."""
    return IdentityProvider.objects.filter(enabled=True).select_related("organization")


def enabled_provider(pk: int) -> IdentityProvider | None:
    return IdentityProvider.objects.filter(pk=pk, enabled=True).first()


def sso_required_by(user: User) -> list[str]:
    """Logins of the organizations that refuse this user's password (empty: none does).

    An organization that requires single sign-on refuses the password of every member but its
    named break-glass account.
    """
    policies = OrganizationSignInPolicy.objects.filter(
        require_sso=True,
        organization__memberships__user=user,
    ).exclude(break_glass_user=user)
    return sorted(policies.values_list("organization__login", flat=True))


def second_factor_required(user: User) -> bool:
    """Superusers always; admins of an organization whose policy requires it."""
    if user.is_superuser:
        return True
    return Membership.objects.filter(
        user=user,
        role=Role.ADMIN,
        organization__sign_in_policy__require_admin_mfa=True,
    ).exists()
