"""Sign in, the landing page, sign out, and the headers every page carries."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.factories import PASSWORD, MembershipFactory, OrganizationFactory, UserFactory
from trustportal.models import Role

pytestmark = pytest.mark.django_db


def test_landing_page_requires_sign_in() -> None:
    response = Client().get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_sign_in_lists_the_users_organizations_and_sign_out() -> None:
    user = UserFactory(username="carol")
    MembershipFactory(user=user, organization=OrganizationFactory(login="acme"), role=Role.ADMIN)
    MembershipFactory(user=user, organization=OrganizationFactory(login="beta"), role=Role.AUDITOR)
    OrganizationFactory(login="secretorg")
    client = Client(enforce_csrf_checks=True)
    login_page = client.get("/login/")
    assert login_page.status_code == 200
    csrf = login_page.cookies["csrftoken"].value
    response = client.post(
        "/login/", {"username": "carol", "password": PASSWORD, "csrfmiddlewaretoken": csrf}
    )
    assert response.status_code == 302
    page = client.get("/").content.decode()
    assert "acme" in page and "beta" in page and "Auditor" in page and "Admin" in page
    assert "secretorg" not in page
    csrf = client.cookies["csrftoken"].value
    assert client.post("/logout/", {"csrfmiddlewaretoken": csrf}).status_code == 302
    assert client.get("/").status_code == 302


def test_wrong_password_is_explained() -> None:
    UserFactory(username="dave")
    response = Client().post("/login/", {"username": "dave", "password": "nope"})
    assert response.status_code == 200
    assert "didn't match" in response.content.decode()


def test_login_without_csrf_token_is_refused() -> None:
    UserFactory(username="erin")
    client = Client(enforce_csrf_checks=True)
    response = client.post("/login/", {"username": "erin", "password": PASSWORD})
    assert response.status_code == 403


def test_user_without_orgs_sees_the_next_step() -> None:
    UserFactory(username="frank")
    client = Client()
    client.login(username="frank", password=PASSWORD)
    assert "Ask an admin of your organization" in client.get("/").content.decode()


def test_pages_carry_a_strict_csp_and_security_headers() -> None:
    response = Client().get("/login/")
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert len(response["X-Request-Id"]) >= 8
    assert "<script>" not in response.content.decode()


def test_admin_static_files_are_served() -> None:
    response = Client().get("/static/admin/css/base.css")
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("role", "admitted"), [(Role.ADMIN, True), (Role.AUDITOR, True), (Role.MEMBER, False)]
)
def test_the_admin_sign_in_admits_org_admins_and_auditors_only(role: str, admitted: bool) -> None:
    # Org admins and auditors are not staff: the admin's own form would refuse them all.
    user = UserFactory(username=f"person-{role}")
    MembershipFactory(user=user, organization=OrganizationFactory(login="acme"), role=role)
    client = Client(REMOTE_ADDR="192.0.2.7")  # its own address for the sign-in throttle
    response = client.post(
        "/admin/login/?next=/admin/", {"username": user.username, "password": PASSWORD}
    )
    assert ("_auth_user_id" in client.session) is admitted
    if admitted:
        assert response.status_code == 302 and response["Location"] == "/admin/"
        assert "Your organizations" in client.get("/admin/").content.decode()
    else:
        assert "of an organization admin or auditor" in response.content.decode()
