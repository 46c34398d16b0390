"""Who may do what (environments/access.py, docs/environments.md), through the API.

Every caller kind against every operation: allowed, or refused with 404 (no access at all,
so the environment's existence is not confirmed) or 403 (some access, not enough), always in
the `{"code","message"}` shape.
"""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from environments import grants
from environments.models import Environment, Level
from kernel.errors import NotFound
from tests.conftest import auth
from tests.environments.conftest import make_environment
from tests.factories import (
    MembershipFactory,
    OrganizationFactory,
    RunnerFactory,
    TeamFactory,
    UserFactory,
    make_token,
)
from trustportal.models import Organization, Role

pytestmark = pytest.mark.django_db

ENV = "/api/esc/environments/acme/app/dev"
DEFINITION = "values:\n  a: 1\n  pw: {fn::secret: hunter2}\n"

# caller → the level it should hold on app/dev (None: no access at all)
CALLERS: dict[str, str | None] = {
    "org token, admin": Level.ADMIN,
    "org token, standard": Level.WRITE,  # the organization's default permission (write)
    "org token, unknown role": None,
    "team token, read grant": Level.READ,
    "team token, open grant": Level.OPEN,
    "team token, write grant": Level.WRITE,
    "team token, admin grant": Level.ADMIN,
    "team token, no grant": None,
    "personal token, org admin": Level.ADMIN,
    "personal token, auditor": Level.READ,
    "personal token, member of the write team": Level.WRITE,
    "personal token, member in no team": Level.WRITE,  # the default permission
    "runner token, admin grant (capped)": Level.OPEN,
    "runner token, no grant": None,
    "other org's admin token": None,
    "personal token, not a member": None,
}

# operation → the level it needs
OPERATIONS: dict[str, str] = {
    "get definition": Level.READ,
    "list revisions": Level.READ,
    "list tags": Level.READ,
    "open": Level.OPEN,
    "update": Level.WRITE,
    "tag a revision": Level.WRITE,
    "decrypt": Level.ADMIN,
    "delete": Level.ADMIN,
}

RANK: dict[str, int] = {Level.READ: 1, Level.OPEN: 2, Level.WRITE: 3, Level.ADMIN: 4}


def grant(environment: Environment, level: str, **owner: Any) -> None:
    grants.grant_set(environment=environment, permission=level, **owner)


@pytest.fixture
def tokens(org: Organization) -> dict[str, str]:
    """A token for every caller kind; app/dev granted to some teams and a runner."""
    dev = make_environment(org, "app", "dev", DEFINITION)
    make_environment(org, "app", "other", "values: {b: 2}\n")
    teams = {level: TeamFactory(organization=org, name=f"team-{level}") for level in Level.values}
    for level, team in teams.items():
        grant(dev, level, team=team)
    no_grant_team = TeamFactory(organization=org, name="bystanders")
    runner = RunnerFactory(organization=org, name="deployer")
    grant(dev, Level.ADMIN, runner=runner)

    def member(username: str, role: str, team: Any = None) -> str:
        user = UserFactory(username=username)
        MembershipFactory(organization=org, user=user, role=role)
        if team is not None:
            team.members.add(user)
        return make_token("personal", user=user)

    other = OrganizationFactory(login="other")
    return {
        "org token, admin": make_token("organization", organization=org, permission="admin"),
        "org token, standard": make_token("organization", organization=org, permission="standard"),
        "org token, unknown role": make_token("organization", organization=org, permission="ro-7"),
        "team token, read grant": make_token("team", team=teams[Level.READ]),
        "team token, open grant": make_token("team", team=teams[Level.OPEN]),
        "team token, write grant": make_token("team", team=teams[Level.WRITE]),
        "team token, admin grant": make_token("team", team=teams[Level.ADMIN]),
        "team token, no grant": make_token("team", team=no_grant_team),
        "personal token, org admin": member("alice", Role.ADMIN),
        "personal token, auditor": member("audrey", Role.AUDITOR),
        "personal token, member of the write team": member("wes", Role.MEMBER, teams[Level.WRITE]),
        "personal token, member in no team": member("mallory", Role.MEMBER, no_grant_team),
        "runner token, admin grant (capped)": make_token("runner", runner=runner),
        "runner token, no grant": make_token(
            "runner", runner=RunnerFactory(organization=org, name="idle")
        ),
        "other org's admin token": make_token(
            "organization", organization=other, permission="admin"
        ),
        "personal token, not a member": make_token("personal", user=UserFactory(username="olivia")),
    }


def call(client: APIClient, operation: str) -> Any:
    if operation == "get definition":
        return client.get(ENV)
    if operation == "list revisions":
        return client.get(f"{ENV}/versions")
    if operation == "list tags":
        return client.get(f"{ENV}/tags")
    if operation == "open":
        return client.post(f"{ENV}/open")
    if operation == "update":
        return client.generic("PATCH", ENV, b"values: {a: 2}\n")
    if operation == "tag a revision":
        return client.post(f"{ENV}/versions/tags", {"name": "v1", "revision": 1}, format="json")
    if operation == "decrypt":
        return client.get(f"{ENV}/decrypt")
    if operation == "delete":
        return client.delete(ENV)
    raise AssertionError(operation)


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("caller", CALLERS)
def test_permission_matrix(tokens: dict[str, str], caller: str, operation: str) -> None:
    held, needed = CALLERS[caller], OPERATIONS[operation]
    response = call(auth(APIClient(), tokens[caller]), operation)
    if held is None:
        assert response.status_code == 404, response.content
        assert response.json()["code"] == 404 and set(response.json()) == {"code", "message"}
        assert "hunter2" not in response.content.decode()
    elif RANK[held] < RANK[needed]:
        assert response.status_code == 403, response.content
        assert response.json() == {
            "code": 403,
            "message": f"This needs `{needed}` permission on the environment; you have `{held}`.",
        }
    else:
        assert response.status_code in (200, 204), response.content


