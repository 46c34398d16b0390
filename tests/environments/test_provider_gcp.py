"""`fn::open::gcp-login` against local Google STS and IAM Credentials that verify the ID token."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devtools.issuer import SigningKey
from environments.providers.base import ProviderError
from environments.providers.common import (
    BAD_ANSWER,
    ENDPOINT_NOT_ALLOWED,
    INVALID_ARGUMENTS,
    REFUSED,
    UNREACHABLE,
)
from environments.providers.gcp import gcp_login
from tests.environments.cloud_servers import (
    ACCESS_TOKEN_TYPE,
    CLOUD_PLATFORM,
    JWT_TYPE,
    TOKEN_EXCHANGE,
    FakeGoogle,
    Portal,
    Reply,
    closed_port_url,
    subject,
)

SERVICE_ACCOUNT = "deploy@my-project.iam.gserviceaccount.com"
AUDIENCE = (
    "//iam.googleapis.com/projects/123456789012/locations/global"
    "/workloadIdentityPools/portal/providers/portal-oidc"
)


@pytest.fixture
def portal(_issuer_key: SigningKey) -> Iterator[Portal]:
    with Portal(_issuer_key) as running:
        yield running


@pytest.fixture
def google(portal: Portal) -> Iterator[FakeGoogle]:
    fake = FakeGoogle(
        portal,
        project="123456789012",
        pool="portal",
        provider="portal-oidc",
        allowed_audiences=["gcp:acme"],
        service_accounts={SERVICE_ACCOUNT: [subject()]},
    )
    with fake:
        yield fake


def arguments(google_url: str, **oidc: Any) -> dict[str, Any]:
    return {
        "project": 123456789012,  # YAML reads the project number as an integer
        "oidc": {
            "workloadPoolId": "portal",
            "providerId": "portal-oidc",
            "serviceAccount": SERVICE_ACCOUNT,
            **oidc,
        },
        "stsEndpoint": google_url,
        "iamCredentialsEndpoint": google_url + "/",
    }


def refused(call: Any) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        call()
    return caught.value


def test_federation_then_impersonation_returns_the_service_accounts_token(
    portal: Portal, google: FakeGoogle
) -> None:
    credentials = gcp_login(portal.context(), arguments(google.url, tokenLifetime="30m"))

    assert set(credentials.values) == {"project", "accessToken", "expiry", "tokenType"}
    assert credentials.values["project"] == "123456789012"
    assert credentials.values["tokenType"] == "Bearer"
    assert google.access_tokens[credentials.values["accessToken"]] == SERVICE_ACCOUNT
    assert credentials.role == SERVICE_ACCOUNT
    assert credentials.expires_at is not None
    expected = datetime.now(UTC) + timedelta(minutes=30)
    assert abs(credentials.expires_at - expected) < timedelta(seconds=10)
    assert credentials.values["expiry"] == credentials.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")

    exchange, generate = google.requests
    assert exchange.path == "/v1/token"
    assert exchange.content_type == "application/x-www-form-urlencoded"
    assert exchange.form() == {
        "grant_type": TOKEN_EXCHANGE,
        "audience": AUDIENCE,
        "scope": CLOUD_PLATFORM,
        "requested_token_type": ACCESS_TOKEN_TYPE,
        "subject_token_type": JWT_TYPE,
        "subject_token": portal.tokens[0],
    }
    assert generate.path == f"/v1/projects/-/serviceAccounts/{SERVICE_ACCOUNT}:generateAccessToken"
    assert generate.headers["authorization"].removeprefix("Bearer ") in google.federated
    assert generate.json() == {"scope": [CLOUD_PLATFORM], "lifetime": "1800s"}
    assert [r.audience for r in portal.minted] == ["gcp:acme"]


def test_without_a_service_account_the_federated_token_is_returned(
    portal: Portal, google: FakeGoogle
) -> None:
    args = arguments(google.url, region="europe-west1")
    del args["oidc"]["serviceAccount"]

    credentials = gcp_login(portal.context(), args)

    assert google.federated[credentials.values["accessToken"]] == subject()
    assert credentials.values["region"] == "europe-west1"
    assert credentials.role == AUDIENCE
    assert [r.path for r in google.requests] == ["/v1/token"]


def test_a_wrong_audience_is_googles_invalid_grant(portal: Portal, google: FakeGoogle) -> None:
    google.allowed_audiences = ("gcp:other-org",)
    error = refused(lambda: gcp_login(portal.context(), arguments(google.url)))
    assert error.reason == REFUSED
    assert error.message == (
        "Google STS refused the request (HTTP 400): invalid_grant: "
        "The ID Token was rejected: invalid audience (aud) claim."
    )
    assert len(google.requests) == 1  # no impersonation after a failed exchange


def test_a_wrong_pool_is_googles_invalid_target(portal: Portal, google: FakeGoogle) -> None:
    error = refused(
        lambda: gcp_login(portal.context(), arguments(google.url, workloadPoolId="other"))
    )
    assert "invalid_target" in error.message and "audience" in error.message


def test_an_ungranted_service_account_is_permission_denied(
    portal: Portal, google: FakeGoogle
) -> None:
    google.service_accounts = {SERVICE_ACCOUNT: (subject("acme", "app/prod"),)}
    error = refused(lambda: gcp_login(portal.context(), arguments(google.url)))
    assert error.message.startswith(
        "Google IAM Credentials refused the request (HTTP 403): PERMISSION_DENIED: "
        "Permission 'iam.serviceAccounts.getAccessToken' denied"
    )


def test_an_expired_id_token_is_refused_by_sts(portal: Portal, google: FakeGoogle) -> None:
    portal.clock_offset = -timedelta(hours=2)
    error = refused(lambda: gcp_login(portal.context(), arguments(google.url)))
    assert "token is expired" in error.message


def test_server_down_is_a_clear_error(portal: Portal) -> None:
    url = closed_port_url()
    error = refused(lambda: gcp_login(portal.context(), arguments(url)))
    assert error.reason == UNREACHABLE
    assert error.message.startswith(f"could not reach Google STS at {url}/v1/token: ")


@pytest.mark.parametrize(
    ("path", "reply", "message"),
    [
        (
            "/v1/token",
            Reply(200, b"ok", "text/plain"),
            "Google STS sent an answer that is not JSON",
        ),
        ("/v1/token", Reply(200, b"[" + b"1," * 200_000 + b"1]"), "the limit is 262144 bytes"),
        ("/v1/token", Reply(200, b'{"access_token": "x"}'), "no valid expires_in"),
        (
            "/v1/token",
            Reply(503, b"<html>", "text/html"),
            "Google STS refused the request (HTTP 503)",
        ),
        (
            f"/v1/projects/-/serviceAccounts/{SERVICE_ACCOUNT}:generateAccessToken",
            Reply(200, b'{"accessToken": "x", "expireTime": "tomorrow"}'),
            "no valid expiry time",
        ),
    ],
    ids=["text", "oversized", "no expiry", "unavailable", "bad expireTime"],
)
def test_unusable_answers_are_clear_errors(
    portal: Portal, google: FakeGoogle, path: str, reply: Reply, message: str
) -> None:
    google.canned[path] = reply
    error = refused(lambda: gcp_login(portal.context(), arguments(google.url)))
    assert message in error.message


def test_an_endpoint_not_listed_is_refused_before_minting(
    portal: Portal, google: FakeGoogle
) -> None:
    context = portal.context(endpoints="")
    error = refused(lambda: gcp_login(context, arguments(google.url)))
    assert error.reason == ENDPOINT_NOT_ALLOWED
    assert error.message.startswith(f"gcp-login.stsEndpoint: {google.url} is not an official ")
    assert "TRUSTPORTAL_PROVIDER_ENDPOINTS" in error.message
    assert google.requests == [] and portal.minted == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"project": "my-project"}, "gcp-login.project must be the numeric project number"),
        ({"project": None}, "gcp-login.project is required"),
        ({"oidc": None}, "gcp-login.oidc takes a mapping"),
        ({"static": {}}, "gcp-login.static is not supported"),
        ({"oidc": {"providerId": "prov-1"}}, "gcp-login.oidc.workloadPoolId is required"),
        ({"oidc": {"workloadPoolId": "Portal", "providerId": "prov-1"}}, "workload identity pool"),
        (
            {"oidc": {"workloadPoolId": "pool", "providerId": "prov-1", "serviceAccount": "me"}},
            "service account e-mail",
        ),
        (
            {"oidc": {"workloadPoolId": "pool", "providerId": "prov-1", "tokenLifetime": "13h"}},
            "between 10m and 12h",
        ),
        (
            {"oidc": {"workloadPoolId": "pool", "providerId": "prov-1", "tokenLifetime": "soon"}},
            "must be a duration",
        ),
        ({"stsEndpoint": "sts.googleapis.com"}, "https:// URL"),
    ],
)
def test_bad_arguments_are_refused_before_minting(
    portal: Portal, change: dict[str, Any], message: str
) -> None:
    args = {**arguments("https://sts.googleapis.com"), **change}
    args = {key: value for key, value in args.items() if value is not None or key == "oidc"}
    error = refused(lambda: gcp_login(portal.context(), args))
    assert error.reason == INVALID_ARGUMENTS
    assert message in error.message
    assert portal.minted == []


def test_a_missing_access_token_is_a_bad_answer(portal: Portal, google: FakeGoogle) -> None:
    google.canned["/v1/token"] = Reply(200, b'{"expires_in": 3600}')
    error = refused(lambda: gcp_login(portal.context(), arguments(google.url)))
    assert (error.reason, error.message) == (BAD_ANSWER, "Google STS's answer has no access_token")
