"""`fn::open::vault-login` against a local Vault JWT auth method that verifies the ID token."""

from __future__ import annotations

import dataclasses
import json
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from rest_framework.test import APIClient

from devtools.issuer import DevIssuer, SigningKey
from environments.models import CredentialIssuance, Outcome
from environments.providers.base import ProviderError
from environments.providers.common import (
    ENDPOINT_NOT_ALLOWED,
    INVALID_ARGUMENTS,
    REFUSED,
    UNREACHABLE,
)
from environments.providers.vault import vault_login
from issuers.services import Outbound
from kernel.config import load_config
from tests.conftest import auth
from tests.environments.cloud_servers import (
    FakeVault,
    Portal,
    Reply,
    Request,
    TrustedIssuer,
    VaultRole,
    closed_port_url,
    subject,
)
from tests.environments.conftest import exchange, make_environment, trust_local_issuer
from trustportal.models import Organization

DEPLOY = VaultRole(bound_audiences=("acme",), bound_subject=subject(), policies=("deploy",))


@pytest.fixture
def portal(_issuer_key: SigningKey) -> Iterator[Portal]:
    with Portal(_issuer_key) as running:
        yield running


@pytest.fixture
def vault(portal: Portal) -> Iterator[FakeVault]:
    with FakeVault(portal, {"deploy": DEPLOY}) as running:
        yield running


def login(portal: Portal, address: str, *, endpoints: str | None = None, **args: Any) -> Any:
    arguments: dict[str, Any] = {"address": address, "jwt": {"role": "deploy"}, **args}
    return vault_login(portal.context(endpoints=endpoints), arguments)


def refused(call: Any) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        call()
    return caught.value


def lookup_self(vault: FakeVault, token: str, namespace: str | None = None) -> Any:
    headers = {"X-Vault-Token": token, **({"X-Vault-Namespace": namespace} if namespace else {})}
    request = urllib.request.Request(f"{vault.url}/v1/auth/token/lookup-self", headers=headers)
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())["data"]


def test_login_returns_a_vault_token_that_works(portal: Portal, vault: FakeVault) -> None:
    before = datetime.now(UTC)

    credentials = login(portal, vault.url)

    # The request is the documented one: JSON {role, jwt} with the token minted for `acme`.
    (request,) = vault.requests
    assert (request.method, request.path, request.content_type) == (
        "POST",
        "/v1/auth/jwt/login",
        "application/json",
    )
    assert request.json() == {"role": "deploy", "jwt": portal.tokens[0]}
    assert [r.audience for r in portal.minted] == ["acme"]
    assert set(credentials.values) == {"address", "token"}
    assert credentials.values["address"] == vault.url
    data = lookup_self(vault, credentials.values["token"])
    assert data["policies"] == ["default", "deploy"]
    assert data["display_name"] == f"jwt-{subject()}"
    assert credentials.role == "deploy"
    assert credentials.details["policies"] == ["default", "deploy"]
    assert credentials.expires_at is not None
    assert before + timedelta(seconds=3590) < credentials.expires_at
    assert credentials.expires_at < datetime.now(UTC) + timedelta(seconds=3601)


def test_a_namespace_is_sent_as_header_and_returned(portal: Portal) -> None:
    with FakeVault(portal, {"deploy": DEPLOY}, namespace="admin/team", mount="ci/jwt") as vault:
        credentials = vault_login(
            portal.context(),
            {
                "address": vault.url + "/",
                "namespace": "admin/team",
                "jwt": {"role": "deploy", "mount": "ci/jwt"},
            },
        )
        assert credentials.values["namespace"] == "admin/team"
        assert lookup_self(vault, credentials.values["token"], "admin/team")["meta"] == {
            "role": "deploy"
        }
        assert vault.requests[0].path == "/v1/auth/ci/jwt/login"
        assert vault.requests[0].headers["x-vault-namespace"] == "admin/team"

        # Without the namespace Vault has no such route, and says so.
        error = refused(
            lambda: vault_login(
                portal.context(),
                {"address": vault.url, "jwt": {"role": "deploy", "mount": "ci/jwt"}},
            )
        )
        assert error.reason == REFUSED
        assert "HTTP 404" in error.message and "no handler for route" in error.message