@pytest.mark.parametrize(
    ("caller", "visible"),
    [
        ("org token, admin", ["dev", "other"]),
        ("org token, standard", ["dev", "other"]),
        ("org token, unknown role", []),
        ("team token, read grant", ["dev"]),
        ("team token, no grant", []),
        ("personal token, auditor", ["dev", "other"]),
        ("personal token, member of the write team", ["dev", "other"]),  # default: write
        ("personal token, member in no team", ["dev", "other"]),
        ("runner token, admin grant (capped)", ["dev"]),
        ("runner token, no grant", []),
    ],
)
def test_listing_shows_only_readable_environments(
    tokens: dict[str, str], caller: str, visible: list[str]
) -> None:
    client = auth(APIClient(), tokens[caller])
    listed = client.get("/api/esc/environments/acme").json()["environments"]
    assert [e["name"] for e in listed] == visible
    everywhere = client.get("/api/esc/environments").json()["environments"]
    assert [e["name"] for e in everywhere] == visible


@pytest.mark.parametrize("caller", ["other org's admin token", "personal token, not a member"])
def test_other_organizations_are_invisible(tokens: dict[str, str], caller: str) -> None:
    client = auth(APIClient(), tokens[caller])
    response = client.get("/api/esc/environments/acme")
    assert response.status_code == 404
    assert response.json() == {"code": 404, "message": "Organization 'acme' not found."}
    assert client.get("/api/esc/environments").json()["environments"] == []


@pytest.mark.parametrize(
    ("caller", "status"),
    [
        ("org token, admin", 200),
        ("personal token, org admin", 200),
        ("org token, standard", 200),  # members may create, and the default is write
        ("team token, admin grant", 403),
        ("personal token, auditor", 403),
        ("runner token, admin grant (capped)", 403),
        ("other org's admin token", 404),
    ],
)
def test_only_organization_admins_create(tokens: dict[str, str], caller: str, status: int) -> None:
    client = auth(APIClient(), tokens[caller])
    response = client.post(
        "/api/esc/environments/acme", {"project": "new", "name": "env"}, format="json"
    )
    assert response.status_code == status


def test_importing_needs_open_permission_on_the_import(
    tokens: dict[str, str], org: Organization
) -> None:
    """A writer cannot read another environment's secrets by importing it."""
    secrets_env = make_environment(org, "vault", "keys", "values: {key: {fn::secret: s3cret}}\n")
    writer = auth(APIClient(), tokens["team token, write grant"])
    draft = b"imports: [vault/keys]\nvalues: {leak: '${key}'}\n"

    hidden = writer.generic("PATCH", ENV, draft)
    assert hidden.status_code == 400
    assert hidden.json()["diagnostics"][0]["summary"] == (
        'cannot import "vault/keys": environment not found'
    )

    team = Environment.objects.get(name="dev").grants.get(permission=Level.WRITE).team
    grants.grant_set(environment=secrets_env, team=team, permission=Level.READ)
    readable = writer.generic("PATCH", ENV, draft)
    assert readable.json()["diagnostics"][0]["summary"] == (
        'cannot import "vault/keys": importing it needs `open` permission on it'
    )

    grants.grant_set(environment=secrets_env, team=team, permission=Level.OPEN)
    assert writer.generic("PATCH", ENV, draft).status_code == 200
    # An opener without `open` on the import cannot open the importer either.
    opener = auth(APIClient(), tokens["team token, open grant"])
    refused = opener.post(f"{ENV}/open")
    assert refused.status_code == 400
    assert refused.json()["diagnostics"][0]["summary"] == (
        'cannot import "vault/keys": environment not found'
    )


def test_losing_access_ends_open_sessions(tokens: dict[str, str], org: Organization) -> None:
    client = auth(APIClient(), tokens["team token, open grant"])
    session = client.post(f"{ENV}/open").json()["id"]
    assert client.get(f"{ENV}/open/{session}").status_code == 200
    dev = Environment.objects.get(name="dev")
    team = dev.grants.get(permission=Level.OPEN).team
    grants.grant_set(environment=dev, team=team, permission=Level.READ)
    assert client.get(f"{ENV}/open/{session}").status_code == 403


def test_sessions_belong_to_their_environment(tokens: dict[str, str], org: Organization) -> None:
    client = auth(APIClient(), tokens["org token, admin"])
    session = client.post(f"{ENV}/open").json()["id"]
    other = "/api/esc/environments/acme/app/other"
    assert client.get(f"{other}/open/{session}").status_code == 404


def test_grants_only_for_teams_of_the_same_organization(org: Organization) -> None:
    dev = make_environment(org)
    stranger = TeamFactory(organization=OrganizationFactory(login="zeta"), name="intruders")
    with pytest.raises(NotFound):
        grants.grant_set(environment=dev, team=stranger, permission=Level.ADMIN)
    assert not dev.grants.exists()
