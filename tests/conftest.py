"""Fixtures shared by every test: clients, a real local OIDC issuer, service availability."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Iterator
from typing import Any

import pytest
from rest_framework.test import APIClient

from devtools.issuer import DevIssuer, SigningKey
from issuers.services import Outbound
from outbound.policy import OutboundPolicy
from tests.factories import MembershipFactory, OrganizationFactory, make_token
from tokens.usage import RedisUsageBuffer, default_buffer
from trustportal.models import Organization, Role, User

INTEGRATION = bool(os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if INTEGRATION:
        return
    skip = pytest.mark.skip(reason="integration: set DATABASE_URL and REDIS_URL (see .ci/run)")
    for item in items:
        if "integration" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _fresh_process_caches() -> Iterator[None]:
    """Per-process caches keyed by database ids must not leak between tests (ids get reused)."""
    from exchange.store import forget_cached
    from tokens.selectors import forget_cached_tokens

    forget_cached()
    forget_cached_tokens()
    yield
    forget_cached()
    forget_cached_tokens()


def _forget_login_failures() -> None:
    """Drop the sign-in throttle's counts (`trustportal.login_throttle`), which live in the
    shared cache: failures of one test (or of an earlier run, in Redis) must not lock out the
    sign-ins of another."""
    from django.core.cache import caches
    from django.core.cache.backends.locmem import LocMemCache

    cache = caches["default"]
    if isinstance(cache, LocMemCache):
        cache.clear()
        return
    client = cache._cache.get_client()  # type: ignore[attr-defined]
    for key in client.scan_iter(match="*login-throttle:*", count=1000):
        client.delete(key)


@pytest.fixture(autouse=True)
def _no_login_failures() -> Iterator[None]:
    _forget_login_failures()
    yield
    _forget_login_failures()


@pytest.fixture(autouse=True)
def _empty_token_usage_buffer() -> Iterator[None]:
    """Each test starts with no buffered token uses (`tokens.usage`): a use left by an earlier
    test would be written later, maybe to another test's token (ids are reused after a
    rollback), and with queries the test did not make."""
    buffer = default_buffer()
    buffer.drain()
    if isinstance(buffer, RedisUsageBuffer):
        buffer.forget()
    yield
    buffer.drain()
    if isinstance(buffer, RedisUsageBuffer):
        buffer.forget()


@pytest.fixture(scope="session")
def _issuer_key() -> SigningKey:
    # RSA key generation is slow; one key per test session is plenty for most tests.
    return SigningKey.generate("RS256", kid="test-key-1")


@pytest.fixture
def local_issuer(_issuer_key: SigningKey) -> Iterator[DevIssuer]:
    """A real OIDC issuer on 127.0.0.1 (discovery, JWKS, token minting, request log)."""
    issuer = DevIssuer(keys=[_issuer_key])
    with issuer:
        yield issuer


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def org(db: None) -> Organization:
    return OrganizationFactory(login="acme", name="ACME Corp")


@pytest.fixture
def org_admin(org: Organization) -> User:
    return MembershipFactory(organization=org, role=Role.ADMIN, user__username="alice").user


@pytest.fixture
def admin_token(org: Organization) -> str:
    return make_token("organization", organization=org, permission="admin", name="ci")


def auth(client: APIClient, token: str, scheme: str = "token") -> APIClient:
    client.credentials(HTTP_AUTHORIZATION=f"{scheme} {token}")
    return client


LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


@pytest.fixture
def outbound() -> Outbound:
    """The outbound guard as `make run` configures it: http and loopback allowed."""
    return Outbound(policy=OutboundPolicy(allow_http=True, allowed_networks=LOOPBACK))


@pytest.fixture
def allow_local_issuers(settings: Any) -> None:
    """Let views and tasks (which read settings) reach the local issuer on 127.0.0.1."""
    settings.TRUSTPORTAL = dataclasses.replace(
        settings.TRUSTPORTAL, allow_http_issuers=True, issuer_allowed_networks=LOOPBACK
    )
