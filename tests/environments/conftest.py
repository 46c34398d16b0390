"""Helpers for environment tests: environments made through the services, and exchanged tokens."""

from __future__ import annotations

import gc
import json
import threading
import urllib.request
from typing import Any

from rest_framework.test import APIClient

from devtools.issuer import DevIssuer
from environments import definitions
from environments.access import Actor
from environments.models import Environment, Level
from issuers.models import Issuer
from issuers.services import Outbound
from policies.models import AuthPolicy
from policies.registration import issuer_register
from policies.services import policy_update
from tests.factories import MembershipFactory, RunnerFactory, TeamFactory, UserFactory
from tests.tokens.conftest import DEFAULT_POLICY, exchange_body
from trustportal.models import Organization, Role

SDK_YAML = """\
values:
  app:
    name: web
    ports: [80, 443]
  greeting: hello from ${app.name}
  password:
    fn::secret: correct-horse-battery-staple
  dsn: postgres://app:${password}@db/app
"""


def system_actor(organization: Organization) -> Actor:
    """An org-admin actor for setting up environments in tests."""
    return Actor(organization, Level.ADMIN, can_create=True, login="setup", display_name="Setup")


def make_environment(
    organization: Organization, project: str = "app", name: str = "dev", text: str | None = None
) -> Environment:
    """An environment created (and, with `text`, updated) through the services."""
    actor = system_actor(organization)
    environment = definitions.environment_create(
        organization=organization, project=project, name=name, actor=actor
    )
    if text is not None:
        definitions.environment_update(environment=environment, text=text, actor=actor)
    return environment


def trust_local_issuer(organization: Organization, dev: DevIssuer, outbound: Outbound) -> Issuer:
    """Register the local issuer with the token tests' policy (and its team, user and runner)."""
    TeamFactory(organization=organization, name="platform")
    MembershipFactory(
        organization=organization, user=UserFactory(username="octocat"), role=Role.MEMBER
    )
    RunnerFactory(organization=organization, name="deploy-eu")
    issuer = issuer_register(
        organization=organization, url=dev.url, name="dev", max_expiration=3600, outbound=outbound
    )
    policy_update(policy=AuthPolicy.objects.get(issuer=issuer), definitions=DEFAULT_POLICY)
    return issuer


def exchange(client: APIClient, dev: DevIssuer, **overrides: Any) -> str:
    """Exchange a freshly minted local-issuer token in-process; returns the access token."""
    claims = overrides.pop("claims", None)
    body = exchange_body(dev.mint(claims, audience="urn:pulumi:org:acme"), **overrides)
    response = client.post("/api/oauth/token", body, format="json")
    assert response.status_code == 200, response.json()
    token: str = response.json()["access_token"]
    return token


def close_connections(client: Any) -> None:
    """Close the SDK's kept-alive connection and wait for the live server to finish with it.

    Otherwise a request thread of the live server outlives the test and touches the test
    database after it is gone. Responses still referenced (an `ApiException` keeps its own)
    hold the socket open, so callers drop them first.
    """
    api_client = client.esc_api.api_client
    for pool in api_client.rest_client._pool_managers.values():
        pool.clear()
    api_client.last_response = None
    gc.collect()  # responses read without release keep their sockets until collected
    for thread in threading.enumerate():
        if "process_request_thread" in thread.name:
            thread.join(timeout=5)


def exchange_over_http(base_url: str, dev: DevIssuer, **overrides: Any) -> str:
    """Exchange over real HTTP, as a CI job does (for tests against `live_server`)."""
    body = exchange_body(dev.mint(audience="urn:pulumi:org:acme"), **overrides)
    request = urllib.request.Request(
        f"{base_url}/api/oauth/token",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        token: str = json.loads(response.read())["access_token"]
    return token
