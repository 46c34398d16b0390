"""Concurrent exchanges against a real server thread, PostgreSQL and Redis.

- 200 exchanges from 16 threads: every one granted, each with its own token and its own event.
- A single-use issuer's one token raced by 20 requests: exactly one wins (Redis `SET NX`), the
  other 19 are refused as `jti_replayed`, and every attempt is recorded.
- 20 racing tokens with unknown kids: one synchronous JWKS refresh in total (single-flight).

Rate limits are switched off (0) so that only the behaviour under test can refuse. With the limits
at 0 the rate limiter never touches the cache, and every test here uses a fresh issuer (single-use
`jti`s are keyed by issuer id), so nothing needs clearing: no FLUSHDB on a Redis that a Celery
worker of another test may be using as its broker.
"""

from __future__ import annotations

import dataclasses
import json
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from devtools.issuer import DevIssuer, SigningKey
from issuers.models import Issuer
from issuers.services import Outbound
from policies.models import AuthPolicy
from policies.registration import issuer_register
from policies.services import policy_update
from tests.factories import (
    MembershipFactory,
    OrganizationFactory,
    RunnerFactory,
    TeamFactory,
    UserFactory,
)
from tests.tokens.conftest import AUDIENCE, DEFAULT_POLICY, GRANT, ID_TOKEN, REQUESTED
from tokens.format import hash_token
from tokens.models import AccessToken, ExchangeEvent
from trustportal.models import Role

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

THREADS = 16
APP_BRANCH = {"sub": "repo:acme/app:ref:refs/heads/dev"}
# (requested token type, scope, claims): a mix, so that concurrent grants also look up teams,
# users and runners.
MIX: list[tuple[str, str, dict[str, Any] | None]] = [
    ("organization", "", APP_BRANCH),
    ("organization", "admin", None),
    ("team", "team:platform", None),
    ("personal", "user:octocat", None),
    ("runner", "runner:deploy-eu", None),
]


@pytest.fixture
def no_rate_limits(settings: Any) -> None:
    settings.TRUSTPORTAL = dataclasses.replace(
        settings.TRUSTPORTAL, rate_limit_per_ip=0, rate_limit_per_subject=0
    )


@pytest.fixture
def issuer(
    local_issuer: DevIssuer, outbound: Outbound, allow_local_issuers: None, no_rate_limits: None
) -> Issuer:
    """acme trusts the local issuer with DEFAULT_POLICY (committed: the server is a thread)."""
    org = OrganizationFactory(login="acme", name="ACME Corp")
    TeamFactory(organization=org, name="platform")
    MembershipFactory(organization=org, user=UserFactory(username="octocat"), role=Role.MEMBER)
    RunnerFactory(organization=org, name="deploy-eu")
    registered = issuer_register(
        organization=org, url=local_issuer.url, name="dev", max_expiration=3600, outbound=outbound
    )
    policy_update(policy=AuthPolicy.objects.get(issuer=registered), definitions=DEFAULT_POLICY)
    return registered


def exchange(url: str, token: str, token_type: str = "organization", scope: str = "") -> Any:
    """One exchange over real HTTP, as auth-actions sends it: (status, JSON body)."""
    body = {
        "audience": AUDIENCE,
        "grant_type": GRANT,
        "subject_token_type": ID_TOKEN,
        "requested_token_type": REQUESTED + token_type,
        "subject_token": token,
        "scope": scope,
    }
    request = urllib.request.Request(
        f"{url}/api/oauth/token",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # the live server
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def race(url: str, jobs: list[tuple[str, str, str]]) -> list[tuple[int, dict[str, Any]]]:
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        return list(pool.map(lambda job: exchange(url, *job), jobs))


def test_200_parallel_exchanges_each_get_their_own_token_and_event(
    live_server, local_issuer: DevIssuer, issuer: Issuer
) -> None:
    jobs = []
    for i in range(200):
        token_type, scope, claims = MIX[i % len(MIX)]
        jobs.append((local_issuer.mint(claims, audience=AUDIENCE), token_type, scope))

    results = race(live_server.url, jobs)

    assert Counter(status for status, _ in results) == {200: 200}, [
        body for status, body in results if status != 200
    ][:3]
    tokens = [body["access_token"] for _, body in results]
    assert len(set(tokens)) == 200
    for (_, token_type, scope), (_, body) in zip(jobs, results, strict=True):
        assert body["issued_token_type"] == REQUESTED + token_type
        assert body["scope"] == scope and body["expires_in"] == 3600

    rows = list(AccessToken.objects.all())
    assert len(rows) == 200
    assert {row.token_hash for row in rows} == {hash_token(token) for token in tokens}
    assert Counter(row.token_type for row in rows) == Counter(
        token_type for _, token_type, _ in jobs
    )

    events = list(ExchangeEvent.objects.all())
    assert len(events) == 200
    assert Counter(e.decision for e in events) == {"allow": 200}
    assert len({e.request_id for e in events}) == 200
    assert len({e.token_id for e in events}) == 200
    assert {e.token_id for e in events} == {row.pk for row in rows}
    assert len({e.jti for e in events}) == 200
    assert len({e.subject_token_sha256 for e in events}) == 200


def test_a_single_use_token_raced_20_times_is_granted_once(
    live_server, local_issuer: DevIssuer, issuer: Issuer
) -> None:
    issuer.single_use = True
    issuer.save()
    token = local_issuer.mint(APP_BRANCH, audience=AUDIENCE)

    results = race(live_server.url, [(token, "organization", "")] * 20)

    statuses = Counter(status for status, _ in results)
    assert statuses == {200: 1, 400: 19}, results
    refused = [body for status, body in results if status == 400]
    assert {(b["error"], b["reason"]) for b in refused} == {("invalid_request", "jti_replayed")}
    assert AccessToken.objects.count() == 1

    events = list(ExchangeEvent.objects.all())
    assert len(events) == 20
    assert Counter((e.decision, e.reason) for e in events) == {
        ("allow", "allowed"): 1,
        ("deny", "jti_replayed"): 19,
    }
    assert {e.subject_token_sha256 for e in events} == {hash_token(token)}
    assert len({e.request_id for e in events}) == 20


def test_racing_unknown_kids_refresh_the_keys_once(
    live_server, local_issuer: DevIssuer, issuer: Issuer
) -> None:
    stranger = SigningKey.generate("ES256", kid="stranger-0")
    jobs = []
    for i in range(20):
        key = SigningKey(kid=f"stranger-{i}", alg="ES256", private_key=stranger.private_key)
        jobs.append((local_issuer.mint(APP_BRANCH, audience=AUDIENCE, key=key), "organization", ""))
    local_issuer.clear_log()

    results = race(live_server.url, jobs)

    assert {(status, body["reason"]) for status, body in results} == {(400, "unknown_kid")}
    assert len(local_issuer.requests_to("/.well-known/jwks")) == 1
    assert {r.path for r in local_issuer.requests} == {"/.well-known/jwks"}
    assert Counter(e.reason for e in ExchangeEvent.objects.all()) == {"unknown_kid": 20}
