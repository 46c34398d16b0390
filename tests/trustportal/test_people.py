"""Members and teams managed in the portal by organization admins (and only by them)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from tests.factories import MembershipFactory
from tests.tokens.conftest import signed_in
from tokens.models import AccessToken
from tokens.services import token_create
from trustportal.models import Membership, Organization, Role, Team, User

pytestmark = pytest.mark.django_db

PASSWORD_SHOWN = re.compile(r'<code class="secret">([^<]+)</code>')


def url(name: str, **kwargs: Any) -> str:
    return reverse(name, kwargs={"org": "acme", **kwargs})


def make_team(organization: Organization, name: str) -> Team:
    return Team.objects.create(organization=organization, name=name)


def membership(username: str, org: str = "acme") -> Membership:
    return Membership.objects.get(user__username=username, organization__login=org)


# --- the page ----------------------------------------------------------------------------------
def test_admins_get_the_forms_auditors_only_read(people) -> None:
    page = signed_in("alice").get(url("people")).content.decode()
    assert "Create the account" in page and "Create the team" in page and "Change role" in page
    page = signed_in("audrey").get(url("people")).content.decode()
    assert "alice" in page and "mallory" in page
    assert "Create the account" not in page and "Change role" not in page
    assert signed_in("mallory").get(url("people")).status_code == 403
    assert signed_in("bob").get(url("people")).status_code == 404


def test_only_a_superuser_sees_the_admin_link_to_add_an_existing_account(people) -> None:
    page = signed_in("alice").get(url("people")).content.decode()
    assert "/admin/trustportal/membership/add/" not in page
    assert "/admin/trustportal/user/add/" not in page


# --- roles -------------------------------------------------------------------------------------
def test_admin_changes_a_role_post_redirect_get(people) -> None:
    target = membership("mallory")
    response = signed_in("alice").post(
        url("people-member-role", membership_id=target.pk), {"role": "auditor"}, follow=True
    )
    assert response.redirect_chain == [(url("people"), 302)]
    assert "mallory is now auditor." in response.content.decode()
    assert membership("mallory").role == Role.AUDITOR


def test_the_last_admin_cannot_be_demoted_and_is_told_why(people) -> None:
    target = membership("alice")
    response = signed_in("alice").post(
        url("people-member-role", membership_id=target.pk), {"role": "member"}, follow=True
    )
    assert "last admin of the organization" in response.content.decode()
    assert membership("alice").role == Role.ADMIN


def test_an_admin_may_step_down_when_another_admin_remains(people) -> None:
    MembershipFactory(organization=people["acme"], role=Role.ADMIN, user__username="ann")
    signed_in("alice").post(
        url("people-member-role", membership_id=membership("alice").pk), {"role": "member"}
    )
    assert membership("alice").role == Role.MEMBER
    # ann is now the last admin.
    signed_in("ann").post(
        url("people-member-role", membership_id=membership("ann").pk), {"role": "auditor"}
    )
    assert membership("ann").role == Role.ADMIN


def test_an_unknown_role_is_refused_without_a_change(people) -> None:
    response = signed_in("alice").post(
        url("people-member-role", membership_id=membership("mallory").pk),
        {"role": "owner"},
        follow=True,
    )
    assert response.status_code == 200 and "Choose admin, member or auditor." in (
        response.content.decode()
    )
    assert membership("mallory").role == Role.MEMBER


# --- removal -----------------------------------------------------------------------------------
def test_removing_a_member_asks_first_then_removes_them_from_the_org_and_its_teams(
    people,
) -> None:
    team = make_team(people["acme"], "platform")
    team.members.add(people["member"])
    other_org_team = make_team(people["beta"], "ops")
    MembershipFactory(organization=people["beta"], user=people["member"])
    other_org_team.members.add(people["member"])
    remove = url("people-member-remove", membership_id=membership("mallory").pk)
    client = signed_in("alice")
    confirm = client.get(remove)
    assert confirm.status_code == 200 and "Remove mallory from ACME Corp?" in (
        confirm.content.decode()
    )
    assert Membership.objects.filter(user__username="mallory").count() == 2
    response = client.post(remove)
    assert response.status_code == 302 and response["Location"] == url("people")
    assert not Membership.objects.filter(user__username="mallory", organization__login="acme")
    assert not team.members.exists()
    # Another organization's membership and teams stay; so does the account.
    assert list(other_org_team.members.all()) == [people["member"]]
    assert User.objects.filter(username="mallory").exists()


def test_the_last_admin_cannot_be_removed(people) -> None:
    remove = url("people-member-remove", membership_id=membership("alice").pk)
    response = signed_in("alice").post(remove, follow=True)
    assert "last admin of the organization and cannot be removed" in response.content.decode()
    assert membership("alice").role == Role.ADMIN


# --- new accounts ------------------------------------------------------------------------------
def test_admin_creates_an_account_and_sees_its_password_once(people) -> None:
    client = signed_in("alice")
    response = client.post(
        url("people-member-add"),
        {"username": "newbie", "email": "newbie@example.test", "role": "auditor"},
    )
    user = User.objects.get(username="newbie")
    shown_at = url("people-member-created", user_id=user.pk)
    assert response.status_code == 302 and response["Location"] == shown_at
    assert membership("newbie").role == Role.AUDITOR and user.email == "newbie@example.test"
    first = client.get(shown_at)
    assert first.status_code == 200 and first["Cache-Control"] == "no-store"
    found = PASSWORD_SHOWN.search(first.content.decode())
    assert found is not None and user.check_password(found.group(1))
    assert Client().login(username="newbie", password=found.group(1))
    again = client.get(shown_at, follow=True).content.decode()
    assert found.group(1) not in again and "shown only once" in again
    # Another session of the same admin never sees it either.
    elsewhere = signed_in("alice").get(shown_at, follow=True).content.decode()
    assert PASSWORD_SHOWN.search(elsewhere) is None


@pytest.mark.parametrize("existing", ["loner", "bob", "BOB", "alice"])
def test_admin_never_adopts_an_existing_account(people, existing: str) -> None:
    """A user of no organization, of another organization (any case), or already a member."""
    loner = User.objects.create_user("loner")
    before = snapshot()
    bob_password = people["outsider"].password
    response = signed_in("alice").post(
        url("people-member-add"), {"username": existing, "email": "x@example.test", "role": "admin"}
    )
    assert response.status_code == 400
    assert "is taken" in response.content.decode()
    assert snapshot() == before
    assert not Membership.objects.filter(user=loner).exists()
    assert User.objects.get(username="bob").password == bob_password


def test_bad_account_input_is_a_400_with_the_reason(people) -> None:
    response = signed_in("alice").post(
        url("people-member-add"), {"username": "no spaces!", "email": "not-mail", "role": "x"}
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert "Enter a valid" in page and "Select a valid choice" in page
    assert not User.objects.filter(username="no spaces!").exists()


# --- teams -------------------------------------------------------------------------------------
def test_admin_creates_fills_and_deletes_a_team(people) -> None:
    client = signed_in("alice")
    response = client.post(url("people-team-add"), {"name": "platform", "display_name": "P"})
    assert response.status_code == 302
    team = Team.objects.get(organization=people["acme"], name="platform")
    assert client.post(url("people-team-add"), {"name": "PLATFORM"}).status_code == 400

    add = url("people-team-member-add", team_id=team.pk)
    assert client.post(add, {"user": people["member"].pk}).status_code == 302
    assert list(team.members.all()) == [people["member"]]
    remove = url("people-team-member-remove", team_id=team.pk, user_id=people["member"].pk)
    assert "Remove mallory from the team platform?" in client.get(remove).content.decode()
    assert client.post(remove).status_code == 302 and not team.members.exists()

    token_create(token_type="team", organization=people["acme"], team=team)
    delete = url("people-team-delete", team_id=team.pk)
    assert "team tokens are deleted" in client.get(delete).content.decode()
    assert client.post(delete).status_code == 302
    assert not Team.objects.filter(pk=team.pk).exists() and not AccessToken.objects.exists()


def test_only_members_of_the_organization_join_its_teams(people) -> None:
    team = make_team(people["acme"], "platform")
    loner = User.objects.create_user("loner")
    client = signed_in("alice")
    for outsider in (people["outsider"], loner):
        response = client.post(
            url("people-team-member-add", team_id=team.pk), {"user": outsider.pk}, follow=True
        )
        assert "Choose a member of the organization." in response.content.decode()
    assert not team.members.exists()


# --- who may -----------------------------------------------------------------------------------
def writes(people: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    acme_team = make_team(people["acme"], "platform")
    acme_team.members.add(people["member"])
    target = membership("mallory")
    return [
        ("post", url("people-member-add"), {"username": "sneaky", "role": "admin"}),
        ("post", url("people-member-role", membership_id=target.pk), {"role": "admin"}),
        ("post", url("people-member-remove", membership_id=target.pk), {}),
        ("get", url("people-member-remove", membership_id=target.pk), {}),
        ("post", url("people-team-add"), {"name": "sneaky"}),
        ("post", url("people-team-delete", team_id=acme_team.pk), {}),
        ("post", url("people-team-member-add", team_id=acme_team.pk), {"user": target.user_id}),
        (
            "post",
            url("people-team-member-remove", team_id=acme_team.pk, user_id=target.user_id),
            {},
        ),
    ]


def snapshot() -> tuple[object, ...]:
    return (
        sorted(Membership.objects.values_list("organization_id", "user_id", "role")),
        sorted(Team.objects.values_list("organization_id", "name")),
        sorted(Team.members.through.objects.values_list("team_id", "user_id")),
        User.objects.count(),
    )


@pytest.mark.parametrize(("username", "status"), [("mallory", 403), ("audrey", 403), ("bob", 404)])
def test_members_auditors_and_other_orgs_admins_change_nothing(
    people, username: str, status: int
) -> None:
    cases = writes(people)
    before = snapshot()
    client = signed_in(username)
    for method, target, data in cases:
        response = getattr(client, method)(target, data)
        assert response.status_code == status, (username, method, target)
    assert snapshot() == before


def test_an_admin_cannot_reach_another_organizations_rows_through_its_own(people) -> None:
    """acme's admin names beta's membership and team in acme's URLs: 404, nothing changes."""
    beta_team = make_team(people["beta"], "ops")
    beta_membership = membership("bob", org="beta")
    before = snapshot()
    client = signed_in("alice")
    for target, data in (
        (url("people-member-role", membership_id=beta_membership.pk), {"role": "member"}),
        (url("people-member-remove", membership_id=beta_membership.pk), {}),
        (url("people-team-delete", team_id=beta_team.pk), {}),
        (url("people-team-member-add", team_id=beta_team.pk), {"user": people["member"].pk}),
        (url("people-member-created", user_id=people["outsider"].pk), {}),
    ):
        method = client.get if "created" in target else client.post
        assert method(target, data).status_code == 404, target
    assert snapshot() == before
