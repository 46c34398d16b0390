"""Who may do what in an organization through the API: one place for every view to ask."""

from __future__ import annotations

from enum import Enum

from rest_framework.request import Request

from tokens.principal import Principal
from trustportal.errors import Forbidden, NotFound
from trustportal.models import Organization, Role


class Need(Enum):
    """What an API operation needs in the organization it names."""

    ANY = "any"  # any token of the organization (reads that every member may do)
    READ_CONFIGURATION = "read"  # admins and auditors: issuers, policies, history
    ADMIN = "admin"  # changes


def principal_of(request: Request) -> Principal:
    principal = request.user
    assert isinstance(principal, Principal), "API views run behind AccessTokenAuthentication"
    return principal


def organization_for(request: Request, login: str, need: Need) -> Organization:
    """The organization named in the URL, if the caller may act in it as `need` says.

    An organization the caller cannot reach answers 404 exactly like one that does not exist, so
    the API never confirms another tenant's existence; a reachable one without the right role
    answers 403.
    """
    principal = principal_of(request)
    organization = Organization.objects.filter(login=login).first()
    if organization is None or not principal.reaches(organization):
        raise NotFound(f"Organization '{login}' not found.")
    role = principal.role_in(organization)
    if role is None:
        raise NotFound(f"Organization '{login}' not found.")
    if need is Need.ADMIN and role != Role.ADMIN:
        raise Forbidden("This needs an organization admin token.")
    if need is Need.READ_CONFIGURATION and role not in (Role.ADMIN, Role.AUDITOR):
        raise Forbidden("This needs an organization admin or auditor.")
    return organization
