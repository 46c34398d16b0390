"""Who may do what in an organization through the API: one place for every view to ask."""

from __future__ import annotations

from enum import Enum
from typing import Protocol, runtime_checkable

from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework.request import Request

from kernel.errors import Forbidden, NotFound
from trustportal.models import Organization, Role, User
from trustportal.selectors import role_of


class Need(Enum):
    """What an API operation needs in the organization it names."""

    ANY = "any"  # any token of the organization (reads that every member may do)
    READ_CONFIGURATION = "read"  # admins and auditors: issuers, policies, history
    ADMIN = "admin"  # changes


@runtime_checkable
class Caller(Protocol):
    """What an API caller answers about an organization; `tokens.principal.Principal` is one.

    A protocol so that the organizations layer asks without importing the tokens app above it.
    """

    def reaches(self, organization: Organization) -> bool:
        """Whether the caller may act in the organization at all."""
        ...

    def role_in(self, organization: Organization) -> str | None:
        """admin / auditor / member in the organization, or None."""
        ...


def caller_of(request: Request) -> Caller:
    """The authenticated API caller; API views run behind the access-token authentication."""
    caller = request.user
    assert isinstance(caller, Caller), "API views run behind AccessTokenAuthentication"
    return caller


def organization_for(request: Request, login: str, need: Need) -> Organization:
    """The organization named in the URL, if the caller may act in it as `need` says.

    An organization the caller cannot reach answers 404 exactly like one that does not exist, so
    the API never confirms another tenant's existence; a reachable one without the right role
    answers 403.
    """
    principal = caller_of(request)
    organization = Organization.objects.filter(login=login).first()
    if organization is None or not principal.reaches(organization):
        raise NotFound(f"Organization '{login}' not found.")
    role = principal.role_in(organization)
    if role is None:
        raise NotFound(f"Organization '{login}' not found.")
    problem = _shortfall(role, need)
    if problem is not None:
        raise Forbidden(problem)
    return organization


def _shortfall(role: str, need: Need) -> str | None:
    """Why `role` is not enough for `need`, or None when it is."""
    if need is Need.ADMIN and role != Role.ADMIN:
        return "This needs an organization admin."
    if need is Need.READ_CONFIGURATION and role not in (Role.ADMIN, Role.AUDITOR):
        return "This needs an organization admin or auditor."
    return None


def organization_for_user(
    user: User | AnonymousUser, login: str, need: Need
) -> tuple[Organization, str]:
    """For pages: the organization and the signed-in user's role in it, as `need` requires.

    Answers 404 for an organization the user does not belong to (as if it did not exist) and 403
    when their role is not enough. Superusers act as admins everywhere.
    """
    organization = Organization.objects.filter(login=login).first()
    if organization is None or not user.is_authenticated:
        raise Http404("No such organization.")
    role = Role.ADMIN if user.is_superuser else role_of(user, organization)
    if role is None:
        raise Http404("No such organization.")
    problem = _shortfall(role, need)
    if problem is not None:
        raise PermissionDenied(problem)
    return organization, role
