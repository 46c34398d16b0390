"""Organization-wide environment access as in Pulumi ESC: the default permission, member creation,
the creator's admin, custom roles for `roleID` tokens, and the audit record of every change."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from audit.models import AuditEvent
from environments import grants
from environments.evaluator import OpenCall, Source, evaluate
from environments.models import Environment
from policies.models import AuthPolicy
from policies.services import policy_update
from tests.conftest import auth
from tests.environments.conftest import exchange, make_environment, trust_local_issuer
from tests.factories import MembershipFactory, make_token
from tests.tokens.conftest import AUDIENCE, DEFAULT_POLICY
from trustportal.models import Organization, Role

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("allow_local_issuers")]

BASE = "/api/esc/environments/acme"
ROLE_POLICY: dict[str, Any] = {
    "decision": "allow",
    "tokenType": "organization",
    "roleID": "deployer",
    "rules": {"sub": "repo:acme/deployer:*", "aud": AUDIENCE},
}


def admin_client(org: Organization) -> APIClient:
    return auth(APIClient(), make_token(organization=org, permission="admin"))


def standard_client(org: Organization) -> APIClient:
    return auth(APIClient(), make_token(organization=org, permission="standard"))


def test_a_standard_token_writes_under_the_default_and_read_refuses_creating(
    org: Organization,
) -> None:
    client = standard_client(org)
    assert client.post(BASE, {"project": "app", "name": "dev"}, format="json").status_code == 200
    saved = client.generic("PATCH", f"{BASE}/app/dev", b"values: {a: 1}\n")
    assert saved.status_code == 200, saved.content
    # The creating token holds admin on what it created (it may delete it).
    assert client.delete(f"{BASE}/app/dev").status_code == 204

    grants.environment_settings_update(organization=org, default_permission="read")
    refused = client.post(BASE, {"project": "app", "name": "dev"}, format="json")
    assert refused.status_code == 403
    make_environment(org, "app", "prod", "values: {a: 1}\n")
    assert client.get(f"{BASE}/app/prod").status_code == 200
    assert client.generic("PATCH", f"{BASE}/app/prod", b"values: {a: 2}\n").status_code == 403

    grants.environment_settings_update(organization=org, default_permission="none")
    assert client.get(f"{BASE}/app/prod").status_code == 404


def test_members_follow_the_default_and_the_creation_setting(org: Organization) -> None:
    member = MembershipFactory(organization=org, role=Role.MEMBER).user
    client = auth(APIClient(), make_token("personal", user=member))
    grants.environment_settings_update(organization=org, members_can_create=False)
    refused = client.post(BASE, {"project": "app", "name": "dev"}, format="json")
    assert refused.status_code == 403
    grants.environment_settings_update(
        organization=org, default_permission="none", members_can_create=True
    )
    assert client.post(BASE, {"project": "app", "name": "dev"}, format="json").status_code == 200
    assert Environment.objects.get(name="dev").created_by == member
    # `none` by default, but the creator is admin on it; others' environments stay hidden.
    assert client.get(f"{BASE}/app/dev/decrypt").status_code == 200
    make_environment(org, "app", "other")
    assert client.get(f"{BASE}/app/other").status_code == 404
    assert [e["name"] for e in client.get(BASE).json()["environments"]] == ["dev"]


def test_settings_api_is_for_admins_and_is_audited(org: Organization) -> None:
    url = "/api/orgs/acme/environments/settings"
    assert (
        standard_client(org).patch(url, {"defaultPermission": "read"}, format="json").status_code
        == 403
    )
    admin = admin_client(org)
    assert admin.get(url).json() == {"defaultPermission": "write", "membersCanCreate": True}
    bad = admin.patch(url, {"defaultPermission": "owner"}, format="json")
    assert bad.status_code == 400 and set(bad.json()) == {"code", "message"}
    changed = admin.patch(
        url, {"defaultPermission": "open", "membersCanCreate": False}, format="json"
    )
    assert changed.json() == {"defaultPermission": "open", "membersCanCreate": False}
    record = AuditEvent.objects.get(event="environment-settings-updated")
    assert record.organization_id == org.pk and "open" in str(record.changes)


def test_every_environment_write_is_audited_without_secrets(org: Organization) -> None:
    client = admin_client(org)
    client.post(BASE, {"project": "app", "name": "dev"}, format="json")
    client.generic("PATCH", f"{BASE}/app/dev", b"values: {pw: {fn::secret: hunter2}}\n")
    client.post(f"{BASE}/app/dev/tags", {"name": "owner", "value": "ops"}, format="json")
    client.post(f"{BASE}/app/dev/versions/tags", {"name": "stable", "revision": 2}, format="json")
    client.delete(f"{BASE}/app/dev")
    # Only the environment writes (creating the admin token the test calls with is recorded too).
    events = list(
        AuditEvent.objects.exclude(event__endswith="token-created")
        .order_by("id")
        .values_list("event", flat=True)
    )
    assert events == [
        "environment-created",
        "environment-updated",
        "tag-created",
        "revision-tag-created",
        "environment-deleted",
    ]
    for record in AuditEvent.objects.all():
        assert "hunter2" not in str(record.changes) and "ciphertext" not in str(record.changes)


def test_a_role_id_token_opens_exactly_the_environments_its_role_names(
    org: Organization, local_issuer: Any, outbound: Any
) -> None:
    issuer = trust_local_issuer(org, local_issuer, outbound)
    policy_update(
        policy=AuthPolicy.objects.get(issuer=issuer), definitions=[ROLE_POLICY, *DEFAULT_POLICY]
    )
    for name in ("prod", "dev"):
        make_environment(org, "app", name, "values: {pw: {fn::secret: s3cret}}\n")
    make_environment(org, "other", "prod", "values: {a: 1}\n")
    claims = {"sub": "repo:acme/deployer:ref:refs/heads/main"}

    # Before the role exists, the token holds nothing (fail closed).
    nothing = auth(APIClient(), exchange(APIClient(), local_issuer, claims=claims))
    assert nothing.get(BASE).json()["environments"] == []

    admin = admin_client(org)
    created = admin.post(
        "/api/orgs/acme/environments/roles",
        {
            "roleID": "deployer",
            "name": "Deployer",
            "scopes": [{"scope": "environment:open", "project": "app", "environment": "prod"}],
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    assert AuditEvent.objects.filter(event="environment-role-saved").count() == 1

    client = auth(APIClient(), exchange(APIClient(), local_issuer, claims=claims))
    listed = client.get(BASE).json()["environments"]
    assert [(e["project"], e["name"]) for e in listed] == [("app", "prod")]
    opened = client.post(f"{BASE}/app/prod/open")
    assert opened.status_code == 200
    read = client.get(f"{BASE}/app/prod/open/{opened.json()['id']}").json()
    assert read["properties"]["pw"]["value"] == "s3cret"
    assert client.post(f"{BASE}/app/dev/open").status_code == 404
    assert client.post(f"{BASE}/other/prod/open").status_code == 404
    assert client.generic("PATCH", f"{BASE}/app/prod", b"values: {}\n").status_code == 403
    assert client.delete(f"{BASE}/app/prod").status_code == 403
    assert client.post(BASE, {"project": "app", "name": "x"}, format="json").status_code == 403

    # Deleting the role takes it away from tokens already minted.
    assert admin.delete("/api/orgs/acme/environments/roles/deployer").status_code == 204
    assert client.post(f"{BASE}/app/prod/open").status_code == 404


def test_roles_are_checked_and_admin_only(org: Organization) -> None:
    url = "/api/orgs/acme/environments/roles"
    body = {"roleID": "r", "name": "R", "scopes": ["environment:read"]}
    assert standard_client(org).post(url, body, format="json").status_code == 403
    admin = admin_client(org)
    for wrong in (
        {**body, "roleID": "admin"},
        {**body, "scopes": ["environment:own"]},
        {**body, "scopes": [{"scope": "environment:read", "environment": "dev"}]},
        {**body, "name": ""},
    ):
        response = admin.post(url, wrong, format="json")
        assert response.status_code == 400 and set(response.json()) == {"code", "message"}
    assert admin.post(url, body, format="json").status_code == 201
    assert admin.get(url).json() == {
        "roles": [{"roleID": "r", "name": "R", "scopes": [{"scope": "environment:read"}]}]
    }


def test_an_inline_reference_opens_the_referenced_environment_with_its_own_identity() -> None:
    """`${environments.p.e.x}` runs p/e's fn::open as p/e, never as the environment opened."""
    calls: list[OpenCall] = []

    def opener(call: OpenCall) -> dict[str, str]:
        calls.append(call)
        return {"token": f"for {call.environment}"}

    creds = Source(
        "infra/creds", "values:\n  login:\n    fn::open::oidc: {audience: a}\n", str, opener
    )

    def load(name: str) -> Source | str:
        return creds if name == "infra/creds" else "environment not found"

    root = Source("app/dev", "values:\n  t: ${environments.infra.creds.login.token}\n", str, opener)
    result = evaluate(root, load)
    assert result.diagnostics == ()
    assert [c.environment for c in calls] == ["infra/creds"]
    assert result.properties["t"].plain(reveal=True) == "for infra/creds"
    assert result.properties["t"].secret is True

    refused = evaluate(root, lambda name: "importing it needs `open` permission on it")
    assert [d.path for d in refused.diagnostics] == ["values.t"]


def test_the_access_page_is_for_admins_to_change(
    org: Organization, client: Any, org_admin: Any
) -> None:
    member = MembershipFactory(organization=org, role=Role.MEMBER).user
    url = "/orgs/acme/environments/settings/"
    client.force_login(member)
    assert client.get(url).status_code in (403, 404)
    client.force_login(org_admin)
    assert client.get(url).status_code == 200
    saved = client.post(url, {"default_permission": "open"})
    assert saved.status_code == 302
    assert AuditEvent.objects.filter(event="environment-settings-updated").count() == 1
    role = client.post(
        url, {"role_id": "ci", "name": "CI", "scopes": "environment:open app/prod\n"}
    )
    assert role.status_code == 302
    assert "environment:open on app/prod" in client.get(url).content.decode()
    bad = client.post(url, {"role_id": "ci", "name": "CI", "scopes": "environment:own"})
    assert bad.status_code == 400
    assert client.post(f"{url}roles/ci/delete/").status_code == 302
    assert "No roles" in client.get(url).content.decode()
