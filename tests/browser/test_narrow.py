"""Every organization page on a phone-sized screen (390 px): nothing scrolls the page sideways.

Long subjects, URLs and tables are the usual culprits; tables may scroll inside their own box.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from devtools.issuer import DevIssuer
from environments.definitions import environment_seed_demo
from issuers.services import Outbound
from policies.registration import issuer_register
from tests.browser.conftest import screenshot
from tests.factories import make_event
from tokens.models import AccessToken
from tokens.services import token_create
from trustportal.models import Membership, Organization, Role, Team, User

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("allow_local_issuers"),
]

LONG_SUBJECT = (
    "repo:acme-corporation/an-infrastructure-repository-with-a-long-name:"
    "ref:refs/heads/release/2026-03-some-very-long-branch-name-for-testing"
)


def org_pages(organization: Organization, issuer_id: object, admin: User) -> dict[str, str]:
    """Every page of the organization's tab bar and the pages one click below them."""
    org = organization.login
    policy = {"org": org, "issuer_id": issuer_id}
    event = make_event(organization, sub=LONG_SUBJECT, reason="no_matching_policy")
    token, _ = token_create(
        token_type="organization", organization=organization, name="deploy", created_by=admin
    )
    environment = environment_seed_demo(organization, admin)
    team = Team.objects.create(organization=organization, name="platform")
    member = Membership.objects.create(
        organization=organization,
        user=User.objects.create_user("a-member-with-a-long-name"),
        role=Role.MEMBER,
    )
    team.members.add(member.user)
    env = {"org": org, "project": environment.project, "name": environment.name}
    return {
        "dashboard": reverse("tokens:dashboard", kwargs={"org": org}),
        "history": reverse("tokens:history", kwargs={"org": org}),
        "event": reverse("tokens:event", kwargs={"org": org, "event_id": event.pk}),
        "credentials": reverse("tokens:credentials", kwargs={"org": org}),
        "tokens": reverse("tokens:tokens", kwargs={"org": org}),
        "token": reverse("tokens:token", kwargs={"org": org, "token_id": token.pk}),
        "token-create": reverse("tokens:token-create", kwargs={"org": org}),
        "revoke-matching": reverse("tokens:revoke-matching", kwargs={"org": org})
        + f"?issuer={issuer_id}",
        "issuers": reverse("issuers:list", kwargs={"org": org}),
        "issuer": reverse("issuers:detail", kwargs={"org": org, "issuer_id": issuer_id}),
        "issuer-register": reverse("issuers:register", kwargs={"org": org}),
        "policy": reverse("policies:editor", kwargs=policy),
        "policy-versions": reverse(
            "policies:versions", kwargs={"org": org, "issuer_id": issuer_id}
        ),
        "policy-simulate": reverse(
            "policies:simulate", kwargs={"org": org, "issuer_id": issuer_id}
        ),
        "policy-replay": reverse("policies:replay", kwargs=policy),
        "environments": reverse("environments:list", kwargs={"org": org}),
        "environment": reverse("environments:detail", kwargs=env),
        "environment-revisions": reverse("environments:revisions", kwargs=env),
        "environment-permissions": reverse("environments:permissions", kwargs=env),
        "people": reverse("people", kwargs={"org": org}),
        "people-member-remove": reverse(
            "people-member-remove", kwargs={"org": org, "membership_id": member.pk}
        ),
        "people-team-delete": reverse(
            "people-team-delete", kwargs={"org": org, "team_id": team.pk}
        ),
        "people-team-member-remove": reverse(
            "people-team-member-remove",
            kwargs={"org": org, "team_id": team.pk, "user_id": member.user_id},
        ),
        "not-found": f"/orgs/{org}/no-such-page/",
    }


def test_every_org_page_fits_a_phone_screen(
    signed_in: Callable[[User], Page],
    org: Organization,
    org_admin: User,
    local_issuer: DevIssuer,
    outbound: Outbound,
) -> None:
    issuer = issuer_register(
        organization=org, url=local_issuer.url, name="GitHub Actions", outbound=outbound
    )
    pages = org_pages(org, issuer.pk, org_admin)
    page = signed_in(org_admin)
    page.set_viewport_size({"width": 390, "height": 844})
    too_wide = {}
    for name, url in pages.items():
        page.goto(url)
        # The one organization tab bar is on every page of the organization.
        expect(page.locator("nav.org-tabs")).to_have_count(1 if name != "not-found" else 0)
        widths = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        screenshot(page, f"narrow-{name}")
        if widths[0] > widths[1]:
            too_wide[name] = widths
    assert not too_wide, (
        f"pages that scroll sideways at 390 px (scrollWidth, innerWidth): {too_wide}"
    )
    assert AccessToken.objects.count() == 1

    # A new account's one-time password page, reached the way an admin reaches it.
    page.goto(pages["people"])
    page.fill("#member-username", "newcomer")
    page.fill("#member-email", "newcomer@example.test")
    page.get_by_role("button", name="Create the account").click()
    expect(page.locator("h1")).to_have_text("Account created")
    expect(page.locator("code.secret")).to_have_count(1)
    widths = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    screenshot(page, "narrow-people-member-created")
    assert widths[0] <= widths[1], f"the account-created page scrolls sideways: {widths}"
