"""The ESC API over HTTP: shapes, revisions, ETags, opens, tags, paging, and errors never 500."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.utils import timezone
from rest_framework.test import APIClient

from environments.models import AccessEvent, Environment, Revision
from portal.environments import api
from tests.conftest import auth
from tests.environments.conftest import SDK_YAML, exchange, make_environment, trust_local_issuer
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory, make_token
from trustportal.models import Organization, Role

pytestmark = pytest.mark.django_db

BASE = "/api/esc/environments/acme"
ENV = f"{BASE}/app/dev"


@pytest.fixture
def client(org: Organization, admin_token: str) -> APIClient:
    return auth(APIClient(), admin_token)


def patch_yaml(client: APIClient, text: str, **headers: str) -> Any:
    return client.generic("PATCH", ENV, text.encode(), content_type="application/x-yaml", **headers)


def opened(client: APIClient, path: str = ENV, **query: str) -> dict[str, Any]:
    response = client.post(f"{path}/open", query_params=query)
    assert response.status_code == 200, response.json()
    session = response.json()["id"]
    body = client.get(f"{ENV}/open/{session}")
    assert body.status_code == 200, body.json()
    result: dict[str, Any] = body.json()
    return result


def test_create_list_get_update_delete(client: APIClient, org: Organization) -> None:
    created = client.post(BASE, {"project": "app", "name": "dev"}, format="json")
    assert created.status_code == 200
    assert set(created.json()) == {"organization", "project", "name", "created", "modified"}
    listed = client.get(BASE).json()
    assert listed["nextToken"] == ""
    assert [(e["project"], e["name"]) for e in listed["environments"]] == [("app", "dev")]
    assert client.post(BASE, {"project": "app", "name": "dev"}, format="json").status_code == 409

    empty = client.get(ENV)
    assert empty.status_code == 200 and empty.content == b""
    assert empty["Content-Type"].startswith("application/x-yaml")
    assert empty["ETag"] == '"1"' and empty["Pulumi-ESC-Revision"] == "1"

    updated = patch_yaml(client, SDK_YAML)
    assert updated.status_code == 200, updated.json()
    assert updated.json() == {"diagnostics": [], "revision": 2}
    assert updated["Pulumi-ESC-Revision"] == "2" and updated["ETag"] == '"2"'
    got = client.get(ENV)
    assert got["ETag"] == '"2"'
    head = client.head(ENV)
    assert head.status_code == 200 and head["ETag"] == '"2"' and head.content == b""
    text = got.content.decode()
    assert "fn::secret: {ciphertext: v1." in text and "hello from ${app.name}" in text
    assert "correct-horse-battery-staple" not in text

    assert client.delete(ENV).status_code == 204
    assert client.get(ENV).status_code == 404
    assert not Revision.objects.exists()


def test_a_stale_etag_is_a_conflict(client: APIClient, org: Organization) -> None:
    make_environment(org, text="values: {a: 1}\n")
    stale = patch_yaml(client, "values: {a: 2}\n", HTTP_IF_MATCH='"1"')
    assert stale.status_code == 409
    assert stale.json() == {
        "code": 409,
        "message": (
            "The environment is at revision 2, not 1; read it again and reapply your change."
        ),
    }
    # The esc CLI sends the ETag back in an `ETag` header rather than `If-Match`.
    assert patch_yaml(client, "values: {a: 2}\n", HTTP_ETAG='"2"').status_code == 200
    assert patch_yaml(client, "values: {a: 3}\n", HTTP_IF_MATCH='W/"3"').status_code == 200
    assert patch_yaml(client, "values: {a: 4}\n", HTTP_IF_MATCH="*").status_code == 200
    assert patch_yaml(client, "values: {}\n", HTTP_IF_MATCH="nonsense").status_code == 400
    assert Environment.objects.get().revision == 5


def test_every_update_is_a_revision_with_author(client: APIClient, org: Organization) -> None:
    make_environment(org)
    for value in (1, 1, 2):
        assert patch_yaml(client, f"values: {{a: {value}}}\n").status_code == 200
    revisions = client.get(f"{ENV}/versions").json()
    assert [r["number"] for r in revisions] == [4, 3, 2, 1]
    assert revisions[0]["creatorLogin"] == "acme-bot" and revisions[0]["tags"] == ["latest"]
    assert revisions[-1]["creatorLogin"] == "setup"
    page = client.get(f"{ENV}/versions", {"before": 3, "count": 1}).json()
    assert [r["number"] for r in page] == [2]
    assert client.get(f"{ENV}/versions/2").content == b"values: {a: 1}\n"
    assert client.get(f"{ENV}/versions/latest").content == b"values: {a: 2}\n"
    assert client.get(f"{ENV}/versions/9").status_code == 404
    row = Revision.objects.get(number=4)
    assert row.creator_token.startswith("tpo_") and row.created_by is None


def test_revision_tags(client: APIClient, org: Organization) -> None:
    make_environment(org, text="values: {a: 1}\n")
    patch_yaml(client, "values: {a: 2}\n")
    tags = f"{ENV}/versions/tags"
    assert client.post(tags, {"name": "stable", "revision": 2}, format="json").status_code == 204
    assert client.post(tags, {"name": "stable", "revision": 2}, format="json").status_code == 409
    assert client.post(tags, {"name": "latest", "revision": 1}, format="json").status_code == 400
    assert client.post(tags, {"name": "1abc", "revision": 1}, format="json").status_code == 400
    assert client.post(tags, {"name": "old", "revision": 99}, format="json").status_code == 404
    # The esc CLI names the tag in the path.
    assert client.post(f"{tags}/first", {"revision": 1}, format="json").status_code == 204
    listed = client.get(tags).json()
    assert [(t["name"], t["revision"]) for t in listed["tags"]] == [
        ("first", 1),
        ("latest", 3),
        ("stable", 2),
    ]
    assert client.get(tags, {"count": 1}).json()["nextToken"] == "first"
    assert client.get(tags, {"after": "first"}).json()["tags"][0]["name"] == "latest"
    assert client.get(f"{ENV}/versions/stable").content == b"values: {a: 1}\n"
    assert client.patch(f"{tags}/stable", {"revision": 3}, format="json").status_code == 204
    assert client.get(f"{tags}/stable").json()["revision"] == 3
    assert client.get(f"{tags}/latest").json()["revision"] == 3
    assert client.patch(f"{tags}/latest", {"revision": 1}, format="json").status_code == 400
    assert client.delete(f"{tags}/stable").status_code == 204
    assert client.get(f"{tags}/stable").status_code == 404


def test_environment_tags(client: APIClient, org: Organization) -> None:
    make_environment(org)
    tags = f"{ENV}/tags"
    created = client.post(tags, {"name": "owner", "value": "platform"}, format="json")
    assert created.status_code == 200
    assert set(created.json()) == {
        "name",
        "value",
        "created",
        "modified",
        "editorLogin",
        "editorName",
    }
    assert client.post(tags, {"name": "owner", "value": "x"}, format="json").status_code == 409
    assert client.get(tags).json()["tags"]["owner"]["value"] == "platform"
    stale = {"currentTag": {"value": "nope"}, "newTag": {"name": "team", "value": "x"}}
    assert client.patch(f"{tags}/owner", stale, format="json").status_code == 409
    change = {"currentTag": {"value": "platform"}, "newTag": {"name": "team", "value": "infra"}}
    assert client.patch(f"{tags}/owner", change, format="json").json()["name"] == "team"
    assert client.get(f"{tags}/team").json()["value"] == "infra"
    assert client.delete(f"{tags}/team").status_code == 204
    assert client.get(tags).json() == {"tags": {}, "nextToken": ""}


def test_open_and_read_values_and_single_properties(client: APIClient, org: Organization) -> None:
    make_environment(org, text=SDK_YAML)
    response = client.post(f"{ENV}/open", query_params={"duration": "2h0m0s"})
    assert response["Cache-Control"] == "no-store"
    session = response.json()["id"]
    read = client.get(f"{ENV}/open/{session}")
    properties = read.json()["properties"]
    assert read["Cache-Control"] == "no-store"
    assert properties["password"]["value"] == "correct-horse-battery-staple"
    assert properties["password"]["secret"] is True
    assert properties["dsn"]["secret"] is True
    assert properties["greeting"] == {
        "value": "hello from web",
        "secret": False,
        "trace": {
            "def": {
                "environment": "app/dev",
                "begin": {"line": 5, "column": 13, "byte": 62},
                "end": {"line": 5, "column": 35, "byte": 84},
            }
        },
    }
    ports = properties["app"]["value"]["ports"]["value"]
    assert [p["value"] for p in ports] == [80, 443]
    one = client.get(f"{ENV}/open/{session}", {"property": "app.ports[0]"}).json()
    assert one["value"] == 80
    # pulumi-esc-sdk asks for a property at `open//{id}`.
    assert client.get(f"{ENV}/open//{session}", {"property": "app.name"}).json()["value"] == "web"
    assert client.get(f"{ENV}/open/{session}", {"property": "nope"}).status_code == 404
    assert client.get(f"{ENV}/open/{session}", {"property": "a..b"}).status_code == 400
    assert client.get(f"{ENV}/open/not-a-session").status_code == 404
    event = AccessEvent.objects.get()
    assert event.kind == "open" and event.revision == 2 and event.session_hash != session
    assert session not in str(AccessEvent.objects.values_list())


def test_open_sessions_expire_and_pin_revisions(client: APIClient, org: Organization) -> None:
    make_environment(org, "shared", "base", "values: {region: eu}\n")
    make_environment(org, text="imports: [shared/base]\nvalues: {where: '${region}'}\n")
    session = client.post(f"{ENV}/open", query_params={"duration": "30m"}).json()["id"]
    shared = f"{BASE}/shared/base"
    assert client.generic("PATCH", shared, b"values: {region: us}\n").status_code == 200
    pinned = client.get(f"{ENV}/open/{session}").json()["properties"]["where"]["value"]
    assert pinned == "eu"  # the session reads what was opened, not what changed since
    assert opened(client)["properties"]["where"]["value"] == "us"
    event = AccessEvent.objects.order_by("id").first()
    assert event is not None and event.imports == {"shared/base": 2}
    assert event.expires is not None and event.expires - event.created == timedelta(minutes=30)
    with time_machine.travel(timezone.now() + timedelta(minutes=31), tick=False):
        assert client.get(f"{ENV}/open/{session}").status_code == 404


@pytest.mark.parametrize(
    ("duration", "status"), [("1h", 200), ("90s", 200), ("3600", 200), ("1x", 400), ("0s", 400)]
)
def test_open_durations(client: APIClient, org: Organization, duration: str, status: int) -> None:
    make_environment(org, text="values: {a: 1}\n")
    assert client.post(f"{ENV}/open", query_params={"duration": duration}).status_code == status


def test_open_never_outlives_the_token_nor_a_day(org: Organization) -> None:
    make_environment(org, text="values: {a: 1}\n")
    short = make_token(
        "organization",
        organization=org,
        permission="admin",
        expires=timezone.now() + timedelta(minutes=5),
    )
    client = auth(APIClient(), short)
    assert client.post(f"{ENV}/open", query_params={"duration": "72h"}).status_code == 200
    event = AccessEvent.objects.get()
    assert event.expires is not None
    assert event.expires - event.created <= timedelta(minutes=5)
    long_lived = auth(APIClient(), make_token("organization", organization=org, permission="admin"))
    long_lived.post(f"{ENV}/open", query_params={"duration": "72h"})
    latest = AccessEvent.objects.order_by("-id").first()
    assert latest is not None and latest.expires is not None
    assert latest.expires - latest.created == timedelta(hours=24)


def test_open_at_a_version(client: APIClient, org: Organization) -> None:
    make_environment(org, text="values: {a: 1}\n")
    patch_yaml(client, "values: {a: 2}\n")
    assert opened(client, f"{ENV}/versions/2")["properties"]["a"]["value"] == 1
    assert opened(client)["properties"]["a"]["value"] == 2


@pytest.mark.parametrize(
    ("definition", "summary"),
    [
        ("values:\n  a: [1, 2\n", "expected ',' or ']'"),
        ("values:\n  a: ${nope}\n", 'unknown property "nope"'),
        ("imports: [app/dev]\n", "import cycle: app/dev -> app/dev"),
        ("imports: [app/other]\n", 'cannot import "app/other": environment not found'),
        ("values:\n  a: {fn::secret: {ciphertext: v1.00000000.AAAA}}\n", "cannot decrypt"),
        ("a: \x00", "invalid YAML: character U+0000 is not allowed"),
        ("values: {a: !Ref b}\n", "unsupported YAML tag !Ref"),
    ],
)
def test_bad_definitions_get_diagnostics_never_500(
    client: APIClient, org: Organization, definition: str, summary: str
) -> None:
    make_environment(org)
    response = patch_yaml(client, definition)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == 400 and body["message"].startswith("The environment definition has")
    assert summary in body["diagnostics"][0]["summary"]
    assert Environment.objects.get().revision == 1  # nothing saved


def test_import_cycles_made_across_saves_show_up_when_opening(
    client: APIClient, org: Organization
) -> None:
    make_environment(org, "p", "a", "values: {a: 1}\n")
    make_environment(org, "p", "b", "imports: [p/a]\nvalues: {b: 1}\n")
    # p/a may not import p/b now (that is a cycle)…
    cycle = client.generic("PATCH", f"{BASE}/p/a", b"imports: [p/b]\n")
    assert cycle.status_code == 400
    assert cycle.json()["diagnostics"][0]["summary"] == "import cycle: p/a -> p/b -> p/a"


def test_body_limits_and_encoding(client: APIClient, org: Organization) -> None:
    make_environment(org)
    huge = b"values: {a: '" + b"x" * 300_000 + b"'}\n"
    assert client.generic("PATCH", ENV, huge).status_code == 400
    assert client.generic("PATCH", ENV, b"values: {a: '\xff'}").status_code == 400


def test_check_endpoint(client: APIClient, org: Organization) -> None:
    make_environment(org, "shared", "base", "values: {region: eu, key: {fn::secret: k}}\n")
    draft = b"imports: [shared/base]\nvalues: {where: '${region}', pw: {fn::secret: x}}\n"
    ok = client.post(f"{BASE}/yaml/check", draft, content_type="application/x-yaml")
    assert ok.status_code == 200
    properties = ok.json()["properties"]
    assert properties["where"]["value"] == "eu"
    assert properties["pw"] == {
        "value": "[secret]",
        "secret": True,
        "trace": properties["pw"]["trace"],
    }
    assert properties["key"]["value"] == "[secret]"
    bad = client.post(
        f"{BASE}/yaml/check", b"values: {a: '${b}'}", content_type="application/x-yaml"
    )
    assert bad.status_code == 400
    assert bad.json()["diagnostics"][0]["summary"] == 'unknown property "b"'
    assert not AccessEvent.objects.exists()
    assert client.post(BASE, {"project": "yaml", "name": "check"}, format="json").status_code == 400


def test_decrypt_is_recorded(client: APIClient, org: Organization) -> None:
    make_environment(org, text=SDK_YAML)
    response = client.get(f"{ENV}/decrypt")
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    assert 'fn::secret: "correct-horse-battery-staple"' in response.content.decode()
    event = AccessEvent.objects.get()
    assert event.kind == "decrypt" and event.session_hash is None and event.login == "acme-bot"
    assert client.get(f"{ENV}/versions/1/decrypt").content == b""


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"project": "app"}, 400),
        ({"project": "app", "name": "a/b"}, 400),
        ({"project": "..", "name": "dev"}, 400),
        ({"project": "app", "name": "x" * 101}, 400),
        ({"project": 5, "name": "dev"}, 400),
        (["not", "an", "object"], 400),
    ],
)
def test_create_validation(client: APIClient, body: Any, status: int) -> None:
    response = client.post(BASE, body, format="json")
    assert response.status_code == status
    assert set(response.json()) == {"code", "message"}


def test_paging_with_continuation_tokens(
    client: APIClient, org: Organization, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = timezone.now()
    Environment.objects.bulk_create(
        Environment(
            organization=org, project=f"p{i // 10}", name=f"e{i:03}", created=now, modified=now
        )
        for i in range(api.PAGE_SIZE + 5)
    )
    first = client.get(BASE).json()
    assert len(first["environments"]) == api.PAGE_SIZE and first["nextToken"]
    second = client.get(BASE, {"continuationToken": first["nextToken"]}).json()
    assert len(second["environments"]) == 5 and second["nextToken"] == ""
    names = [(e["project"], e["name"]) for e in first["environments"] + second["environments"]]
    assert names == sorted(names) and len(set(names)) == api.PAGE_SIZE + 5
    assert client.get(BASE, {"continuationToken": "%%%"}).status_code == 400
    assert client.get(BASE, {"continuationToken": "WzFd"}).status_code == 400
    surrogate = base64.urlsafe_b64encode(b'["\\ud800", "a", "b"]').decode()
    assert client.get(BASE, {"continuationToken": surrogate}).status_code == 400


def test_listing_across_all_organizations_of_a_user(org: Organization) -> None:
    other = OrganizationFactory(login="other")
    elsewhere = OrganizationFactory(login="elsewhere")
    user = UserFactory(username="carol")
    MembershipFactory(organization=org, user=user, role=Role.ADMIN)
    MembershipFactory(organization=other, user=user, role=Role.AUDITOR)
    make_environment(org, "app", "dev")
    make_environment(other, "web", "prod")
    make_environment(elsewhere, "secret", "stuff")
    client = auth(APIClient(), make_token("personal", user=user))
    listed = client.get("/api/esc/environments").json()["environments"]
    assert [(e["organization"], e["project"], e["name"]) for e in listed] == [
        ("acme", "app", "dev"),
        ("other", "web", "prod"),
    ]
    only_other = client.get("/api/esc/environments", {"organization": "other"}).json()
    assert [e["organization"] for e in only_other["environments"]] == ["other"]


def test_pulumi_accept_headers_are_answered_in_json(client: APIClient, org: Organization) -> None:
    make_environment(org)
    response = client.get(BASE, HTTP_ACCEPT="application/vnd.pulumi+8")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert client.get(ENV, HTTP_ACCEPT="application/vnd.pulumi+8").status_code == 200


def test_unauthenticated_calls_are_401(org: Organization) -> None:
    response = APIClient().get(BASE)
    assert response.status_code == 401 and set(response.json()) == {"code", "message"}


def test_open_records_the_exchange_event(
    api_client: APIClient,
    org: Organization,
    local_issuer: Any,
    outbound: Any,
    allow_local_issuers: None,
) -> None:
    trust_local_issuer(org, local_issuer, outbound)
    make_environment(org, text="values: {a: 1}\n")
    token = exchange(api_client, local_issuer, scope="admin")
    client = auth(APIClient(), token)
    assert opened(client)["properties"]["a"]["value"] == 1
    event = AccessEvent.objects.get()
    assert event.exchange_event is not None and event.exchange_event.token_id == event.token_id
    assert event.token_type == "organization" and event.request_id


@pytest.mark.parametrize(
    "definition",
    [
        b'values: {a: "\\ud800"}\n',
        b'values: {"\\udfff": 1}\n',
        b'values: {pw: {fn::secret: "\\ud800"}}\n',
    ],
)
def test_lone_surrogate_escapes_are_diagnostics_not_500(
    client: APIClient, org: Organization, definition: bytes
) -> None:
    make_environment(org)
    response = client.generic("PATCH", ENV, definition)
    assert response.status_code == 400
    summary = response.json()["diagnostics"][0]["summary"]
    # libyaml refuses the escape itself; the pure-Python parser leaves it to evaluation.py.
    assert summary in (
        "a lone UTF-16 surrogate escape is not valid text",
        "invalid YAML: found invalid Unicode character escape code (while parsing a quoted scalar)",
    )


@pytest.mark.parametrize("value", ["nul\u0000byte", "\ud800", "line\nbreak"])
def test_tag_values_must_be_printable(client: APIClient, org: Organization, value: str) -> None:
    make_environment(org)
    body = json.dumps({"name": "owner", "value": value})
    response = client.post(f"{ENV}/tags", body, content_type="application/json")
    assert response.status_code == 400
