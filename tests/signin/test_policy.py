"""Password sign-in where single sign-on is required, the mapping's authority, the log."""

from __future__ import annotations

from typing import cast

import pytest
from django.test import Client

from kernel.secretbox import SecretError
from signin.models import GroupMapping, IdentityProvider, OrganizationSignInPolicy, SignInEvent
from signin.services import (
    provider_secret,
    provider_set_secret,
    roles_apply,
    user_for_identity,
)
from tests.factories import PASSWORD, MembershipFactory, UserFactory
from trustportal.models import Membership, Organization, Role, User

pytestmark = pytest.mark.django_db


def sign_in(username: str) -> int:
    answer = Client().post("/login/", {"username": username, "password": PASSWORD})
    return answer.status_code  # 302 signed in, 200 the form again


def test_sso_refuses_members_passwords_but_the_break_glass_account(org: Organization) -> None:
    alice = cast(
        User, MembershipFactory(organization=org, role=Role.ADMIN, user__username="alice").user
    )
    MembershipFactory(organization=org, role=Role.MEMBER, user__username="bob")
    UserFactory(username="outsider")
    assert sign_in("bob") == 302
    OrganizationSignInPolicy.objects.create(
        organization=org, require_sso=True, break_glass_user=alice
    )
    assert sign_in("bob") == 200
    assert sign_in("alice") == 302
    assert sign_in("outsider") == 302
    refusal = SignInEvent.objects.get(kind="refused", username="bob")
    assert refusal.reason == "sso_required" and refusal.method == "password"
    # The administration's own sign-in form goes through the same backend.
    admin = Client().post("/admin/login/", {"username": "bob", "password": PASSWORD})
    assert admin.status_code == 200 and "_auth_user_id" not in Client().session


def test_the_login_page_offers_each_enabled_provider(org: Organization) -> None:
    IdentityProvider.objects.create(
        organization=org, name="Okta", issuer="https://acme.okta.com", client_id="x"
    )
    IdentityProvider.objects.create(
        name="Off", issuer="https://off.example", client_id="y", enabled=False
    )
    page = Client().get("/login/").content.decode()
    assert "Sign in with Okta" in page and "Sign in with Off" not in page


def test_the_client_secret_is_sealed_to_its_provider(org: Organization) -> None:
    first = IdentityProvider(organization=org, name="A", issuer="https://a.example", client_id="a")
    provider_set_secret(first, "the-secret")
    first.save()
    assert "the-secret" not in first.client_secret_sealed
    assert provider_secret(first) == "the-secret"
    second = IdentityProvider.objects.create(name="B", issuer="https://b.example", client_id="b")
    second.client_secret_sealed = first.client_secret_sealed  # copied into another provider
    with pytest.raises(SecretError, match="another environment or was altered"):
        provider_secret(second)


def test_users_are_matched_by_subject_never_by_email(org: Organization) -> None:
    provider = IdentityProvider.objects.create(
        organization=org, name="P", issuer="https://p.example", client_id="c"
    )
    victim = cast(User, UserFactory(username="carol", email="carol@acme.example"))
    user = user_for_identity(
        provider, {"sub": "s-1", "email": "carol@acme.example", "preferred_username": "carol"}
    )
    assert user.pk != victim.pk and user.username.startswith("carol-")
    again = user_for_identity(provider, {"sub": "s-1", "email": "new@acme.example"})
    assert again.pk == user.pk and again.email == "new@acme.example"


def test_leaving_every_mapped_group_removes_the_membership(org: Organization) -> None:
    provider = IdentityProvider.objects.create(
        organization=org, name="P", issuer="https://p.example", client_id="c"
    )
    GroupMapping.objects.create(
        provider=provider, group="admins", organization=org, role=Role.ADMIN
    )
    GroupMapping.objects.create(
        provider=provider, group="auditors", organization=org, role=Role.AUDITOR
    )
    user = User.objects.create(username="zed")
    roles_apply(user, provider, {"admins", "auditors"})
    assert Membership.objects.get(user=user).role == Role.ADMIN
    roles_apply(user, provider, {"auditors", "unrelated"})
    assert Membership.objects.get(user=user).role == Role.AUDITOR
    changes = roles_apply(user, provider, set())
    assert not Membership.objects.filter(user=user).exists()
    assert [c.describe() for c in changes] == ["acme: auditor -> none"]
