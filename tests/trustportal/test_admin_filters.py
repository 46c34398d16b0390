"""Admin list filters offer only what the signed-in user may read: no other org's names."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.test import Client

from environments.models import Environment
from portal.orgs.admin import OrgScopedAdmin, ScopedUserAdmin
from tests.environments.conftest import make_environment
from tests.factories import PASSWORD, UserFactory, make_event, pass_second_factor
from trustportal.models import Membership, Organization, Role, Team, User

pytestmark = pytest.mark.django_db

SCOPED_ADMINS = sorted(
    (
        f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        for model, model_admin in admin.site._registry.items()
        if isinstance(model_admin, OrgScopedAdmin | ScopedUserAdmin)
    ),
)


@pytest.fixture
def world() -> dict[str, Organization]:
    a = Organization.objects.create(login="visible-org-a")
    b = Organization.objects.create(login="hidden-org-b")
    c = Organization.objects.create(login="visible-org-c")
    for username, organization, role in [
        ("alice", a, Role.ADMIN),
        ("alice", c, Role.ADMIN),
        ("audrey", a, Role.AUDITOR),
        ("bob", b, Role.ADMIN),
    ]:
        user = User.objects.get(username=UserFactory(username=username).username)
        Membership.objects.create(organization=organization, user=user, role=role)
    for organization in (a, b, c):
        Team.objects.create(organization=organization, name=f"team-of-{organization.login}")
        make_environment(organization, project=f"proj-{organization.login}")
        make_event(organization)
    return {"a": a, "b": b, "c": c}


def test_every_scoped_admin_is_checked() -> None:
    assert "/admin/environments/environment/" in SCOPED_ADMINS
    assert "/admin/trustportal/user/" in SCOPED_ADMINS
    assert len(SCOPED_ADMINS) >= 10


@pytest.mark.parametrize("url", SCOPED_ADMINS)
@pytest.mark.parametrize("username", ["alice", "audrey"])
def test_list_pages_name_no_other_organization(world, url: str, username: str) -> None:
    client = Client()
    assert client.login(username=username, password=PASSWORD)
    response = client.get(url)
    assert response.status_code == 200
    page = response.content.decode()
    assert "hidden-org-b" not in page
    assert f"__exact={world['b'].pk}" not in page
    assert "bob" not in page


def test_environment_organization_filter_offers_own_orgs(world) -> None:
    client = Client()
    assert client.login(username="alice", password=PASSWORD)
    page = client.get("/admin/environments/environment/").content.decode()
    # Alice administers A and C: both are offered (Django hides a filter with one choice).
    assert f"organization__id__exact={world['a'].pk}" in page
    assert f"organization__id__exact={world['c'].pk}" in page
    filtered = client.get(
        f"/admin/environments/environment/?organization__id__exact={world['a'].pk}"
    )
    assert "proj-visible-org-a" in filtered.content.decode()
    assert "proj-visible-org-c" not in filtered.content.decode()
    assert Environment.objects.filter(organization=world["b"]).exists()


def test_superuser_filter_offers_every_org(world) -> None:
    UserFactory(username="root")
    User.objects.filter(username="root").update(is_superuser=True, is_staff=True)
    client = Client()
    assert client.login(username="root", password=PASSWORD)
    pass_second_factor(client, "root")
    page = client.get("/admin/environments/environment/").content.decode()
    assert f"organization__id__exact={world['b'].pk}" in page
