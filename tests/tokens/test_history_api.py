"""`GET /api/orgs/{org}/oidc/exchanges`: the same filters as the page, a cursor, read-only."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest

from issuers.models import Issuer
from tests.conftest import auth
from tests.factories import make_event, make_token
from tokens.models import ExchangeEvent

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
URL = "/api/orgs/acme/oidc/exchanges"


@pytest.fixture
def history(people) -> dict[str, ExchangeEvent]:
    acme = people["acme"]
    gh = Issuer.objects.create(organization=acme, name="gh", url="https://gh", issuer="https://gh")
    return {
        "allowed": make_event(
            acme,
            created=T0,
            issuer=gh,
            decision="allow",
            reason="allowed",
            sub="repo:acme/infra:ref:refs/heads/main",
            claims={"repository": "acme/infra"},
            trace=[{"index": 0, "decision": "allow", "applies": True, "rules": []}],
        ),
        "denied": make_event(
            acme,
            created=T0 + timedelta(hours=1),
            sub="repo:acme/app:pull_request",
            claims={"repository": "acme/app"},
            requested_token_type="team",
        ),
        "other": make_event(people["beta"], created=T0),
    }


@pytest.fixture
def auditor_token(people) -> str:
    return make_token("personal", user=people["auditor"])


def ids(body: dict) -> list[int]:
    return [int(e["id"]) for e in body["exchanges"]]


def test_list_shape_and_order(api_client, history, auditor_token) -> None:
    body = auth(api_client, auditor_token).get(URL).json()
    assert set(body) == {"exchanges", "nextCursor"}
    assert ids(body) == [history["denied"].pk, history["allowed"].pk]
    assert body["nextCursor"] is None
    first = body["exchanges"][1]
    assert first["decision"] == "allow" and first["repository"] == "acme/infra"
    assert first["sub"] == "repo:acme/infra:ref:refs/heads/main"
    assert first["created"] == "2026-03-01T12:00:00Z"
    assert "trace" not in first  # the list is light; the detail has the trace


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"decision": "deny"}, ["denied"]),
        ({"reason": "allowed"}, ["allowed"]),
        ({"type": "team"}, ["denied"]),
        ({"subject": "repo:acme/infra:*"}, ["allowed"]),
        ({"repository": "acme/a??"}, ["denied"]),
        ({"since": "2026-03-01T12:30Z"}, ["denied"]),
        ({"until": "2026-03-01T12:30Z"}, ["allowed"]),
    ],
)
def test_filters(api_client, history, auditor_token, params, expected) -> None:
    body = auth(api_client, auditor_token).get(URL, params).json()
    assert ids(body) == [history[k].pk for k in expected]


def test_issuer_filter(api_client, history, auditor_token) -> None:
    issuer_id = history["allowed"].issuer_id
    body = auth(api_client, auditor_token).get(URL, {"issuer": str(issuer_id)}).json()
    assert ids(body) == [history["allowed"].pk]


def test_cursor_walks_every_event_once(api_client, people, auditor_token) -> None:
    created = [make_event(people["acme"], created=T0 + timedelta(seconds=i)) for i in range(25)]
    auth(api_client, auditor_token)
    seen: list[int] = []
    params: dict[str, str] = {"limit": "10"}
    while True:
        body = api_client.get(URL, params).json()
        seen += ids(body)
        if body["nextCursor"] is None:
            break
        params["before"] = body["nextCursor"]
    assert seen == [e.pk for e in reversed(created)]


def test_request_id_finds_exactly_that_attempt(api_client, history, auditor_token) -> None:
    denied = history["denied"]
    auth(api_client, auditor_token)
    body = api_client.get(URL, {"requestId": denied.request_id}).json()
    assert ids(body) == [denied.pk]
    assert body["exchanges"][0]["requestId"] == denied.request_id
    # Exact, not a prefix or pattern; another organization's attempt is never found.
    assert ids(api_client.get(URL, {"requestId": denied.request_id[:-1]}).json()) == []
    other = history["other"].request_id
    assert ids(api_client.get(URL, {"requestId": other}).json()) == []


def test_request_id_is_in_the_openapi_schema(api_client) -> None:
    schema = json.loads(api_client.get("/api/openapi.json").content)
    listing = schema["paths"]["/api/orgs/{org}/oidc/exchanges"]["get"]
    names = {p["name"] for p in listing["parameters"] if p["in"] == "query"}
    assert {"requestId", "issuer", "decision", "subject", "before", "limit"} <= names


def test_bad_filters_are_400(api_client, history, auditor_token) -> None:
    auth(api_client, auditor_token)
    for params in (
        {"decision": "maybe"},
        {"limit": "0"},
        {"limit": "501"},
        {"before": "x"},
        {"requestId": "a b"},
        {"requestId": "x" * 65},
    ):
        response = api_client.get(URL, params)
        assert response.status_code == 400, params
        assert response.json()["code"] == 400


def test_detail_has_claims_and_trace(api_client, history, auditor_token) -> None:
    event = history["allowed"]
    body = auth(api_client, auditor_token).get(f"{URL}/{event.pk}").json()
    assert body["claims"]["repository"] == "acme/infra"
    assert body["trace"][0]["applies"] is True
    assert api_client.get(f"{URL}/{history['other'].pk}").status_code == 404
    assert api_client.get(f"{URL}/nope").status_code == 404


def test_api_export_streams_csv_and_jsonl(api_client, history, auditor_token) -> None:
    auth(api_client, auditor_token)
    response = api_client.get(f"{URL}/export.csv", {"decision": "deny"})
    assert response.status_code == 200 and response.streaming
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [int(r["id"]) for r in rows] == [history["denied"].pk]
    response = api_client.get(f"{URL}/export.jsonl")
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [
        str(history["denied"].pk),
        str(history["allowed"].pk),
    ]
    assert api_client.get(f"{URL}/export.xml").status_code == 404


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_no_write_endpoints(api_client, history, admin_token, method: str) -> None:
    auth(api_client, admin_token)
    for url in (URL, f"{URL}/{history['allowed'].pk}"):
        response = getattr(api_client, method)(url, {}, format="json")
        assert response.status_code == 405, (method, url)
    assert ExchangeEvent.objects.count() == 3


def test_who_may_read(api_client, history, people, admin_token) -> None:
    assert auth(api_client, admin_token).get(URL).status_code == 200
    member = make_token("personal", user=people["member"])
    assert auth(api_client, member).get(URL).status_code == 403
    standard = make_token("organization", organization=people["acme"], permission="standard")
    assert auth(api_client, standard).get(URL).status_code == 403
    outsider = make_token("personal", user=people["outsider"])
    response = auth(api_client, outsider).get(URL)
    assert response.status_code == 404  # acme is invisible to beta's admin
    beta = make_token("organization", organization=people["beta"], permission="admin")
    assert auth(api_client, beta).get(URL).status_code == 404
    assert auth(api_client, beta).get(f"{URL}/{history['allowed'].pk}").status_code == 404
    api_client.credentials()
    assert api_client.get(URL).status_code == 401
