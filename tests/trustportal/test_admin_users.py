"""Who may view, change, set the password of and adopt which user through the admin.

Orgs A, B and C. Actors: a superuser; the admin of A (and of C, the org new memberships go to);
the admin of A, B (and C); a member of A; an auditor of A. Targets: a user only in A; a user
in A and B; a user in no organization; a superuser who is a member of A.

The rules: a user is viewable by the admins and auditors of an org the user belongs to; only a
superuser sets passwords or creates accounts; an org admin changes a user only when every one
of the user's memberships is in an org they administer (and never a superuser or staff user);
an org admin adds to their orgs (memberships, teams) only users already in one of the orgs they
administer, never an account that belongs to no organization.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.hashers import check_password
from django.test import Client

from tests.factories import (
    PASSWORD,
    MembershipFactory,
    UserFactory,
    pass_second_factor,
)
from trustportal.models import Membership, Organization, Role, Team, User

pytestmark = pytest.mark.django_db

ACTORS = ("root", "admin_a", "admin_ab", "member_a", "auditor_a")
TARGETS = ("only_a", "in_a_and_b", "in_no_org", "super_in_a")
NEW_PASSWORD = "a brand new passphrase 7#"

# Expected outcomes: the targets each actor may view (open the change page), change
# (username/email/is_active), set the password of, and add as a member of org C.
VIEW = {
    "root": set(TARGETS),
    "admin_a": {"only_a", "in_a_and_b", "super_in_a"},
    "admin_ab": {"only_a", "in_a_and_b", "super_in_a"},
    "member_a": set(),
    "auditor_a": {"only_a", "in_a_and_b", "super_in_a"},
}
CHANGE = {
    "root": set(TARGETS),
    "admin_a": {"only_a"},
    "admin_ab": {"only_a", "in_a_and_b"},
    "member_a": set(),
    "auditor_a": set(),
}
PASSWORD_SET = {
    "root": set(TARGETS),
    "admin_a": set(),
    "admin_ab": set(),
    "member_a": set(),
    "auditor_a": set(),
}
ADOPT = {
    "root": set(TARGETS),
    "admin_a": {"only_a", "in_a_and_b"},
    "admin_ab": {"only_a", "in_a_and_b"},
    "member_a": set(),
    "auditor_a": set(),
}


@pytest.fixture
def orgs() -> dict[str, Organization]:
    return {name: Organization.objects.create(login=f"org{name.lower()}") for name in "ABC"}


@pytest.fixture
def people(orgs: dict[str, Organization]) -> dict[str, User]:
    a, b, c = orgs["A"], orgs["B"], orgs["C"]
    users = {name: UserFactory(username=name) for name in (*ACTORS, *TARGETS)}
    User.objects.filter(username__in=("root", "super_in_a")).update(
        is_superuser=True, is_staff=True
    )
    for user, organization, role in [
        ("admin_a", a, Role.ADMIN),
        ("admin_a", c, Role.ADMIN),
        ("admin_ab", a, Role.ADMIN),
        ("admin_ab", b, Role.ADMIN),
        ("admin_ab", c, Role.ADMIN),
        ("member_a", a, Role.MEMBER),
        ("auditor_a", a, Role.AUDITOR),
        ("only_a", a, Role.MEMBER),
        ("in_a_and_b", a, Role.MEMBER),
        ("in_a_and_b", b, Role.ADMIN),
        ("super_in_a", a, Role.MEMBER),
    ]:
        MembershipFactory(user=users[user], organization=organization, role=role)
    return {name: User.objects.get(username=name) for name in users}


def signed_in(username: str) -> Client:
    """Signed in; a superuser also passes the second factor it owes (portal.signin.mfa)."""
    client = Client()
    assert client.login(username=username, password=PASSWORD)
    if User.objects.filter(username=username, is_superuser=True).exists():
        pass_second_factor(client, username)
    return client


def change_form(actor: User, target: User) -> dict[str, Any]:
    """The change form as the actor's page shows it, with a new username and email."""
    data: dict[str, Any] = {
        "username": f"{target.username}-renamed",
        "first_name": "",
        "last_name": "",
        "email": "taken-over@attacker.test",
        "is_active": "on",
    }
    if actor.is_superuser:
        data["date_joined_0"] = target.date_joined.strftime("%Y-%m-%d")
        data["date_joined_1"] = target.date_joined.strftime("%H:%M:%S")
        if target.is_superuser:
            data.update({"is_staff": "on", "is_superuser": "on"})
    return data


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("actor", ACTORS)
def test_who_may_view_a_user(people: dict[str, User], actor: str, target: str) -> None:
    response = signed_in(actor).get(f"/admin/trustportal/user/{people[target].pk}/change/")
    assert (response.status_code == 200) == (target in VIEW[actor]), response.status_code


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("actor", ACTORS)
def test_who_may_change_a_user(people: dict[str, User], actor: str, target: str) -> None:
    user = people[target]
    response = signed_in(actor).post(
        f"/admin/trustportal/user/{user.pk}/change/", change_form(people[actor], user)
    )
    assert response.status_code < 500
    user.refresh_from_db()
    changed = user.username == f"{target}-renamed"
    assert changed == (target in CHANGE[actor]), response.status_code
    assert (user.email == "taken-over@attacker.test") == changed


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("actor", ACTORS)
def test_who_may_set_a_password(people: dict[str, User], actor: str, target: str) -> None:
    user = people[target]
    client = signed_in(actor)
    url = f"/admin/trustportal/user/{user.pk}/password/"
    page = client.get(url)
    allowed = target in PASSWORD_SET[actor]
    assert (page.status_code == 200) == allowed, page.status_code
    response = client.post(
        url,
        {"usable_password": "true", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    assert response.status_code < 500
    user.refresh_from_db()
    assert check_password(NEW_PASSWORD, user.password) == allowed
    assert check_password(PASSWORD, user.password) == (not allowed)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("actor", ACTORS)
def test_who_may_add_a_user_to_an_org(
    orgs: dict[str, Organization], people: dict[str, User], actor: str, target: str
) -> None:
    user = people[target]
    response = signed_in(actor).post(
        "/admin/trustportal/membership/add/",
        {"organization": orgs["C"].pk, "user": user.pk, "role": Role.ADMIN},
    )
    assert response.status_code < 500
    added = Membership.objects.filter(organization=orgs["C"], user=user).exists()
    assert added == (target in ADOPT[actor]), response.status_code


@pytest.mark.parametrize("actor", ["admin_a", "admin_ab"])
def test_an_existing_membership_cannot_be_moved_onto_another_user(
    orgs: dict[str, Organization], people: dict[str, User], actor: str
) -> None:
    membership = Membership.objects.get(user=people["only_a"], organization=orgs["A"])
    for target in ("in_no_org", "super_in_a"):
        signed_in(actor).post(
            f"/admin/trustportal/membership/{membership.pk}/change/",
            {"organization": orgs["A"].pk, "user": people[target].pk, "role": Role.ADMIN},
        )
        membership.refresh_from_db()
        assert membership.user == people["only_a"]


def test_org_admins_do_not_create_accounts(people: dict[str, User]) -> None:
    for actor in ("admin_a", "admin_ab", "auditor_a"):
        response = signed_in(actor).post(
            "/admin/trustportal/user/add/",
            {
                "username": f"new-by-{actor}",
                "usable_password": "true",
                "password1": NEW_PASSWORD,
                "password2": NEW_PASSWORD,
            },
        )
        assert response.status_code == 403
        assert not User.objects.filter(username=f"new-by-{actor}").exists()
    response = signed_in("root").post(
        "/admin/trustportal/user/add/",
        {
            "username": "new-by-root",
            "usable_password": "true",
            "password1": NEW_PASSWORD,
            "password2": NEW_PASSWORD,
        },
    )
    assert User.objects.filter(username="new-by-root").exists()


def test_org_admin_change_page_has_no_password_link(people: dict[str, User]) -> None:
    page = signed_in("admin_a").get(f"/admin/trustportal/user/{people['only_a'].pk}/change/")
    assert page.status_code == 200
    assert "../password/" not in page.content.decode()
    assert 'name="is_superuser"' not in page.content.decode()


@pytest.mark.parametrize(
    ("actor", "target", "allowed"),
    [
        ("admin_a", "only_a", True),
        ("admin_a", "in_a_and_b", True),
        ("admin_a", "in_no_org", False),
        ("admin_a", "super_in_a", False),
        ("admin_ab", "in_no_org", False),
        ("root", "in_no_org", False),  # a team holds members of its organization only
    ],
)
def test_team_members_are_members_of_the_teams_org(
    orgs: dict[str, Organization],
    people: dict[str, User],
    actor: str,
    target: str,
    allowed: bool,
) -> None:
    team = Team.objects.create(organization=orgs["A"], name="deployers")
    response = signed_in(actor).post(
        f"/admin/trustportal/team/{team.pk}/change/",
        {
            "organization": orgs["A"].pk,
            "name": "deployers",
            "display_name": "",
            "members": [people[target].pk],
        },
    )
    assert response.status_code < 500
    assert team.members.filter(pk=people[target].pk).exists() == allowed


def test_team_of_one_org_cannot_take_a_member_of_another(
    orgs: dict[str, Organization], people: dict[str, User]
) -> None:
    bob = User.objects.get(username=UserFactory(username="bob").username)
    Membership.objects.create(organization=orgs["B"], user=bob, role=Role.MEMBER)
    team = Team.objects.create(organization=orgs["A"], name="deployers")
    signed_in("admin_ab").post(
        f"/admin/trustportal/team/{team.pk}/change/",
        {
            "organization": orgs["A"].pk,
            "name": "deployers",
            "display_name": "",
            "members": [bob.pk],
        },
    )
    assert not Team.objects.get(pk=team.pk).members.filter(pk=bob.pk).exists()
