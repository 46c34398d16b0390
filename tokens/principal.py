"""Who an authenticated API request acts as, and what it may do in an organization."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from tokens.models import AccessToken, Permission, TokenType
from trustportal.models import Membership, Organization, Role, User

if TYPE_CHECKING:
    from rest_framework.request import Request


@dataclass(frozen=True)
class Principal:
    """The caller behind an access token: a user (personal tokens) or a machine identity."""

    token: AccessToken
    is_authenticated: bool = True
    is_anonymous: bool = False

    @property
    def user(self) -> User | None:
        return self.token.user if self.token.token_type == TokenType.PERSONAL else None

    @property
    def login(self) -> str:
        token = self.token
        if token.token_type == TokenType.PERSONAL and token.user is not None:
            return token.user.get_username()
        assert token.organization is not None
        if token.token_type == TokenType.TEAM and token.team is not None:
            return f"{token.organization.login}-{token.team.name}-bot"
        return token.organization.bot_login

    def reaches(self, organization: Organization) -> bool:
        """Whether this token may act in the organization at all."""
        if self.token.organization_id is not None:
            return self.token.organization_id == organization.pk
        user = self.user
        return user is not None and (
            user.is_superuser
            or Membership.objects.filter(user=user, organization=organization).exists()
        )

    def role_in(self, organization: Organization) -> str | None:
        """admin / auditor / member as far as management of the organization goes."""
        if not self.reaches(organization):
            return None
        token = self.token
        if token.token_type == TokenType.ORGANIZATION:
            return Role.ADMIN if token.permission == Permission.ADMIN else Role.MEMBER
        user = self.user
        if user is None:
            return Role.MEMBER
        if user.is_superuser:
            return Role.ADMIN
        return (
            Membership.objects.filter(user=user, organization=organization)
            .values_list("role", flat=True)
            .first()
        )

    def is_admin_of(self, organization: Organization) -> bool:
        return self.role_in(organization) == Role.ADMIN

    def can_read_configuration(self, organization: Organization) -> bool:
        return self.role_in(organization) in (Role.ADMIN, Role.AUDITOR)


def principal_of(request: Request) -> Principal:
    """The access token's principal behind an API request (views run behind its authentication)."""
    principal = request.user
    assert isinstance(principal, Principal), "API views run behind AccessTokenAuthentication"
    return principal
