"""The policy API: get, patch with versions and If-Match, simulate, replay, rollback, roles."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pulumi_cloud_sdk import ApiClient, Configuration
from pulumi_cloud_sdk.apis import OrganizationsApi
from pulumi_cloud_sdk.models import AuthPolicyDefinition, AuthPolicyUpdateRequest

from policies.models import AuthPolicy, AuthPolicyVersion
from policies.registration import issuer_register
from policies.samples import SAMPLES_DIR
from tests.conftest import auth
from tests.factories import (
    MembershipFactory,
    OrganizationFactory,
    TeamFactory,
    UserFactory,
    make_token,
)
from tests.tokens.conftest import AUDIENCE, DEFAULT_POLICY, exchange_body
from trustportal.models import Role

CLAIMS_DIR = SAMPLES_DIR
ALLOW_MAIN = {
    "decision": "allow",
    "tokenType": "organization",
    "authorizedPermissions": ["admin"],
    "rules": {"sub": "repo:acme/infra:ref:refs/heads/main", "repository_owner_id": "88310"},
}
DENY_PR = {
    "decision": "deny",
    "tokenType": "organization",
    "authorizedPermissions": ["admin"],
    "rules": {"event_name": "pull_request"},
}


@pytest.fixture
def policy(org, local_issuer, outbound) -> AuthPolicy:
    issuer = issuer_register(organization=org, url=local_issuer.url, outbound=outbound)
    return AuthPolicy.objects.get(issuer=issuer)


@pytest.fixture
def admin(api_client, org):
    return auth(api_client, make_token("organization", organization=org, permission="admin"))


pytestmark = pytest.mark.django_db


def test_new_issuer_starts_with_an_empty_policy(admin, policy) -> None:
    body = admin.get(f"/api/orgs/acme/auth/policies/oidcissuers/{policy.issuer_id}").json()
    assert body["id"] == str(policy.pk)
    assert body["version"] == 1 and body["policies"] == []
    assert set(body) >= {"id", "version", "created", "modified", "policies"}


def test_patch_saves_a_new_version_in_order(admin, policy) -> None:
    url = f"/api/orgs/acme/auth/policies/{policy.pk}"
    definitions = [ALLOW_MAIN, DENY_PR]
    response = admin.patch(url, {"policies": definitions}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["version"] == 2
    assert response.json()["policies"] == definitions
    reversed_ = admin.patch(url, {"policies": definitions[::-1]}, format="json").json()
    assert reversed_["version"] == 3 and reversed_["policies"] == definitions[::-1]
    versions = admin.get(url + "/versions").json()["versions"]
    assert [v["version"] for v in versions] == [3, 2, 1]
    assert versions[0]["createdByToken"].startswith("tpo_")


def test_if_match_refuses_a_stale_write(admin, policy) -> None:
    url = f"/api/orgs/acme/auth/policies/{policy.pk}"
    ok = admin.patch(url, {"policies": [ALLOW_MAIN]}, format="json", HTTP_IF_MATCH="1")
    assert ok.status_code == 200
    stale = admin.patch(url, {"policies": [DENY_PR]}, format="json", HTTP_IF_MATCH="1")
    assert stale.status_code == 412
    assert stale.json()["code"] == 412 and "version 2" in stale.json()["message"]
    assert AuthPolicy.objects.get().definitions == [ALLOW_MAIN]


@pytest.mark.parametrize(
    ("definitions", "path"),
    [
        ([{**ALLOW_MAIN, "colour": "red"}], "policies[0]"),
        ([{**ALLOW_MAIN, "rules": {"sub": "repo:\\x"}}], "policies[0].rules"),
        (
            [{"decision": "allow", "tokenType": "team", "rules": {"sub": "x"}}],
            "policies[0].teamName",
        ),
        (
            [
                {
                    "decision": "allow",
                    "tokenType": "team",
                    "teamName": "ghost",
                    "rules": {"sub": "x"},
                }
            ],
            "policies[0].teamName",
        ),
        (
            [
                {
                    "decision": "allow",
                    "tokenType": "personal",
                    "userLogin": "nobody",
                    "rules": {"sub": "x"},
                }
            ],
            "policies[0].userLogin",
        ),
        ([ALLOW_MAIN] * 1001, "policies"),
        ("not a list", "policies"),
    ],
)
def test_invalid_definitions_are_400_with_field_errors(admin, policy, definitions, path) -> None:
    response = admin.patch(
        f"/api/orgs/acme/auth/policies/{policy.pk}", {"policies": definitions}, format="json"
    )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == 400
    assert any(e["path"].startswith(path) for e in body["errors"]), body
    assert AuthPolicy.objects.get().version == 1


def test_existing_team_and_wildcards_are_accepted(admin, org, policy) -> None:
    TeamFactory(organization=org, name="platform")
    definitions = [
        {
            "decision": "allow",
            "tokenType": "team",
            "teamName": "platform",
            "rules": {"sub": "repo:acme/*"},
        },
        {
            "decision": "allow",
            "tokenType": "team",
            "teamName": "plat*",
            "rules": {"sub": "repo:acme/*"},
        },
    ]
    response = admin.patch(
        f"/api/orgs/acme/auth/policies/{policy.pk}", {"policies": definitions}, format="json"
    )
    assert response.status_code == 200, response.json()


def test_lint_warnings_never_block(admin, policy) -> None:
    risky = {
        "decision": "allow",
        "tokenType": "organization",
        "authorizedPermissions": ["admin"],
        "rules": {"sub": "*"},
    }
    response = admin.patch(
        f"/api/orgs/acme/auth/policies/{policy.pk}", {"policies": [risky]}, format="json"
    )
    assert response.status_code == 200
    codes = {w["code"] for w in response.json()["warnings"]}
    assert "sub_matches_any_repository" in codes


def test_rollback_saves_an_earlier_version_as_new(admin, policy) -> None:
    url = f"/api/orgs/acme/auth/policies/{policy.pk}"
    admin.patch(url, {"policies": [ALLOW_MAIN]}, format="json")
    admin.patch(url, {"policies": [DENY_PR]}, format="json")
    response = admin.post(url + "/versions/2/rollback")
    assert response.status_code == 200
    assert response.json()["version"] == 4 and response.json()["policies"] == [ALLOW_MAIN]
    assert AuthPolicyVersion.objects.get(policy=policy, version=4).note == "rollback to version 2"
    assert admin.post(url + "/versions/99/rollback").status_code == 404


def fixture_claims(name: str) -> dict[str, Any]:
    return json.loads((CLAIMS_DIR / f"{name}.json").read_text())


def test_simulate_with_claims_and_a_draft(admin, policy) -> None:
    url = f"/api/orgs/acme/auth/policies/{policy.pk}/simulate"
    claims = fixture_claims("github-actions")
    current = admin.post(url, {"claims": claims, "scope": "admin"}, format="json").json()
    assert current["decision"] == "deny" and current["reason"] == "no_matching_policy"
    draft = admin.post(
        url, {"claims": claims, "scope": "admin", "policies": [DENY_PR, ALLOW_MAIN]}, format="json"
    ).json()
    assert draft["decision"] == "allow" and draft["definitionIndex"] == 1
    assert draft["wouldMint"]["permission"] == "admin"
    assert draft["wouldMint"]["expiresIn"] == 7200
    rules = draft["trace"][1]["rules"]
    assert {r["claim"]: r["matched"] for r in rules} == {"sub": True, "repository_owner_id": True}
    assert draft["trace"][0]["applies"] is False
    pr = admin.post(
        url,
        {
            "claims": fixture_claims("github-actions-pull-request"),
            "scope": "admin",
            "policies": [ALLOW_MAIN, DENY_PR],
        },
        format="json",
    ).json()
    assert pr["decision"] == "deny"


def test_simulate_with_a_token_and_signature_check(admin, policy, local_issuer) -> None:
    url = f"/api/orgs/acme/auth/policies/{policy.pk}/simulate"
    token = local_issuer.mint(audience=AUDIENCE)
    body = {"token": token, "verifySignature": True, "policies": [ALLOW_MAIN], "scope": "admin"}
    result = admin.post(url, body, format="json").json()
    assert result["signature"] == "valid" and result["decision"] == "allow"
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    result = admin.post(url, {**body, "token": tampered}, format="json").json()
    assert result["signature"].startswith("invalid")
    unchecked = admin.post(url, {**body, "verifySignature": False}, format="json").json()
    assert unchecked["signature"] == "not_checked"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"claims": "x"},
        {"token": "not.a.jwt!"},
        {"claims": {}, "tokenType": "root"},
        {"claims": {}, "tokenType": "team", "scope": "platform"},
        {"claims": {}, "policies": [{"decision": "maybe"}]},
    ],
)
def test_simulate_bad_input_is_400(admin, policy, body) -> None:
    response = admin.post(f"/api/orgs/acme/auth/policies/{policy.pk}/simulate", body, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == 400


def test_replay_shows_changed_outcomes(
    admin, org, policy, local_issuer, allow_local_issuers, api_client
) -> None:
    TeamFactory(organization=org, name="platform")
    MembershipFactory(organization=org, user=UserFactory(username="octocat"), role=Role.MEMBER)
    url = f"/api/orgs/acme/auth/policies/{policy.pk}"
    admin.patch(url, {"policies": DEFAULT_POLICY}, format="json")
    from rest_framework.test import APIClient

    client = APIClient()
    main = local_issuer.mint(audience=AUDIENCE)
    pr = local_issuer.mint({"event_name": "pull_request"}, audience=AUDIENCE)
    assert (
        client.post(
            "/api/oauth/token", exchange_body(main, scope="admin"), format="json"
        ).status_code
        == 200
    )
    assert (
        client.post("/api/oauth/token", exchange_body(pr, scope="admin"), format="json").status_code
        == 400
    )
    client.post("/api/oauth/token", exchange_body("garbage"), format="json")  # not evaluated
    draft = [DENY_PR]  # nothing allowed any more
    result = admin.post(url + "/replay", {"policies": draft}, format="json").json()
    assert result["replayed"] == 2
    assert len(result["changed"]) == 1
    change = result["changed"][0]
    assert change["current"]["decision"] == "allow" and change["draft"]["decision"] == "deny"
    assert (
        admin.post(url + "/replay", {"policies": draft, "limit": 0}, format="json").status_code
        == 400
    )


def test_roles_and_tenancy(api_client, org, policy) -> None:
    auditor = UserFactory(username="aud")
    MembershipFactory(organization=org, user=auditor, role=Role.AUDITOR)
    url = f"/api/orgs/acme/auth/policies/{policy.pk}"
    auth(api_client, make_token("personal", user=auditor))
    assert (
        api_client.get(f"/api/orgs/acme/auth/policies/oidcissuers/{policy.issuer_id}").status_code
        == 200
    )
    assert api_client.post(url + "/simulate", {"claims": {}}, format="json").status_code == 200
    assert api_client.patch(url, {"policies": []}, format="json").status_code == 403
    assert api_client.post(url + "/versions/1/rollback").status_code == 403
    auth(api_client, make_token("organization", organization=org, permission="standard"))
    assert api_client.get(url + "/versions").status_code == 403
    other = OrganizationFactory(login="other")
    auth(api_client, make_token("organization", organization=other, permission="admin"))
    for method, path in [
        ("get", f"/api/orgs/acme/auth/policies/oidcissuers/{policy.issuer_id}"),
        ("get", f"/api/orgs/other/auth/policies/oidcissuers/{policy.issuer_id}"),
        ("patch", f"/api/orgs/other/auth/policies/{policy.pk}"),
        ("post", f"/api/orgs/other/auth/policies/{policy.pk}/simulate"),
        ("get", "/api/orgs/other/auth/policies/not-a-uuid/versions"),
    ]:
        response = (
            getattr(api_client, method)(path, {"policies": []}, format="json")
            if method != "get"
            else api_client.get(path)
        )
        assert response.status_code == 404, (method, path)


@pytest.mark.django_db(transaction=True)
def test_round_trip_through_pulumi_cloud_sdk(live_server, local_issuer, outbound) -> None:
    org = OrganizationFactory(login="acme")
    issuer = issuer_register(organization=org, url=local_issuer.url, outbound=outbound)
    config = Configuration()
    config.host = live_server.url
    config.access_token = make_token("organization", organization=org, permission="admin")
    api = OrganizationsApi(ApiClient(config))
    fetched = api.get_auth_policy("acme", str(issuer.pk))
    assert fetched.version == 1 and fetched.policies == []
    definitions = [
        AuthPolicyDefinition(
            decision=d["decision"],
            token_type=d["tokenType"],
            authorized_permissions=d["authorizedPermissions"],
            rules=d["rules"],
        )
        for d in [DENY_PR, ALLOW_MAIN, {**ALLOW_MAIN, "rules": {"sub": "repo:acme/app:*"}}]
    ]
    api.update_auth_policy("acme", fetched.id, AuthPolicyUpdateRequest(policies=definitions))
    again = api.get_auth_policy("acme", str(issuer.pk))
    assert again.version == 2
    assert [(p.decision, p.rules) for p in again.policies] == [
        ("deny", DENY_PR["rules"]),
        ("allow", ALLOW_MAIN["rules"]),
        ("allow", {"sub": "repo:acme/app:*"}),
    ]
