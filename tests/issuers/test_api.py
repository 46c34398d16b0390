"""The issuer REST API: Pulumi paths and shapes, roles, tenant isolation."""

from __future__ import annotations

import pytest

from devtools.issuer import SigningKey
from issuers.models import Issuer
from tests.conftest import auth
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory, make_token
from trustportal.models import Role

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("allow_local_issuers")]


def register(client, org: str, url: str, **extra):
    return client.post(f"/api/orgs/{org}/oidc/issuers", {"url": url, **extra}, format="json")


def test_register_list_get_patch_delete(api_client, org, admin_token, local_issuer) -> None:
    auth(api_client, admin_token)
    response = register(api_client, "acme", local_issuer.url, name="dev", maxExpiration=3600)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert set(body) >= {
        "id",
        "name",
        "url",
        "issuer",
        "thumbprints",
        "jwks",
        "maxExpiration",
        "created",
        "modified",
        "lastUsed",
    }
    assert body["issuer"] == local_issuer.url and body["maxExpiration"] == 3600
    assert body["jwks"] is None and body["lastUsed"] is None
    assert body["keys"][0]["kid"] == "test-key-1"
    issuer_id = body["id"]

    listing = api_client.get("/api/orgs/acme/oidc/issuers").json()
    assert [i["id"] for i in listing["oidcIssuers"]] == [issuer_id]

    detail = api_client.get(f"/api/orgs/acme/oidc/issuers/{issuer_id}").json()
    assert detail["name"] == "dev"

    patched = api_client.patch(
        f"/api/orgs/acme/oidc/issuers/{issuer_id}",
        {"name": "renamed", "maxExpiration": 600, "audiences": ["sts.amazonaws.com"]},
        format="json",
    )
    assert patched.status_code == 200
    assert patched.json()["name"] == "renamed" and patched.json()["audiences"] == [
        "sts.amazonaws.com"
    ]

    assert api_client.delete(f"/api/orgs/acme/oidc/issuers/{issuer_id}").status_code == 204
    assert not Issuer.objects.exists()
    assert api_client.get(f"/api/orgs/acme/oidc/issuers/{issuer_id}").status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"name": "x", "url": "https://changed.example"}, 400, "cannot change"),
        ({"maxExpiration": 600}, 400, "name is required"),
        ({"name": "x", "maxExpiration": 100000}, 400, "between 60 and 90000"),
        ({"name": "x", "enabled": "yes"}, 400, "true or false"),
    ],
)
def test_patch_errors(api_client, org, admin_token, local_issuer, body, status, fragment) -> None:
    auth(api_client, admin_token)
    issuer_id = register(api_client, "acme", local_issuer.url).json()["id"]
    response = api_client.patch(f"/api/orgs/acme/oidc/issuers/{issuer_id}", body, format="json")
    assert response.status_code == status
    assert response.json()["code"] == status and fragment in response.json()["message"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "url is required"),
        ({"url": 5}, "url is required"),
        ({"url": "https://10.0.0.5/"}, "10.0.0.5"),
        ({"url": "ftp://example.com/"}, "ftp"),
    ],
)
def test_register_errors_are_400_json(api_client, org, admin_token, body, fragment) -> None:
    response = auth(api_client, admin_token).post(
        "/api/orgs/acme/oidc/issuers", body, format="json"
    )
    assert response.status_code == 400
    assert response.json()["code"] == 400
    assert fragment in response.json()["message"]


def test_malformed_bodies_never_500(api_client, org, admin_token) -> None:
    auth(api_client, admin_token)
    for raw, ctype in [
        ("[1,2]", "application/json"),
        ("{not json", "application/json"),
        ("x", "text/plain"),
    ]:
        response = api_client.generic("POST", "/api/orgs/acme/oidc/issuers", raw, ctype)
        assert 400 <= response.status_code < 500
        assert response.json()["code"] == response.status_code


def test_static_jwks_registration_and_regenerate_refused(api_client, org, admin_token) -> None:
    auth(api_client, admin_token)
    key = SigningKey.generate("ES256", kid="k8s-1").public_jwk()
    response = register(api_client, "acme", "https://oidc.eks.example/id/1", jwks={"keys": [key]})
    assert response.status_code == 201
    body = response.json()
    assert body["jwks"] == {"keys": [key]}
    refused = api_client.post(f"/api/orgs/acme/oidc/issuers/{body['id']}/regenerate-thumbprints")
    assert refused.status_code == 400 and "static JWKS" in refused.json()["message"]


def test_roles(api_client, org, local_issuer) -> None:
    admin = make_token("organization", organization=org, permission="admin")
    issuer_id = register(auth(api_client, admin), "acme", local_issuer.url).json()["id"]
    auditor = UserFactory(username="audrey")
    MembershipFactory(organization=org, user=auditor, role=Role.AUDITOR)
    member = UserFactory(username="mem")
    MembershipFactory(organization=org, user=member, role=Role.MEMBER)
    cases = {
        "auditor": make_token("personal", user=auditor),
        "standard": make_token("organization", organization=org, permission="standard"),
        "member": make_token("personal", user=member),
    }
    read = {"auditor": 200, "standard": 403, "member": 403}
    for who, token in cases.items():
        auth(api_client, token)
        assert api_client.get("/api/orgs/acme/oidc/issuers").status_code == read[who], who
        assert api_client.get(f"/api/orgs/acme/oidc/issuers/{issuer_id}").status_code == read[who]
        assert register(api_client, "acme", local_issuer.url, name="n2").status_code == 403, who
        assert (
            api_client.patch(
                f"/api/orgs/acme/oidc/issuers/{issuer_id}", {"name": "x"}, format="json"
            ).status_code
            == 403
        )
        assert api_client.delete(f"/api/orgs/acme/oidc/issuers/{issuer_id}").status_code == 403
    assert Issuer.objects.get().name != "x"


def test_cross_org_is_404(api_client, org, local_issuer) -> None:
    admin_a = make_token("organization", organization=org, permission="admin")
    issuer_id = register(auth(api_client, admin_a), "acme", local_issuer.url).json()["id"]
    other = OrganizationFactory(login="other")
    admin_b = make_token("organization", organization=other, permission="admin")
    auth(api_client, admin_b)
    for method, url in [
        ("get", "/api/orgs/acme/oidc/issuers"),
        ("get", f"/api/orgs/acme/oidc/issuers/{issuer_id}"),
        ("get", f"/api/orgs/other/oidc/issuers/{issuer_id}"),
        ("delete", f"/api/orgs/other/oidc/issuers/{issuer_id}"),
        ("post", f"/api/orgs/other/oidc/issuers/{issuer_id}/regenerate-thumbprints"),
        ("get", "/api/orgs/other/oidc/issuers/not-a-uuid"),
    ]:
        response = getattr(api_client, method)(url)
        assert response.status_code == 404, (method, url)
        assert local_issuer.url not in response.content.decode()
    assert Issuer.objects.count() == 1


def test_registration_error_does_not_name_what_a_host_resolves_to(
    api_client, org, admin_token, settings
) -> None:
    import dataclasses

    settings.TRUSTPORTAL = dataclasses.replace(settings.TRUSTPORTAL, issuer_allowed_networks=())
    response = register(auth(api_client, admin_token), "acme", "https://localhost/")
    assert response.status_code == 400
    message = response.json()["message"]
    assert "localhost resolves to a non-public address" in message
    for detail in ("127.0.0.1", "::1", "loopback"):
        assert detail not in message
