"""Single sign-on end to end: Chromium, the portal and a real OpenID Provider on 127.0.0.1."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from signin.models import ExternalIdentity, GroupMapping, SignInEvent
from tests.browser.conftest import TIMEOUT_MS, screenshot
from tests.signin.openid_provider import make_provider, provider_jwk, start_provider  # noqa: F401
from trustportal.models import Membership, Organization, Role, Team

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def sign_in_with_provider(page: Page, login: str) -> None:
    """From the portal's sign-in page through the provider's form and back."""
    page.goto("/login/")
    page.get_by_role("link", name="Sign in with Test IdP").click()
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", "any password: the test provider takes any")
    page.click("button[type=submit]")


@pytest.fixture
def sso(start_provider: Any, live_server: Any, allow_local_issuers: None, org: Organization):  # noqa: F811
    op = start_provider([f"{live_server.url}/signin/oidc/callback/"])
    provider = make_provider(op, organization=org)
    team = Team.objects.create(organization=org, name="platform")
    GroupMapping.objects.create(
        provider=provider, group="acme-admins", organization=org, role=Role.ADMIN
    )
    GroupMapping.objects.create(
        provider=provider, group="acme-staff", organization=org, role=Role.MEMBER
    )
    GroupMapping.objects.create(provider=provider, group="platform", organization=org, team=team)
    return op, provider, team


def test_first_sign_in_creates_the_user_with_the_mapped_role(
    browser: Browser, page: Page, sso: Any, org: Organization
) -> None:
    op, provider, team = sso
    op.set_person("carol", email="carol@acme.example", groups=["acme-admins", "platform"])

    sign_in_with_provider(page, "carol")

    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.locator("h1")).to_have_text("Your organizations")
    expect(page.locator("table.list tbody tr")).to_contain_text(["acme"])
    screenshot(page, "sso-first-sign-in")
    identity = ExternalIdentity.objects.get(provider=provider, subject="carol")
    user = identity.user
    assert user.email == "carol@acme.example" and not user.has_usable_password()
    assert Membership.objects.get(organization=org, user=user).role == Role.ADMIN
    assert team.members.filter(pk=user.pk).exists()
    assert SignInEvent.objects.filter(kind="signed_in", method="oidc", user=user).exists()
    assert SignInEvent.objects.filter(kind="role_changed", user=user, organization=org).exists()


def test_a_group_change_demotes_at_the_next_sign_in(
    browser: Browser, page: Page, sso: Any, org: Organization, live_server: Any
) -> None:
    op, provider, team = sso
    op.set_person("dave", groups=["acme-admins", "platform"])
    sign_in_with_provider(page, "dave")
    expect(page.locator("h1")).to_have_text("Your organizations")
    dave = ExternalIdentity.objects.get(provider=provider, subject="dave").user
    assert Membership.objects.get(organization=org, user=dave).role == Role.ADMIN

    op.set_person("dave", groups=["acme-staff"])  # out of the admins and of the team
    again = browser.new_context(base_url=live_server.url)
    again.set_default_timeout(TIMEOUT_MS)
    second = again.new_page()
    try:
        sign_in_with_provider(second, "dave")
        expect(second.locator("h1")).to_have_text("Your organizations")
        expect(second.locator("table.list tbody tr")).to_contain_text(["Member"])
        screenshot(second, "sso-demoted")
    finally:
        again.close()
    assert ExternalIdentity.objects.filter(provider=provider, subject="dave").count() == 1
    assert Membership.objects.get(organization=org, user=dave).role == Role.MEMBER
    assert not team.members.filter(pk=dave.pk).exists()
    changes = set(
        SignInEvent.objects.filter(kind="role_changed", user=dave).values_list("detail", flat=True)
    )
    assert {"acme: admin -> member", "removed from team acme/platform"} <= changes