def test_subject_attributes_reach_the_subject_vault_binds(portal: Portal) -> None:
    custom = (
        "pulumi:environments:pulumi.organization.login:acme"
        ":currentEnvironment.name:app/dev:pulumi.user.login:alice"
    )
    roles = {"deploy": VaultRole(bound_audiences=("acme",), bound_subject=custom)}
    with FakeVault(portal, roles) as vault:
        attributes = ["currentEnvironment.name", "pulumi.user.login"]
        credentials = login(
            portal, vault.url, jwt={"role": "deploy", "subjectAttributes": attributes}
        )
        assert credentials.values["token"].startswith("hvs.")
        assert portal.minted[0].subject_attributes == tuple(attributes)

        # The default subject does not match a role bound to the custom one.
        error = refused(lambda: login(portal, vault.url))
        assert "sub claim does not match bound subject" in error.message


@pytest.mark.parametrize(
    ("role", "clock", "message"),
    [
        (VaultRole(("vault:acme",), bound_subject=subject()), 0, "invalid audience"),
        (VaultRole(("acme",), bound_subject=subject("acme", "app/prod")), 0, "sub"),
        (DEPLOY, -2, "token is expired"),
    ],
    ids=["wrong audience", "wrong subject", "expired token"],
)
def test_vault_refusals_carry_vaults_message(
    portal: Portal, role: VaultRole, clock: int, message: str
) -> None:
    portal.clock_offset = timedelta(hours=clock)
    with FakeVault(portal, {"deploy": role}) as vault:
        error = refused(lambda: login(portal, vault.url))
    assert error.reason == REFUSED
    assert error.message.startswith("Vault refused the request (HTTP 400): error validating")
    assert message in error.message
    assert portal.tokens[0] not in error.message


def test_an_unknown_role_is_vaults_error(portal: Portal, vault: FakeVault) -> None:
    error = refused(lambda: login(portal, vault.url, jwt={"role": "admin"}))
    assert error.message == 'Vault refused the request (HTTP 400): role "admin" could not be found'


def test_a_token_echoed_in_an_error_is_scrubbed(portal: Portal) -> None:
    class Echoing(FakeVault):
        def handle(self, request: Request, path: str) -> Reply:
            jwt = request.json()["jwt"]
            return Reply.json(400, {"errors": [f"cannot parse {jwt}", f"raw: {jwt[-20:]}x"]})

    with Echoing(portal, {}) as vault:
        error = refused(lambda: login(portal, vault.url))
    token = portal.tokens[0]
    assert token not in error.message
    assert token.split(".")[2] not in error.message
    assert "cannot parse [redacted]" in error.message


def test_server_down_is_a_clear_error(portal: Portal) -> None:
    address = closed_port_url()
    error = refused(lambda: login(portal, address))
    assert error.reason == UNREACHABLE
    assert error.message.startswith(f"could not reach Vault at {address}/v1/auth/jwt/login: ")
    assert "could not connect" in error.message


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (Reply(200, b"<html>maintenance</html>", "text/html"), "not JSON"),
        (Reply(200, b"{" + b'"a": 1,' * 40_000 + b'"b": 2}'), "the limit is 262144 bytes"),
        (Reply(200, b'{"auth": {"client_token": 7}}'), "has no client_token"),
        (Reply(200, b'{"auth": {"client_token": "x", "lease": 1}, "auth": {}}'), "not JSON"),
        (Reply(502, b"<html>bad gateway</html>", "text/html"), "HTTP 502"),
    ],
    ids=["html", "oversized", "no token", "duplicate keys", "gateway error"],
)
def test_unusable_answers_are_clear_errors(
    portal: Portal, vault: FakeVault, reply: Reply, message: str
) -> None:
    vault.canned["/v1/auth/jwt/login"] = reply
    error = refused(lambda: login(portal, vault.url))
    assert message in error.message
    assert "Traceback" not in error.message


