"""Styled 403/404/405 pages, the people page, and separator-friendly wrapping."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.factories import MembershipFactory
from trustportal.models import Organization, Role, User
from trustportal.templatetags.portal import breakable

pytestmark = pytest.mark.django_db


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_page_errors_are_styled_and_lead_somewhere(org: Organization, org_admin: User) -> None:
    auditor = MembershipFactory(organization=org, role=Role.AUDITOR, user__username="au").user
    cases = {
        404: client_for(org_admin).get("/orgs/acme/nothing-here/"),
        403: client_for(auditor).get("/orgs/acme/tokens/new/"),
        405: client_for(org_admin).get("/orgs/acme/tokens/1/revoke/"),
    }
    for status, response in cases.items():
        page = response.content.decode()
        assert response.status_code == status
        assert f"Error {status}" in page and 'href="/"' in page and "skip-link" in page, status
    assert "POST" in cases[405]["Allow"]


def test_api_errors_stay_json(org_admin: User) -> None:
    response = client_for(org_admin).get("/api/no-such-endpoint")
    assert response.status_code == 404 and response["Content-Type"].startswith("application/json")


def test_people_page_lists_members_and_the_next_steps(org: Organization, org_admin: User) -> None:
    page = client_for(org_admin).get("/orgs/acme/people/").content.decode()
    assert "alice" in page and "Create a team" in page and "Add a member" in page
    assert page.count('class="tabs org-tabs"') == 1


def test_breakable_escapes_and_breaks_only_at_separators() -> None:
    assert breakable("repo:acme/<x>:ref") == "repo:<wbr>acme/<wbr>&lt;x&gt;:<wbr>ref"
    assert breakable("a&b") == "a&amp;<wbr>b"
