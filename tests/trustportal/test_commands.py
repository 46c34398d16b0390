"""The operator commands: bootstrap and createtoken."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tests.factories import OrganizationFactory, RunnerFactory, TeamFactory, UserFactory
from tokens.format import hash_token, parse_token
from tokens.models import AccessToken
from trustportal.models import Membership, Organization, Role, User

pytestmark = pytest.mark.django_db


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_bootstrap_is_idempotent() -> None:
    run("bootstrap", "--org", "acme", "--admin", "alice", "--email", "a@acme.test")
    run("bootstrap", "--org", "acme", "--admin", "alice")
    assert Organization.objects.filter(login="acme").count() == 1
    alice = User.objects.get(username="alice")
    assert alice.email == "a@acme.test"
    assert not alice.has_usable_password()
    membership = Membership.objects.get(user=alice)
    assert membership.role == Role.ADMIN
    assert AccessToken.objects.count() == 0


def test_bootstrap_promotes_an_existing_member_to_admin() -> None:
    run("bootstrap", "--org", "acme", "--admin", "alice")
    Membership.objects.filter(user__username="alice").update(role=Role.MEMBER)
    run("bootstrap", "--org", "acme", "--admin", "alice")
    assert Membership.objects.get(user__username="alice").role == Role.ADMIN


def test_bootstrap_print_token_prints_only_an_org_admin_token() -> None:
    out, _ = run("bootstrap", "--org", "acme", "--admin", "alice", "--print-token")
    lines = out.splitlines()
    assert len(lines) == 1
    parsed = parse_token(lines[0])
    assert parsed is not None and parsed.token_type == "organization"
    row = AccessToken.objects.get(token_hash=hash_token(lines[0]))
    assert row.permission == "admin"
    assert row.organization is not None and row.organization.login == "acme"


def test_bootstrap_refuses_a_bad_org_login() -> None:
    with pytest.raises(CommandError, match="letters, digits"):
        run("bootstrap", "--org", "not a slug!", "--admin", "alice")


def test_createtoken_for_each_type() -> None:
    org = OrganizationFactory(login="acme")
    TeamFactory(organization=org, name="platform")
    RunnerFactory(organization=org, name="deployer")
    UserFactory(username="bob")
    cases = [
        (["--type", "organization", "--org", "acme", "--permission", "admin"], "organization"),
        (["--type", "team", "--org", "acme", "--team", "platform"], "team"),
        (["--type", "runner", "--org", "acme", "--runner", "deployer"], "runner"),
        (["--type", "personal", "--user", "bob", "--expires-in", "3600"], "personal"),
    ]
    for args, expected in cases:
        out, _ = run("createtoken", *args)
        parsed = parse_token(out.strip())
        assert parsed is not None and parsed.token_type == expected
    personal = AccessToken.objects.get(token_type="personal")
    assert personal.expires is not None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--type", "team", "--org", "acme"], "--team is required"),
        (["--type", "organization"], "--org is required"),
        (["--type", "team", "--org", "acme", "--team", "nope"], "no team with"),
        (["--type", "organization", "--org", "nope"], "no organization with"),
        (["--type", "personal"], "--user is required"),
        (["--type", "organization", "--org", "acme", "--expires-in", "0"], "positive"),
        (["--type", "organization", "--org", "acme", "--permission", "root"], "admin or standard"),
    ],
)
def test_createtoken_explains_bad_input(args: list[str], message: str) -> None:
    OrganizationFactory(login="acme")
    with pytest.raises(CommandError, match=message):
        run("createtoken", *args)
