"""`fn::open::azure-login` against a local Entra token endpoint that verifies the assertion."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest

from devtools.issuer import SigningKey
from environments.providers.azure import azure_login
from environments.providers.base import ProviderError
from environments.providers.common import (
    ENDPOINT_NOT_ALLOWED,
    INVALID_ARGUMENTS,
    REFUSED,
    UNREACHABLE,
)
from tests.environments.cloud_servers import (
    JWT_BEARER,
    FakeEntra,
    FederatedCredential,
    Portal,
    Reply,
    closed_port_url,
    subject,
)

CLIENT = "11111111-2222-3333-4444-555555555555"
TENANT = "66666666-7777-8888-9999-000000000000"
SUBSCRIPTION = "/subscriptions/aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
TOKEN_PATH = f"/{TENANT}/oauth2/v2.0/token"


@pytest.fixture
def portal(_issuer_key: SigningKey) -> Iterator[Portal]:
    with Portal(_issuer_key) as running:
        yield running


def entra(portal: Portal, *, audience: str = "azure:acme", sub: str | None = None) -> FakeEntra:
    credential = FederatedCredential(portal.url, sub or subject(), (audience,))
    return FakeEntra(portal, tenant=TENANT, apps={CLIENT: [credential]})


@pytest.fixture
def directory(portal: Portal) -> Iterator[FakeEntra]:
    with entra(portal) as running:
        yield running


def arguments(authority: str, **extra: Any) -> dict[str, Any]:
    return {
        "clientId": CLIENT,
        "tenantId": TENANT,
        "subscriptionId": SUBSCRIPTION,
        "oidc": True,
        "authorityHost": authority,
        **extra,
    }


def refused(call: Any) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        call()
    return caught.value


def test_federated_login_returns_the_oidc_token_and_an_access_token(
    portal: Portal, directory: FakeEntra
) -> None:
    credentials = azure_login(portal.context(), arguments(directory.url))

    values = credentials.values
    assert set(values) == {"clientId", "tenantId", "subscriptionId", "oidc", "accessToken"}
    assert (values["clientId"], values["tenantId"], values["subscriptionId"]) == (
        CLIENT,
        TENANT,
        SUBSCRIPTION,
    )
    assert directory.issued[values["accessToken"]] == CLIENT
    assert values["oidc"] == {"token": portal.tokens[0]}
    claims = jwt.decode(values["oidc"]["token"], options={"verify_signature": False})
    assert (claims["aud"], claims["sub"], claims["iss"]) == ("azure:acme", subject(), portal.url)
    # It is an output (ARM_OIDC_TOKEN), so it is minted for the longest lifetime allowed.
    assert claims["exp"] - claims["iat"] == 3600
    assert credentials.role == CLIENT
    assert credentials.expires_at is not None
    expected = datetime.now(UTC) + timedelta(seconds=3599)
    assert abs(credentials.expires_at - expected) < timedelta(seconds=10)

    (request,) = directory.requests
    assert (request.path, request.content_type) == (
        TOKEN_PATH,
        "application/x-www-form-urlencoded",
    )
    assert request.form() == {
        "client_id": CLIENT,
        "grant_type": "client_credentials",
        "client_assertion_type": JWT_BEARER,
        "client_assertion": portal.tokens[0],
        "scope": "https://management.azure.com/.default",
    }


def test_sovereign_clouds_set_authority_and_scope(portal: Portal, directory: FakeEntra) -> None:
    scope = "https://management.usgovcloudapi.net/.default"
    azure_login(portal.context(), arguments(directory.url + "/", scope=scope))
    assert directory.requests[0].form()["scope"] == scope


@pytest.mark.parametrize(
    ("audience", "sub", "message"),
    [
        ("api://AzureADTokenExchange", None, "AADSTS700212"),
        ("azure:acme", subject("acme", "app/prod"), "AADSTS700213"),
    ],
    ids=["wrong audience", "wrong subject"],
)
def test_an_untrusted_assertion_is_entras_invalid_client(
    portal: Portal, audience: str, sub: str | None, message: str
) -> None:
    with entra(portal, audience=audience, sub=sub) as directory:
        error = refused(lambda: azure_login(portal.context(), arguments(directory.url)))
    assert error.reason == REFUSED
    assert error.message.startswith("Microsoft Entra ID refused the request (HTTP 401): ")
    assert "invalid_client: " + message in error.message
    assert portal.tokens[0] not in error.message


def test_an_unknown_application_is_entras_error(portal: Portal, directory: FakeEntra) -> None:
    other = "99999999-2222-3333-4444-555555555555"
    error = refused(lambda: azure_login(portal.context(), arguments(directory.url, clientId=other)))
    assert "unauthorized_client: AADSTS700016" in error.message


def test_server_down_is_a_clear_error(portal: Portal) -> None:
    url = closed_port_url()
    error = refused(lambda: azure_login(portal.context(), arguments(url)))
    assert error.reason == UNREACHABLE
    assert error.message.startswith(f"could not reach Microsoft Entra ID at {url}{TOKEN_PATH}: ")


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (Reply(200, b"<html>sign in</html>", "text/html"), "not JSON"),
        (Reply(200, b'{"access_token": "' + b"a" * 300_000 + b'"}'), "the limit is 262144"),
        (Reply(200, b'{"access_token": "t", "expires_in": "soon"}'), "no valid expires_in"),
        (Reply(200, b'{"access_token": "t", "expires_in": NaN}'), "not JSON"),
    ],
    ids=["html", "oversized", "bad expires_in", "NaN"],
)
def test_unusable_answers_are_clear_errors(
    portal: Portal, directory: FakeEntra, reply: Reply, message: str
) -> None:
    directory.canned[TOKEN_PATH] = reply
    error = refused(lambda: azure_login(portal.context(), arguments(directory.url)))
    assert message in error.message


def test_an_endpoint_not_listed_is_refused_before_minting(
    portal: Portal, directory: FakeEntra
) -> None:
    context = portal.context(endpoints="")
    error = refused(lambda: azure_login(context, arguments(directory.url)))
    assert error.reason == ENDPOINT_NOT_ALLOWED
    assert error.message.startswith(
        f"azure-login.authorityHost: {directory.url} is not an official "
    )
    assert "TRUSTPORTAL_PROVIDER_ENDPOINTS" in error.message
    assert directory.requests == [] and portal.minted == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"oidc": False}, "azure-login.oidc must be true"),
        ({"oidc": None}, "azure-login.oidc must be true"),
        ({"oidc": "yes"}, "must be true or false"),
        ({"clientSecret": "s3cret"}, "azure-login.clientSecret is not supported"),
        ({"clientId": "app"}, "azure-login.clientId must be an application (client) ID GUID"),
        ({"tenantId": "contoso onmicrosoft"}, "azure-login.tenantId must be"),
        ({"subscriptionId": None}, "azure-login.subscriptionId is required"),
        ({"authorityHost": "https://login.microsoftonline.us/common"}, "without a path"),
        ({"scope": "https://graph.microsoft.com"}, "ending in /.default"),
        ({"subjectAttributes": [1.5]}, "azure-login.subjectAttributes[0] must be a string"),
    ],
)
def test_bad_arguments_are_refused_before_minting(
    portal: Portal, change: dict[str, Any], message: str
) -> None:
    args = {**arguments("https://login.microsoftonline.com"), **change}
    error = refused(lambda: azure_login(portal.context(), args))
    assert error.reason == INVALID_ARGUMENTS
    assert message in error.message
    assert "s3cret" not in error.message
    assert portal.minted == []


def test_a_tenant_domain_is_accepted(portal: Portal) -> None:
    directory = FakeEntra(
        portal,
        tenant="contoso.onmicrosoft.com",
        apps={CLIENT: [FederatedCredential(portal.url, subject(), ("azure:acme",))]},
    )
    with directory:
        args = arguments(directory.url, tenantId="contoso.onmicrosoft.com")
        assert azure_login(portal.context(), args).values["tenantId"] == "contoso.onmicrosoft.com"
