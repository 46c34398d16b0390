"""An admin of org A cannot see or change org B's objects, through the admin or the API."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.conftest import auth
from tests.factories import (
    PASSWORD,
    MembershipFactory,
    OrganizationFactory,
    RunnerFactory,
    TeamFactory,
    UserFactory,
    make_token,
)
from trustportal.models import Membership, Role, Team

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    a = OrganizationFactory(login="orga")
    b = OrganizationFactory(login="orgb")
    alice = MembershipFactory(organization=a, role=Role.ADMIN, user__username="alice").user
    bob = MembershipFactory(organization=b, role=Role.ADMIN, user__username="bob").user
    audrey = MembershipFactory(organization=a, role=Role.AUDITOR, user__username="audrey").user
    mallory = MembershipFactory(organization=a, role=Role.MEMBER, user__username="mallory").user
    team_a = TeamFactory(organization=a, name="team-a")
    team_b = TeamFactory(organization=b, name="team-b")
    runner_b = RunnerFactory(organization=b, name="runner-b")
    return {
        "a": a,
        "b": b,
        "alice": alice,
        "bob": bob,
        "audrey": audrey,
        "mallory": mallory,
        "team_a": team_a,
        "team_b": team_b,
        "runner_b": runner_b,
    }


def signed_in(username: str) -> Client:
    client = Client()
    assert client.login(username=username, password=PASSWORD)
    return client


def test_admin_lists_only_own_org_objects(world) -> None:
    client = signed_in("alice")
    page = client.get("/admin/trustportal/organization/").content.decode()
    assert "orga" in page and "orgb" not in page
    teams = client.get("/admin/trustportal/team/").content.decode()
    assert "team-a" in teams and "team-b" not in teams
    runners = client.get("/admin/trustportal/runner/").content.decode()
    assert "runner-b" not in runners
    users = client.get("/admin/trustportal/user/").content.decode()
    assert "bob" not in users and "alice" in users


def test_admin_cannot_open_or_change_other_org_objects(world) -> None:
    client = signed_in("alice")
    team_b = world["team_b"]
    for url in [
        f"/admin/trustportal/organization/{world['b'].pk}/change/",
        f"/admin/trustportal/team/{team_b.pk}/change/",
        f"/admin/trustportal/team/{team_b.pk}/delete/",
        f"/admin/trustportal/runner/{world['runner_b'].pk}/change/",
        f"/admin/trustportal/user/{world['bob'].pk}/change/",
    ]:
        response = client.get(url)
        # Django admin answers a missing-or-hidden object with a redirect to the index.
        assert response.status_code in (302, 404), url
    response = client.post(
        f"/admin/trustportal/team/{team_b.pk}/change/",
        {"organization": world["b"].pk, "name": "renamed", "display_name": ""},
    )
    assert response.status_code in (302, 404)
    team_b.refresh_from_db()
    assert team_b.name == "team-b"
    response = client.post(f"/admin/trustportal/team/{team_b.pk}/delete/", {"post": "yes"})
    assert Team.objects.filter(pk=team_b.pk).exists()


def test_admin_cannot_create_objects_in_another_org(world) -> None:
    client = signed_in("alice")
    response = client.post(
        "/admin/trustportal/team/add/",
        {"organization": world["b"].pk, "name": "sneaky", "display_name": ""},
    )
    assert response.status_code == 200  # the form comes back with an error
    assert "Select a valid choice" in response.content.decode()
    assert not Team.objects.filter(name="sneaky").exists()
    response = client.post(
        "/admin/trustportal/membership/add/",
        {"organization": world["b"].pk, "user": world["alice"].pk, "role": "admin"},
    )
    assert not Membership.objects.filter(organization=world["b"], user=world["alice"]).exists()


def test_admin_can_manage_own_org(world) -> None:
    client = signed_in("alice")
    response = client.post(
        "/admin/trustportal/team/add/",
        {"organization": world["a"].pk, "name": "new-team", "display_name": "New"},
    )
    assert response.status_code == 302
    assert Team.objects.filter(organization=world["a"], name="new-team").exists()


def test_auditor_reads_but_cannot_change(world) -> None:
    client = signed_in("audrey")
    assert client.get("/admin/trustportal/team/").status_code == 200
    team_a = world["team_a"]
    page = client.get(f"/admin/trustportal/team/{team_a.pk}/change/")
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    client.post(
        f"/admin/trustportal/team/{team_a.pk}/change/",
        {"organization": world["a"].pk, "name": "changed", "display_name": ""},
    )
    team_a.refresh_from_db()
    assert team_a.name == "team-a"
    assert client.get("/admin/trustportal/team/add/").status_code == 403


def test_plain_member_has_no_admin(world) -> None:
    client = signed_in("mallory")
    response = client.get("/admin/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_org_admin_cannot_grant_site_privileges(world) -> None:
    client = signed_in("alice")
    page = client.get(f"/admin/trustportal/user/{world['mallory'].pk}/change/").content.decode()
    assert 'name="is_superuser"' not in page


def test_api_cross_org_is_404_and_own_org_works(world, api_client) -> None:
    token_a = make_token("organization", organization=world["a"], permission="admin")
    auth(api_client, token_a)
    assert api_client.get("/api/orgs/orga").json() == {"githubLogin": "orga", "name": "Orga Inc."}
    assert api_client.get("/api/orgs/orga/teams").json()["teams"][0]["name"] == "team-a"
    for url in ["/api/orgs/orgb", "/api/orgs/orgb/teams", "/api/orgs/missing"]:
        response = api_client.get(url)
        assert response.status_code == 404, url
        assert response.json()["code"] == 404
        assert "team-b" not in response.content.decode()


def test_api_personal_token_reaches_only_the_users_orgs(world, api_client) -> None:
    auth(api_client, make_token("personal", user=world["alice"]))
    assert api_client.get("/api/orgs/orga").status_code == 200
    assert api_client.get("/api/orgs/orgb").status_code == 404


def test_api_superuser_personal_token_reaches_all(world, api_client) -> None:
    root = UserFactory(username="root", is_superuser=True)
    auth(api_client, make_token("personal", user=root))
    assert api_client.get("/api/orgs/orgb").status_code == 200
