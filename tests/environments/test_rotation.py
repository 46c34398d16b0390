"""Rotation (`fn::rotate`, `POST …/rotate`) and schema checks of provider and rotator inputs.

The rotators are Pulumi's test rotators (`swap`, `echo`: tests/environments/esc_rotators.py),
registered for these tests only; the product registers none.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from rest_framework.test import APIClient

from audit.models import AuditEvent
from environments import grants, rotators, selectors
from environments.models import Environment, Level
from tests.conftest import auth
from tests.environments.conftest import make_environment
from tests.environments.esc_rotators import REGISTRY
from tests.factories import OrganizationFactory, TeamFactory, make_token
from trustportal.models import Organization

pytestmark = pytest.mark.django_db

ENV = "/api/esc/environments/acme/app/dev"
SWAP = """\
values:
  # the database password, rotated by swap
  db:
    fn::rotate::swap:
      inputs: {}
      state:
        a: first-password
        b: second-password
  other:
    fn::rotate: {provider: echo, inputs: {next: "${plain}"}}
  plain: next-value
"""


@pytest.fixture(autouse=True)
def test_rotators(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rotators, "ROTATORS", REGISTRY)


def rotate(client: APIClient, body: Any = None, path: str = ENV) -> Any:
    data = json.dumps(body) if body is not None else ""
    return client.post(f"{path}/rotate", data, content_type="application/json")


def opened(client: APIClient) -> dict[str, Any]:
    session = client.post(f"{ENV}/open").json()["id"]
    properties: dict[str, Any] = client.get(f"{ENV}/open/{session}").json()["properties"]
    return properties


@pytest.fixture
def client(org: Organization, admin_token: str) -> APIClient:
    return auth(APIClient(), admin_token)


def test_rotating_writes_the_new_state_sealed_as_the_next_revision(
    client: APIClient, org: Organization
) -> None:
    environment = make_environment(org, text=SWAP)
    before = opened(client)
    assert before["db"]["value"]["a"] == {
        "value": "first-password",
        "secret": True,
        "trace": {"def": before["db"]["value"]["a"]["trace"]["def"]},
    }
    assert "previous" not in json.dumps(before["other"])  # no state yet: {}

    answer = rotate(client)

    assert answer.status_code == 200, answer.json()
    event = answer.json()["secretRotationEvent"]
    assert event["status"] == "succeeded"
    assert (event["preRotationRevision"], event["postRotationRevision"]) == (2, 3)
    assert sorted(r["environmentPath"] for r in event["rotations"]) == ["db", "other"]
    environment.refresh_from_db()
    stored = selectors.revision_numbered(environment, 3)
    assert stored is not None
    assert "# the database password, rotated by swap" in stored.definition
    for plaintext in ("first-password", "second-password"):
        assert plaintext not in stored.definition  # sealed: only ciphertexts are stored
    after = opened(client)
    db = {k: (v["value"], v["secret"]) for k, v in after["db"]["value"].items()}
    assert db == {"a": ("second-password", True), "b": ("first-password", True)}
    other = {k: v["value"] for k, v in after["other"]["value"].items()}
    assert other == {"current": "next-value"}

    record = AuditEvent.objects.get(event="environment-rotated")
    assert "first-password" not in json.dumps(record.changes) + record.description
    assert "db" in record.description and "revision 3" in record.description


def test_rotating_chosen_paths_only(client: APIClient, org: Organization) -> None:
    environment = make_environment(org, text=SWAP)
    answer = rotate(client, {"paths": ["db"]})
    assert answer.status_code == 200, answer.json()
    assert [r["environmentPath"] for r in answer.json()["secretRotationEvent"]["rotations"]] == [
        "db"
    ]
    assert "previous" not in json.dumps(opened(client)["other"])
    missing = rotate(client, {"paths": ["nothing.here"]})
    assert missing.status_code == 400 and "nothing.here" in missing.json()["message"]
    assert rotate(client, {"paths": "db"}).status_code == 400
    assert rotate(client, {"paths": ["a..b"]}).status_code == 400
    environment.refresh_from_db()
    assert environment.revision == 3  # the refused rotations wrote nothing


def test_a_definition_without_rotations_answers_an_empty_event(
    client: APIClient, org: Organization
) -> None:
    environment = make_environment(org, text="values: {a: 1}\n")
    answer = rotate(client)
    assert answer.status_code == 200
    event = answer.json()["secretRotationEvent"]
    assert event["rotations"] == [] and "postRotationRevision" not in event
    environment.refresh_from_db()
    assert environment.revision == 2


def test_a_failing_rotator_is_a_diagnostic_and_writes_nothing(
    client: APIClient, org: Organization
) -> None:
    environment = make_environment(
        org, text="values:\n  x:\n    fn::rotate::swap:\n      inputs: {}\n"
    )
    answer = rotate(client)
    assert answer.status_code == 400
    (diagnostic,) = answer.json()["diagnostics"]
    assert diagnostic["summary"] == "fn::rotate::swap: swap needs a state {a, b}"
    environment.refresh_from_db()
    assert environment.revision == 2


@pytest.mark.parametrize(
    ("level", "status"),
    [(Level.READ, 403), (Level.OPEN, 403), (Level.WRITE, 200), (Level.ADMIN, 200)],
)
def test_rotating_needs_write(org: Organization, level: str, status: int) -> None:
    environment: Environment = make_environment(org, text=SWAP)
    team = TeamFactory(organization=org, name=f"team-{level}")
    grants.grant_set(environment=environment, permission=level, team=team)
    client = auth(APIClient(), make_token("team", team=team))
    assert rotate(client).status_code == status
    environment.refresh_from_db()
    assert environment.revision == (3 if status == 200 else 2)


def test_another_organization_cannot_rotate(org: Organization) -> None:
    environment = make_environment(org, text=SWAP)
    other = OrganizationFactory(login="other")
    stranger = auth(APIClient(), make_token("organization", organization=other, permission="admin"))
    assert rotate(stranger).status_code == 404
    make_environment(other, text=SWAP)
    assert rotate(stranger, path="/api/esc/environments/other/app/dev").status_code == 200
    environment.refresh_from_db()
    assert environment.revision == 2


def test_rotator_state_and_provider_inputs_are_checked_on_save(
    client: APIClient, org: Organization
) -> None:
    make_environment(org)
    saved = client.generic(
        "PATCH",
        ENV,
        b"values:\n  x:\n    fn::rotate::echo:\n      inputs: {next: n}\n"
        b"      state: {previous: p}\n  y:\n    fn::open::oidc: {audience: 5}\n",
        content_type="application/x-yaml",
    )
    assert saved.status_code == 400
    found = {(d["path"], d["summary"]) for d in saved.json()["diagnostics"]}
    assert found == {
        ('values.x["fn::rotate::echo"].state', "missing required properties: current"),
        ('values.y["fn::open::oidc"].audience', "expected string, got number"),
    }


def test_rotate_only_inputs_are_evaluated_when_checking(
    client: APIClient, org: Organization
) -> None:
    """Pulumi's `inline-reference-rotateOnly` rule: a check evaluates rotate-only inputs."""
    text = (
        "values:\n  x:\n    fn::rotate::echo:\n"
        "      inputs: {next: '${environments.app.missing.v}'}\n      state: {current: c}\n"
    )
    make_environment(org)
    saved = client.generic("PATCH", ENV, text.encode(), content_type="application/x-yaml")
    assert saved.status_code == 400
    (diagnostic,) = saved.json()["diagnostics"]
    assert diagnostic["path"] == 'values.x["fn::rotate::echo"].inputs.next'
