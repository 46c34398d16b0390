"""Fixtures for exchange tests: an organization trusting the local issuer with a policy."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from issuers.models import Issuer
from policies.models import AuthPolicy
from policies.registration import issuer_register
from policies.services import policy_update
from tests.factories import (
    PASSWORD,
    MembershipFactory,
    OrganizationFactory,
    RunnerFactory,
    TeamFactory,
    UserFactory,
)
from trustportal.models import Organization, Role

AUDIENCE = "urn:pulumi:org:acme"
GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"
REQUESTED = "urn:pulumi:token-type:access_token:"

DEFAULT_POLICY: list[dict[str, Any]] = [
    {
        "decision": "allow",
        "tokenType": "organization",
        "authorizedPermissions": ["admin"],
        "rules": {"sub": "repo:acme/infra:ref:refs/heads/main", "aud": AUDIENCE},
    },
    {
        "decision": "allow",
        "tokenType": "organization",
        "authorizedPermissions": ["standard"],
        "rules": {"sub": "repo:acme/*", "aud": AUDIENCE},
    },
    {
        "decision": "allow",
        "tokenType": "team",
        "teamName": "platform",
        "rules": {"repository": "acme/infra"},
    },
    {
        "decision": "allow",
        "tokenType": "personal",
        "userLogin": "octocat",
        "rules": {"actor": "octocat"},
    },
    {
        "decision": "allow",
        "tokenType": "runner",
        "runnerID": "deploy-*",
        "rules": {"repository_owner_id": "88310"},
    },
    {
        "decision": "deny",
        "tokenType": "organization",
        "authorizedPermissions": ["admin"],
        "rules": {"event_name": ["pull_request", "pull_request_target"]},
    },
]


@pytest.fixture
def trusted(org, local_issuer, outbound, allow_local_issuers) -> Issuer:
    """The local issuer registered for `acme`, with DEFAULT_POLICY, a team, a user, a runner."""
    TeamFactory(organization=org, name="platform")
    MembershipFactory(organization=org, user=UserFactory(username="octocat"), role=Role.MEMBER)
    RunnerFactory(organization=org, name="deploy-eu")
    issuer = issuer_register(
        organization=org, url=local_issuer.url, name="dev", max_expiration=3600, outbound=outbound
    )
    policy_update(policy=AuthPolicy.objects.get(issuer=issuer), definitions=DEFAULT_POLICY)
    return issuer


def exchange_body(token: str, **overrides: Any) -> dict[str, Any]:
    body = {
        "audience": AUDIENCE,
        "grant_type": GRANT,
        "subject_token_type": ID_TOKEN,
        "requested_token_type": REQUESTED + "organization",
        "subject_token": token,
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


@pytest.fixture
def people(org: Organization) -> dict[str, Any]:
    """acme's admin, auditor and member, and the admin of another organization (beta)."""
    beta = OrganizationFactory(login="beta", name="Beta")
    return {
        "acme": org,
        "beta": beta,
        "admin": MembershipFactory(organization=org, role=Role.ADMIN, user__username="alice").user,
        "auditor": MembershipFactory(
            organization=org, role=Role.AUDITOR, user__username="audrey"
        ).user,
        "member": MembershipFactory(
            organization=org, role=Role.MEMBER, user__username="mallory"
        ).user,
        "outsider": MembershipFactory(
            organization=beta, role=Role.ADMIN, user__username="bob"
        ).user,
    }


def signed_in(username: str) -> Client:
    """A browser session of `username` (password from the factories)."""
    client = Client()
    assert client.login(username=username, password=PASSWORD)
    return client
