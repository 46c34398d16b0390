"""Pages showing stored claims and traces render any stored JSON, however deep or large."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from tests.conftest import auth
from tests.factories import PASSWORD, UserFactory, make_event, make_token
from tests.text import visible_text
from trustportal.jsonview import TOO_DEEP
from trustportal.models import Membership, Organization, Role, User

pytestmark = pytest.mark.django_db

DEPTH = 900


def nested_list(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value]
    return value


def nested_object(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = {"a": value}
    return value


HOSTILE_CLAIMS = {
    "nested-list": {"deep": nested_list(DEPTH)},
    "nested-object": {"deep": nested_object(DEPTH)},
    "nested-60": {"deep": nested_list(60)},  # decoded (under the load bound), cut on pages
    "wide": {"wide": ["x" * 100] * 5_000, **{f"claim{i}": i for i in range(500)}},
}
HOSTILE_TRACES: dict[str, Any] = {
    "nested-values": [
        {
            "index": 0,
            "decision": "allow",
            "token_type": "organization",
            "applies": False,
            "failure": "rules not matched",
            "rules": [
                {"claim": "deep", "patterns": [nested_list(DEPTH)], "values": nested_list(DEPTH)}
            ],
        }
    ],
    "deep-trace": nested_list(DEPTH),
    "odd-shapes": [1, "x", None, {"rules": "not a list"}, {"rules": [1, None, {"values": 3}]}],
}


@pytest.fixture
def admin_client() -> tuple[Client, Organization]:
    organization = Organization.objects.create(login="acme")
    UserFactory(username="alice")
    user = User.objects.get(username="alice")
    Membership.objects.create(organization=organization, user=user, role=Role.ADMIN)
    client = Client(raise_request_exception=False)
    assert client.login(username="alice", password=PASSWORD)
    return client, organization


@pytest.mark.parametrize("trace", HOSTILE_TRACES.values(), ids=HOSTILE_TRACES.keys())
@pytest.mark.parametrize("claims", HOSTILE_CLAIMS.values(), ids=HOSTILE_CLAIMS.keys())
def test_event_pages_render_hostile_stored_json(
    admin_client: tuple[Client, Organization], claims: Any, trace: Any
) -> None:
    client, organization = admin_client
    event = make_event(organization, claims=claims, trace=trace)
    for url in (
        f"/admin/tokens/exchangeevent/{event.pk}/change/",
        f"/orgs/acme/history/{event.pk}/",
    ):
        response = client.get(url)
        assert response.status_code == 200, url
        page = response.content.decode()
        assert len(page) < 2_000_000, url  # bounded, not every byte of a huge claim set
        assert "…" in page, url  # the cut is shown, not silent


def test_ordinary_claims_render_in_full(admin_client: tuple[Client, Organization]) -> None:
    client, organization = admin_client
    claims = {"repository": "acme/app", "groups": ["ops", "dev"], "nested": {"k": [1, True]}}
    event = make_event(organization, claims=claims)
    page = visible_text(client.get(f"/orgs/acme/history/{event.pk}/"))
    assert "acme/app" in page
    assert '["ops", "dev"]' in page
    assert '{"k": [1, true]}' in page
    admin_page = client.get(f"/admin/tokens/exchangeevent/{event.pk}/change/").content.decode()
    assert "&quot;repository&quot;: &quot;acme/app&quot;" in admin_page


@pytest.mark.parametrize("claims", HOSTILE_CLAIMS.values(), ids=HOSTILE_CLAIMS.keys())
def test_api_and_exports_bound_the_depth_of_stored_json(
    admin_client: tuple[Client, Organization], claims: Any
) -> None:
    client, organization = admin_client
    event = make_event(organization, claims=claims, trace=HOSTILE_TRACES["deep-trace"])
    for fmt in ("jsonl", "csv"):
        response = client.get(f"/orgs/acme/history/export.{fmt}")
        assert response.status_code == 200
        assert b"".join(response.streaming_content)  # type: ignore[attr-defined]
    api = APIClient()
    auth(api, make_token("organization", organization=organization, permission="admin"))
    body = api.get(f"/api/orgs/acme/oidc/exchanges/{event.pk}").json()
    if claims is HOSTILE_CLAIMS["nested-60"]:
        assert body["claims"]["deep"] == claims["deep"]
    elif "deep" in claims:  # too deep to decode: the marker, not the claims
        assert body["claims"] == TOO_DEEP
    else:
        assert set(claims) <= set(body["claims"])


def test_api_keeps_ordinary_nesting(admin_client: tuple[Client, Organization]) -> None:
    _client, organization = admin_client
    claims = {"nested": nested_object(10)}
    event = make_event(organization, claims=claims)
    api = APIClient()
    auth(api, make_token("organization", organization=organization, permission="admin"))
    body = api.get(f"/api/orgs/acme/oidc/exchanges/{event.pk}").json()
    assert body["claims"]["nested"] == claims["nested"]


def test_nesting_up_to_the_load_bound_is_kept(admin_client: tuple[Client, Organization]) -> None:
    _client, organization = admin_client
    event = make_event(organization, claims={"nested": nested_list(60)})
    api = APIClient()
    auth(api, make_token("organization", organization=organization, permission="admin"))
    body = api.get(f"/api/orgs/acme/oidc/exchanges/{event.pk}").json()
    assert body["claims"]["nested"] == nested_list(60)