def test_an_address_not_listed_is_refused_before_minting(portal: Portal, vault: FakeVault) -> None:
    error = refused(lambda: login(portal, vault.url, endpoints=""))
    assert error.reason == ENDPOINT_NOT_ALLOWED
    assert error.message == (
        f"vault-login.address: {vault.url} is not allowed: Vault has no official endpoint, "
        "and it is not in the portal's list of provider endpoints "
        "(TRUSTPORTAL_PROVIDER_ENDPOINTS); ask the portal's operator to add it"
    )
    assert vault.requests == [] and portal.minted == []


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"jwt": {"role": "deploy"}}, "vault-login.address is required"),
        ({"address": "https://v.example.com/v1", "jwt": {"role": "r"}}, "without a path"),
        ({"address": "https://v.example.com?x=1", "jwt": {"role": "r"}}, "a query"),
        ({"address": "ftp://v.example.com", "jwt": {"role": "r"}}, "https:// URL"),
        ({"address": "https://u@v.example.com", "jwt": {"role": "r"}}, "user name"),
        ({"address": "https://v.example.com"}, "vault-login.jwt is required"),
        ({"address": "https://v.example.com", "jwt": {}}, "vault-login.jwt.role is required"),
        ({"address": "https://v.example.com", "jwt": {"role": "a b"}}, "without spaces"),
        ({"address": "https://v.example.com", "jwt": {"role": "r", "mount": "../sys"}}, "mount"),
        ({"address": "https://v.example.com", "jwt": "deploy"}, "takes a mapping"),
        ({"address": "https://v.example.com", "token": {}}, "vault-login.token is not supported"),
        ({"address": "https://v.example.com", "jwt": {"role": "r"}, "roles": 1}, "not a known"),
        (
            {"address": "https://v.example.com", "jwt": {"role": "r", "subjectAttributes": "x"}},
            "must be a list",
        ),
        ({"address": "https://v.example.com", "namespace": "a b", "jwt": {"role": "r"}}, "path"),
        ("deploy", "vault-login takes a mapping of arguments, not a string"),
    ],
)
def test_bad_arguments_are_refused_before_minting(
    portal: Portal, arguments: Any, message: str
) -> None:
    error = refused(lambda: vault_login(portal.context(), arguments))
    assert error.reason == INVALID_ARGUMENTS
    assert message in error.message
    assert portal.minted == []


VAULT_YAML = """\
values:
  vault:
    login:
      fn::open::vault-login:
        address: {address}
        jwt:
          role: deploy
  environmentVariables:
    VAULT_ADDR: ${{vault.login.address}}
    VAULT_TOKEN: ${{vault.login.token}}
"""


@pytest.mark.django_db(transaction=True)
def test_the_portals_own_id_token_logs_in_through_the_esc_api(
    live_server: Any,
    settings: Any,
    allow_local_issuers: None,
    org: Organization,
    local_issuer: DevIssuer,
    outbound: Outbound,
) -> None:
    """Full stack: the real minter signs, Vault fetches the real `/oidc/.well-known/jwks`."""
    issuer = f"{live_server.url}/oidc"
    settings.TRUSTPORTAL = dataclasses.replace(settings.TRUSTPORTAL, oidc_issuer_url=issuer)
    trusted = TrustedIssuer(url=issuer, jwks_url=f"{issuer}/.well-known/jwks")
    with FakeVault(trusted, {"deploy": DEPLOY}) as vault:
        # The operator lists the Vault; the issuer networks alone would not let it be reached.
        settings.TRUSTPORTAL = dataclasses.replace(
            settings.TRUSTPORTAL,
            provider_endpoints=load_config(
                {"TRUSTPORTAL_ENV": "test", "TRUSTPORTAL_PROVIDER_ENDPOINTS": vault.url}
            ).provider_endpoints,
        )
        trust_local_issuer(org, local_issuer, outbound)
        client = auth(APIClient(), exchange(APIClient(), local_issuer))
        make_environment(org, text=VAULT_YAML.format(address=vault.url))

        opened = client.post("/api/esc/environments/acme/app/dev/open")
        assert opened.status_code == 200, opened.json()
        read = client.get(f"/api/esc/environments/acme/app/dev/open/{opened.json()['id']}")
        variables = read.json()["properties"]["environmentVariables"]["value"]
        token = variables["VAULT_TOKEN"]
        assert token["secret"] is True
        assert lookup_self(vault, token["value"])["policies"] == ["default", "deploy"]
        assert variables["VAULT_ADDR"]["value"] == vault.url

    issuance = CredentialIssuance.objects.get()
    assert (issuance.provider, issuance.outcome, issuance.role) == (
        "vault-login",
        Outcome.OK,
        "deploy",
    )
    assert (issuance.audience, issuance.subject) == ("acme", subject())
