"""Signing in to the administration, the home of org admins, in a real browser."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import screenshot
from tests.factories import PASSWORD, MembershipFactory, OrganizationFactory
from trustportal.models import Organization, Role, User

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

REFUSED = "Please enter the correct username and password of an organization admin or auditor"


def sign_in_form(page: Page, username: str, password: str) -> None:
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")


def test_org_admin_signs_in_to_the_admin_and_sees_their_organization(
    page: Page, org: Organization, org_admin: User
) -> None:
    OrganizationFactory(login="elsewhere", name="Not Alice's")
    page.goto("/admin/")
    expect(page).to_have_url(re.compile(r"/admin/login/\?next=/admin/$"))
    expect(page.locator("h1, #site-name")).to_contain_text(["Trust Portal"])

    sign_in_form(page, "alice", "not the password")
    expect(page.locator(".errornote")).to_contain_text(REFUSED)
    expect(page).to_have_url(re.compile(r"/admin/login/"))
    expect(page.locator("#id_username")).to_have_value("alice")
    screenshot(page, "admin-sign-in-wrong-password")

    sign_in_form(page, "alice", PASSWORD)
    expect(page).to_have_url(re.compile(r"/admin/$"))
    organizations = page.locator("#portal-organizations")
    expect(organizations.locator("caption")).to_have_text("Your organizations")
    expect(organizations.locator("tbody tr")).to_have_count(1)
    row = organizations.locator("tbody tr").first
    expect(row.locator("th a")).to_have_text("acme")
    expect(row.locator("th .org-name")).to_have_text("ACME Corp")
    expect(page.locator("body")).not_to_contain_text("elsewhere")
    expect(page.locator("#user-tools")).to_contain_text("alice")
    screenshot(page, "admin-index")

    row.get_by_role("link", name="Exchange history").click()
    expect(page).to_have_url(re.compile(r"/orgs/acme/history/$"))
    expect(page.locator("h1")).to_have_text("Exchange history")


def test_a_member_without_an_admin_role_is_refused_at_the_admin_sign_in(
    page: Page, org: Organization
) -> None:
    MembershipFactory(organization=org, role=Role.MEMBER, user__username="mallory")
    page.goto("/admin/login/?next=/admin/")
    sign_in_form(page, "mallory", PASSWORD)
    expect(page.locator(".errornote")).to_contain_text(REFUSED)
    page.goto("/admin/")
    expect(page).to_have_url(re.compile(r"/admin/login/\?next=/admin/$"))
