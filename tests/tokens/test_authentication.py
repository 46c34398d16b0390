"""API authentication by access token, the 401 paths, and GET /api/user."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from tests.conftest import auth
from tests.factories import (
    MembershipFactory,
    OrganizationFactory,
    RunnerFactory,
    TeamFactory,
    UserFactory,
    make_token,
)
from tokens import selectors
from tokens.errors import InvalidAccessToken
from tokens.format import generate_token, hash_token
from tokens.models import AccessToken
from tokens.selectors import token_for_request
from tokens.services import token_create, token_revoke
from tokens.tasks import flush_token_usage

pytestmark = pytest.mark.django_db


def assert_401(response) -> None:
    assert response.status_code == 401
    assert response["Content-Type"].startswith("application/json")
    assert response["WWW-Authenticate"] == "token"
    body = response.json()
    assert body["code"] == 401
    assert isinstance(body["message"], str) and body["message"]


def test_no_header_is_401(api_client) -> None:
    assert_401(api_client.get("/api/user"))


@pytest.mark.parametrize(
    "header",
    [
        "token",
        "token ",
        "Basic dXNlcjpwYXNz",
        "token not-a-token",
        "token tpo_" + "A" * 49,  # right length and prefix, checksum wrong
        "token " + generate_token("organization"),  # well-formed, unknown
        "bearer",
    ],
)
def test_malformed_or_unknown_tokens_are_401(api_client, header: str) -> None:
    api_client.credentials(HTTP_AUTHORIZATION=header)
    assert_401(api_client.get("/api/user"))


@pytest.mark.parametrize("scheme", ["token", "Token", "Bearer", "bearer"])
def test_token_and_bearer_schemes_are_accepted(api_client, admin_token: str, scheme: str) -> None:
    response = auth(api_client, admin_token, scheme).get("/api/user")
    assert response.status_code == 200


def test_expired_token_is_401(api_client, org) -> None:
    token = make_token(
        "organization", organization=org, expires=timezone.now() + timedelta(seconds=30)
    )
    assert auth(api_client, token).get("/api/user").status_code == 200
    with time_machine.travel(timezone.now() + timedelta(seconds=31)):
        assert_401(api_client.get("/api/user"))


def test_revoked_token_is_401_on_its_next_call(api_client, org) -> None:
    row, token = token_create(token_type="organization", organization=org)
    assert auth(api_client, token).get("/api/user").status_code == 200
    assert token_revoke(token=row, reason="leaked") is True
    assert token_revoke(token=row, reason="again") is False
    row.refresh_from_db()
    assert row.revoked_reason == "leaked"
    assert_401(api_client.get("/api/user"))


def test_a_revocation_elsewhere_is_honoured_within_five_seconds(org) -> None:
    """Another process revokes (a plain UPDATE here): this process's cache holds the row for at
    most AUTH_CACHE_SECONDS, and expiry is checked on every call whatever the cache holds."""
    row, token = token_create(token_type="organization", organization=org)
    clock = [1000.0]
    now = timezone.now()
    assert token_for_request(token, now=now, clock=lambda: clock[0]).pk == row.pk
    AccessToken.objects.filter(pk=row.pk).update(revoked_at=now)
    clock[0] += 4.9
    assert token_for_request(token, now=now, clock=lambda: clock[0]).pk == row.pk  # cached
    clock[0] += 0.2
    with pytest.raises(InvalidAccessToken) as refused:
        token_for_request(token, now=now, clock=lambda: clock[0])
    assert refused.value.reason == "revoked"


def test_a_cached_token_still_expires_on_time(org) -> None:
    now = timezone.now()
    row, token = token_create(
        token_type="organization", organization=org, expires=now + timedelta(seconds=2)
    )
    assert token_for_request(token, now=now, clock=lambda: 0.0).pk == row.pk
    with pytest.raises(InvalidAccessToken) as refused:
        token_for_request(token, now=now + timedelta(seconds=3), clock=lambda: 0.1)
    assert refused.value.reason == "expired"


def test_unknown_tokens_are_never_cached(org) -> None:
    for _ in range(3):
        with pytest.raises(InvalidAccessToken):
            token_for_request(generate_token("organization"), now=timezone.now())
    assert len(selectors._recent_tokens) == 0


def test_inactive_user_personal_token_is_401(api_client) -> None:
    user = UserFactory(is_active=False)
    assert_401(auth(api_client, make_token("personal", user=user)).get("/api/user"))


def test_only_the_hash_is_stored(org) -> None:
    row, token = token_create(token_type="organization", organization=org)
    assert row.token_hash == hash_token(token)
    assert row.prefix == token[:10]
    assert not AccessToken.objects.filter(token_hash=token).exists()


def test_last_used_is_written_at_most_once_a_minute(api_client, admin_token: str) -> None:
    # Authentication only buffers the use; the flush task (every minute) writes it in bulk.
    auth(api_client, admin_token)
    flush_token_usage.delay()  # start from an empty buffer
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        api_client.get("/api/user")
    row = AccessToken.objects.get(token_hash=hash_token(admin_token))
    assert row.last_used is None  # nothing written on the request path
    flush_token_usage.delay()
    row.refresh_from_db()
    assert row.last_used == start
    with time_machine.travel(start + timedelta(seconds=30), tick=False):
        api_client.get("/api/user")
    flush_token_usage.delay()
    row.refresh_from_db()
    assert row.last_used == start
    with time_machine.travel(start + timedelta(seconds=61), tick=False):
        api_client.get("/api/user")
    flush_token_usage.delay()
    row.refresh_from_db()
    assert row.last_used == start + timedelta(seconds=61)


def test_api_user_for_an_organization_token(api_client, org, admin_token: str) -> None:
    body = auth(api_client, admin_token).get("/api/user").json()
    assert body == {
        "id": "acme-bot",
        "githubLogin": "acme-bot",
        "name": "ACME Corp (organization token)",
        "email": "",
        "avatarUrl": "",
        "organizations": [
            {"githubLogin": "acme", "name": "ACME Corp", "avatarUrl": "", "role": "admin"}
        ],
        "identities": [],
        "hasMFA": False,
        "isOrgManaged": False,
        "isManagedByMultiOrg": False,
        "tokenInfo": {"name": "ci", "organization": "acme", "team": ""},
    }


def test_api_user_for_a_runner_token_is_the_org_bot(api_client, org) -> None:
    token = make_token("runner", runner=RunnerFactory(organization=org, name="deployer"))
    body = auth(api_client, token).get("/api/user").json()
    assert body["githubLogin"] == "acme-bot"
    assert body["tokenInfo"]["organization"] == "acme"


def test_api_user_for_a_team_token(api_client, org) -> None:
    token = make_token("team", team=TeamFactory(organization=org, name="platform"))
    body = auth(api_client, token).get("/api/user").json()
    assert body["githubLogin"] == "acme-platform-bot"
    assert body["tokenInfo"] == {"name": "", "organization": "acme", "team": "platform"}


def test_api_user_for_a_personal_token_lists_the_users_orgs(api_client) -> None:
    user = UserFactory(username="bob", first_name="Bob", last_name="Smith", email="bob@x.test")
    MembershipFactory(user=user, organization=OrganizationFactory(login="zeta"))
    MembershipFactory(user=user, organization=OrganizationFactory(login="alpha", name=""))
    OrganizationFactory(login="other")
    body = auth(api_client, make_token("personal", user=user)).get("/api/user").json()
    assert body["githubLogin"] == "bob"
    assert body["name"] == "Bob Smith"
    assert body["email"] == "bob@x.test"
    assert [(o["githubLogin"], o["name"], o["role"]) for o in body["organizations"]] == [
        ("alpha", "alpha", "member"),
        ("zeta", "Zeta Inc.", "member"),
    ]


def test_unknown_api_path_is_json_404(api_client, admin_token: str) -> None:
    response = auth(api_client, admin_token).get("/api/nothing/here")
    assert response.status_code == 404
    assert response.json() == {"code": 404, "message": "Not found."}


def test_wrong_method_is_json_405(api_client, admin_token: str) -> None:
    response = auth(api_client, admin_token).delete("/api/user")
    assert response.status_code == 405
    assert response.json()["code"] == 405
