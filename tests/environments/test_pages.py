"""Environment pages: list and create, the editor with diagnostics, history with diff, grants."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from environments import definitions, grants, opens
from environments.access import Actor
from environments.definitions import environment_seed_demo
from environments.models import Environment, Grant, Level
from tests.environments.conftest import make_environment
from tests.factories import PASSWORD, MembershipFactory, UserFactory, pass_second_factor
from trustportal.models import Organization, Role, Runner, Team

pytestmark = pytest.mark.django_db

SECRET = "page-secret-9f8e7d"
DEFINITION = f"""\
# comment kept
values:
  app: {{name: web}}
  greeting: hi ${{app.name}}
  token:
    fn::secret: {SECRET}
"""


@pytest.fixture(autouse=True)
def _fast_passwords(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def world(org: Organization) -> dict[str, Any]:
    # Members hold nothing by default here, so the pages show what team grants give.
    grants.environment_settings_update(
        organization=org, default_permission="none", members_can_create=False
    )
    environment = make_environment(org, "app", "dev", DEFINITION)
    make_environment(org, "app", "hidden", "values: {x: 1}\n")
    readers = Team.objects.create(organization=org, name="readers")
    writers = Team.objects.create(organization=org, name="writers")
    grants.grant_set(environment=environment, team=readers, permission=Level.READ)
    grants.grant_set(environment=environment, team=writers, permission=Level.WRITE)
    for username, role, team in [
        ("alice", Role.ADMIN, None),
        ("rita", Role.MEMBER, readers),
        ("walt", Role.MEMBER, writers),
        ("nora", Role.MEMBER, None),
        ("audrey", Role.AUDITOR, None),
    ]:
        user = UserFactory(username=username)
        MembershipFactory(organization=org, user=user, role=role)
        if team is not None:
            team.members.add(user)
    UserFactory(username="olivia")
    return {"environment": environment, "readers": readers, "writers": writers}


def signed_in(username: str) -> Client:
    client = Client()
    assert client.login(username=username, password=PASSWORD)
    return client


def url(view: str, **kwargs: str) -> str:
    kwargs.setdefault("org", "acme")
    if view not in ("list", "new"):
        kwargs.setdefault("project", "app")
        kwargs.setdefault("name", "dev")
    return reverse(f"environments:{view}", kwargs=kwargs)


def text(response: Any) -> str:
    return str(response.content.decode())


def no_inline_code(html: str) -> None:
    """Strict CSP: no inline scripts, no style attributes or blocks."""
    assert "<script" not in html
    assert not re.search(r"\sstyle\s*=", html)
    assert "<style" not in html
    assert re.search(r"\son[a-z]+\s*=", html) is None


# --- list and create ----------------------------------------------------------------------------
@pytest.mark.usefixtures("world")
@pytest.mark.parametrize(
    ("username", "visible", "can_create"),
    [
        ("alice", ["dev", "hidden"], True),
        ("audrey", ["dev", "hidden"], False),
        ("rita", ["dev"], False),
        ("nora", [], False),
    ],
)
def test_list_shows_what_the_user_may_read(
    username: str, visible: list[str], can_create: bool
) -> None:
    response = signed_in(username).get(url("list"))
    assert response.status_code == 200
    html = text(response)
    no_inline_code(html)
    shown = re.findall(r'/orgs/acme/environments/app/([a-z]+)/"', html)
    assert shown == visible
    assert ("New environment" in html) is can_create
    assert 'href="/static/trustportal/environments.css"' in html


@pytest.mark.usefixtures("world")
def test_list_is_hidden_from_outsiders_and_anonymous_users() -> None:
    assert signed_in("olivia").get(url("list")).status_code == 404
    anonymous = Client().get(url("list"))
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/login/")


@pytest.mark.usefixtures("world")
def test_admins_create_environments() -> None:
    created = signed_in("alice").post(url("new"), {"project": "web", "name": "prod"})
    assert created.status_code == 302
    assert created["Location"] == url("detail", project="web", name="prod")
    environment = Environment.objects.get(project="web", name="prod")
    assert environment.revision == 1 and environment.created_by is not None
    duplicate = signed_in("alice").post(url("new"), {"project": "web", "name": "prod"})
    assert duplicate.status_code == 400 and "already exists" in text(duplicate)
    bad = signed_in("alice").post(url("new"), {"project": "web", "name": "a b"})
    assert bad.status_code == 400 and "letters, digits" in text(bad)
    assert signed_in("walt").post(url("new"), {"project": "x", "name": "y"}).status_code == 403


# --- the editor ---------------------------------------------------------------------------------
@pytest.mark.usefixtures("world")
def test_editor_shows_the_sealed_definition_and_a_masked_preview() -> None:
    response = signed_in("alice").get(url("detail"))
    assert response.status_code == 200
    html = text(response)
    no_inline_code(html)
    assert SECRET not in html
    assert "fn::secret: {ciphertext: v1." in html and "# comment kept" in html
    assert "hi web" in html  # resolved preview
    assert "Save as revision 3" in html
    assert "Delete this environment" in html and "Recent opens" not in html


@pytest.mark.usefixtures("world")
def test_readers_see_the_definition_but_neither_preview_nor_save() -> None:
    html = text(signed_in("rita").get(url("detail")))
    assert "fn::secret: {ciphertext: v1." in html
    assert "Resolved values" not in html and "Save as revision" not in html
    refused = signed_in("rita").post(
        url("detail"), {"definition": "values: {}", "base_revision": 2, "action": "save"}
    )
    assert refused.status_code == 403
    assert Environment.objects.get(name="dev").revision == 2


@pytest.mark.usefixtures("world")
def test_check_shows_diagnostics_with_line_and_column_and_saves_nothing() -> None:
    draft = "values:\n  a: ${missing}\n  b: [1, 2\n"
    response = signed_in("walt").post(
        url("detail"), {"definition": draft, "base_revision": 2, "action": "check"}
    )
    assert response.status_code == 400
    assert response["Cache-Control"] == "no-store"
    html = text(response)
    no_inline_code(html)
    assert "1 problem" in html and "4:1" in html and "invalid YAML" in html
    assert '<li class="bad"><span class="num">4</span>' in html
    cleanly = signed_in("walt").post(
        url("detail"),
        {"definition": "values:\n  a: ${b}\n  b: 1\n", "action": "check", "base_revision": 2},
    )
    assert cleanly.status_code == 200 and "evaluates cleanly" in text(cleanly)
    assert Environment.objects.get(name="dev").revision == 2


@pytest.mark.usefixtures("world")
def test_saving_makes_a_revision_or_explains_why_not() -> None:
    walt = signed_in("walt")
    invalid = walt.post(
        url("detail"),
        {"definition": "values: {a: '${nope}'}", "base_revision": 2, "action": "save"},
    )
    assert invalid.status_code == 400 and "unknown property &quot;nope&quot;" in text(invalid)
    saved = walt.post(
        url("detail"),
        {
            "definition": "values:\n  pw: {fn::secret: new-one}\n",
            "base_revision": 2,
            "action": "save",
        },
    )
    assert saved.status_code == 302
    environment = Environment.objects.get(name="dev")
    assert environment.revision == 3
    latest = environment.revisions.get(number=3)
    assert latest.creator_login == "walt" and "new-one" not in latest.definition
    stale = walt.post(
        url("detail"), {"definition": "values: {}", "base_revision": 2, "action": "save"}
    )
    assert stale.status_code == 400 and "is at revision 3, not 2" in text(stale)


@pytest.mark.usefixtures("world")
def test_auditors_see_the_open_record() -> None:
    environment = Environment.objects.get(name="dev")
    actor = Actor(environment.organization, Level.ADMIN, login="ci-bot")
    revision = environment.revisions.get(number=2)
    opens.environment_open(environment=environment, revision=revision, actor=actor)
    html = text(signed_in("audrey").get(url("detail")))
    assert "Recent opens" in html and "ci-bot" in html


# --- history ------------------------------------------------------------------------------------
@pytest.mark.usefixtures("world")
def test_revision_history_with_diff() -> None:
    environment = Environment.objects.get(name="dev")
    definitions.environment_update(
        environment=environment,
        text=DEFINITION.replace("hi ${app.name}", "hello ${app.name}"),
        actor=Actor(environment.organization, Level.ADMIN, login="bob", display_name="Bob"),
    )
    response = signed_in("rita").get(url("revisions"))
    assert response.status_code == 200
    html = text(response)
    no_inline_code(html)
    assert '<span class="del">-  greeting: hi ${app.name}</span>' in html
    assert '<span class="add">+  greeting: hello ${app.name}</span>' in html
    assert "Bob" in html and SECRET not in html
    first = text(signed_in("rita").get(url("revisions"), {"from": 1, "to": 2}))
    assert '<span class="add">+# comment kept</span>' in first


# --- permissions --------------------------------------------------------------------------------
@pytest.mark.usefixtures("world")
def test_permissions_page_lists_and_admins_change_grants(org: Organization) -> None:
    html = text(signed_in("rita").get(url("permissions")))
    no_inline_code(html)
    assert 'team <span class="mono">readers</span>' in html and "Grant or change access" not in html
    assert signed_in("rita").post(url("permissions"), {}).status_code == 403

    runner = Runner.objects.create(organization=org, name="deployer")
    alice = signed_in("alice")
    added = alice.post(
        url("permissions"), {"grantee": f"runner:{runner.pk}", "permission": "admin"}
    )
    assert added.status_code == 302
    assert Grant.objects.get(runner=runner).permission == "admin"
    readers = Team.objects.get(name="readers")
    removed = alice.post(
        url("permissions"), {"grantee": f"team:{readers.pk}", "permission": "none"}
    )
    assert removed.status_code == 302
    assert not Grant.objects.filter(team=readers).exists()
    bad = alice.post(url("permissions"), {"grantee": "team:999999", "permission": "read"})
    assert bad.status_code == 400
    # rita lost read access with her team's grant: the environment is now invisible to her.
    assert signed_in("rita").get(url("detail")).status_code == 404


@pytest.mark.usefixtures("world")
def test_delete_needs_the_name_typed() -> None:
    alice = signed_in("alice")
    alice.post(url("delete"), {"confirm": "wrong"})
    assert Environment.objects.filter(name="dev").exists()
    assert signed_in("walt").post(url("delete"), {"confirm": "app/dev"}).status_code == 403
    done = alice.post(url("delete"), {"confirm": "app/dev"})
    assert done.status_code == 302 and done["Location"] == url("list")
    assert not Environment.objects.filter(name="dev").exists()


# --- admin and the demo -------------------------------------------------------------------------
@pytest.mark.usefixtures("world")
def test_admin_lists_environments_and_the_open_record_read_only(org: Organization) -> None:
    user = UserFactory(username="root", is_superuser=True, is_staff=True)
    MembershipFactory(organization=org, user=user, role=Role.ADMIN)
    client = pass_second_factor(signed_in("root"), "root")  # superusers owe one (portal.signin.mfa)
    assert client.get("/admin/environments/environment/").status_code == 200
    environment = Environment.objects.get(name="dev")
    change = client.get(f"/admin/environments/environment/{environment.pk}/change/")
    assert change.status_code == 200 and SECRET not in text(change)
    assert client.get("/admin/environments/environment/add/").status_code == 403
    assert client.get("/admin/environments/accessevent/").status_code == 200


def test_demo_seed_is_idempotent_and_exercises_the_language(org: Organization) -> None:
    admin = UserFactory(username="admin")
    first = environment_seed_demo(org, admin)
    second = environment_seed_demo(org, admin)
    assert first.pk == second.pk and first.full_name == "demo/dev" and first.revision == 2
    revision = first.revisions.get(number=2)
    assert "fn::secret: {ciphertext: v1." in revision.definition
    actor = Actor(org, Level.ADMIN, login="admin")
    _session, event = opens.environment_open(environment=first, revision=revision, actor=actor)
    values = opens.environment_read_open(environment=first, event=event, actor=actor)
    assert values.value is not None
    result = values.value.plain(reveal=False)
    assert result["app"]["name"] == "demo-app"  # plain and nested
    assert result["greeting"] == "Hello from demo-app in eu-west-1"  # interpolation
    assert result["database"]["password"] == "[secret]"  # fn::secret
    assert values.properties["environmentVariables"].value["DATABASE_URL"].secret
    assert revision.creator_login == "admin"


def test_org_admins_grant_through_the_admin(org: Organization) -> None:
    environment = make_environment(org, text="values: {a: 1}\n")
    ops = Team.objects.create(organization=org, name="ops")
    user = UserFactory(username="alice", is_staff=True)
    MembershipFactory(organization=org, user=user, role=Role.ADMIN)
    page = f"/admin/environments/environment/{environment.pk}/change/"
    management = {
        "grants-TOTAL_FORMS": "1",
        "grants-INITIAL_FORMS": "0",
        "grants-MIN_NUM_FORMS": "0",
        "grants-MAX_NUM_FORMS": "1000",
        "revisions-TOTAL_FORMS": "0",
        "revisions-INITIAL_FORMS": "0",
        "revisions-MIN_NUM_FORMS": "0",
        "revisions-MAX_NUM_FORMS": "1000",
    }
    client = signed_in("alice")
    saved = client.post(
        page, {**management, "grants-0-team": str(ops.pk), "grants-0-permission": "write"}
    )
    assert saved.status_code == 302
    assert list(Grant.objects.values_list("team__name", "permission")) == [("ops", "write")]
    both = client.post(
        page,
        {
            **management,
            "grants-0-team": str(ops.pk),
            "grants-0-runner": str(Runner.objects.create(organization=org, name="r").pk),
            "grants-0-permission": "admin",
        },
    )
    assert both.status_code == 200 and "Choose a team or a runner, not both." in text(both)
