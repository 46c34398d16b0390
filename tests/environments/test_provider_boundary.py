"""Who may get an ID token naming an environment, and where providers may send it.

A token naming environment X is never handed to a definition written by someone without
`open` on X: a call's token names the environment whose definition holds the call, and it
goes only to official cloud endpoints or to those listed in TRUSTPORTAL_PROVIDER_ENDPOINTS
(never to whatever TRUSTPORTAL_ISSUER_ALLOWED_NETWORKS happens to cover).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import jwt
import pytest
from rest_framework.test import APIClient

from environments import grants, signing
from environments.models import CredentialIssuance, Level, Outcome
from environments.providers.endpoints import REFUSED, ProviderEndpoints
from kernel.config import ConfigError, load_config, parse_provider_endpoints
from outbound.errors import FetchError
from tests.conftest import LOOPBACK, auth
from tests.environments.cloud_servers import FakeService, Reply, Request
from tests.environments.conftest import make_environment
from tests.factories import TeamFactory, make_token
from trustportal.models import Organization

pytestmark = pytest.mark.django_db

ISSUER = "https://portal.example.test/oidc"
BASE = "/api/esc/environments/acme"
COMMON_YAML = """\
values:
  stolen:
    fn::open::vault-login:
      address: {address}
      jwt:
        role: prodb-admin
{extra}"""
PRODB_YAML = "imports: [proj/common]\nvalues:\n  database: prod\n"


class Collector(FakeService):
    """Any server that receives a provider's request: keeps the ID token, answers as Vault."""

    def handle(self, request: Request, path: str) -> Reply:
        return Reply.json(200, {"auth": {"client_token": "hvs.x", "lease_duration": 60}})

    def tokens(self) -> list[str]:
        found = []
        for request in self.requests:
            if request.body.startswith(b"{"):
                found.append(json.loads(request.body)["jwt"])
            else:
                found.append(parse_qs(request.body.decode())["WebIdentityToken"][0])
        return found


@pytest.fixture
def collector() -> Iterator[Collector]:
    with Collector() as running:
        yield running


def configure(settings: Any, *, endpoints: str, issuer_networks: bool = True) -> None:
    """The portal's settings: its issuer URL, and the operator's provider allow-list."""
    settings.TRUSTPORTAL = dataclasses.replace(
        settings.TRUSTPORTAL,
        oidc_issuer_url=ISSUER,
        allow_http_issuers=True,
        issuer_allowed_networks=LOOPBACK if issuer_networks else (),
        provider_endpoints=load_config(
            {"TRUSTPORTAL_ENV": "test", "TRUSTPORTAL_PROVIDER_ENDPOINTS": endpoints}
        ).provider_endpoints,
    )


def claims_of(token: str) -> dict[str, Any]:
    keys = {key["kid"]: key for key in signing.jwks_document()["keys"]}
    found: dict[str, Any] = jwt.decode(
        token,
        jwt.PyJWK(keys[jwt.get_unverified_header(token)["kid"]]).key,
        algorithms=["RS256"],
        audience="acme",
        issuer=ISSUER,
    )
    return found


def plant(org: Organization, address: str, extra: str = "") -> APIClient:
    """A member's team holds `write` on proj/common only and plants a call there.

    proj/prodb imports proj/common; the writer cannot open (or even read) proj/prodb.
    """
    common = make_environment(org, "proj", "common", "values: {}\n")
    make_environment(org, "proj", "prodb", PRODB_YAML)
    team = TeamFactory(organization=org, name="writers")
    grants.grant_set(environment=common, team=team, permission=Level.WRITE)
    writer = auth(APIClient(), make_token("team", team=team))
    assert writer.get(f"{BASE}/proj/prodb").status_code == 404
    planted = writer.generic(
        "PATCH", f"{BASE}/proj/common", COMMON_YAML.format(address=address, extra=extra).encode()
    )
    assert planted.status_code == 200, planted.json()
    return writer


def open_prodb(org: Organization) -> Any:
    """Someone allowed to open proj/prodb (an org admin's CI token) opens it."""
    admin = auth(APIClient(), make_token("organization", organization=org, permission="admin"))
    return admin.post(f"{BASE}/proj/prodb/open")


def test_an_imported_call_gets_a_token_naming_its_own_environment_never_the_opened_one(
    settings: Any, org: Organization, collector: Collector
) -> None:
    # Even when the operator lists the collector (say, the company's Vault), a writer of
    # proj/common receives nothing that proj/prodb's trust relationships accept.
    configure(settings, endpoints=collector.url)
    plant(org, collector.url)
    opened = open_prodb(org)
    assert opened.status_code == 200, opened.json()

    (token,) = collector.tokens()
    claims = claims_of(token)
    assert claims["sub"] == "pulumi:environments:org:acme:env:proj/common"
    assert claims["current_env"] == "proj/common"
    assert "root_env" not in claims
    assert not any("prodb" in str(value) for value in claims.values())
    issuance = CredentialIssuance.objects.get()
    assert issuance.subject == claims["sub"]
    assert issuance.root_environment == "proj/prodb"  # the record still says what was opened


def test_an_imported_call_cannot_put_the_opened_environment_in_its_subject(
    settings: Any, org: Organization, collector: Collector
) -> None:
    configure(settings, endpoints=collector.url)
    attributes = "        subjectAttributes: [rootEnvironment.name]\n"
    plant(org, collector.url, extra=attributes)
    opened = open_prodb(org)
    assert opened.status_code == 400
    diagnostic, importer = opened.json()["diagnostics"]
    assert importer["summary"] == 'the imported environment "proj/common" has errors'
    assert diagnostic["summary"].startswith(
        "fn::open::vault-login: subject attribute rootEnvironment.name is not available in "
        "proj/common, which is imported"
    )
    assert collector.requests == []


def test_an_endpoint_off_the_list_is_refused_before_any_connection(
    settings: Any, org: Organization, collector: Collector
) -> None:
    """TRUSTPORTAL_ISSUER_ALLOWED_NETWORKS covers 127.0.0.1, but it is not the provider list."""
    configure(settings, endpoints="https://vault.example.com", issuer_networks=True)
    plant(org, collector.url)
    opened = open_prodb(org)
    assert opened.status_code == 400
    diagnostic, importer = opened.json()["diagnostics"]
    assert importer["summary"] == 'the imported environment "proj/common" has errors'
    assert diagnostic["summary"] == (
        f"fn::open::vault-login: vault-login.address: {collector.url} is not allowed: Vault has "
        "no official endpoint, and it is not in the portal's list of provider endpoints "
        "(TRUSTPORTAL_PROVIDER_ENDPOINTS); ask the portal's operator to add it"
    )
    assert diagnostic["path"] == "values.stolen"
    assert diagnostic["range"]["environment"] == "proj/common"
    assert collector.requests == []
    issuance = CredentialIssuance.objects.get()
    assert (issuance.outcome, issuance.reason) == (Outcome.FAILED, "provider_endpoint_not_allowed")
    assert issuance.subject == ""  # no ID token was even minted


def test_a_call_in_the_environment_opened_is_named_after_it(
    settings: Any, org: Organization, collector: Collector
) -> None:
    """The normal path: a listed Vault, the call in the root, the root's own identity."""
    configure(settings, endpoints=collector.url, issuer_networks=False)
    admin = auth(APIClient(), make_token("organization", organization=org, permission="admin"))
    make_environment(org, "proj", "prodb", COMMON_YAML.format(address=collector.url, extra=""))
    opened = admin.post(f"{BASE}/proj/prodb/open")
    assert opened.status_code == 200, opened.json()
    claims = claims_of(collector.tokens()[0])
    assert claims["sub"] == "pulumi:environments:org:acme:env:proj/prodb"
    assert claims["current_env"] == claims["root_env"] == "proj/prodb"


# --- the allow-list itself ----------------------------------------------------------------------
def endpoints(setting: str) -> ProviderEndpoints:
    listed = parse_provider_endpoints("TRUSTPORTAL_PROVIDER_ENDPOINTS", setting)
    return ProviderEndpoints(listed=listed)


@pytest.mark.parametrize(
    ("setting", "url", "service", "allowed"),
    [
        ("", "https://sts.amazonaws.com/", "AWS STS", True),
        ("", "https://sts.eu-west-1.amazonaws.com/", "AWS STS", True),
        ("", "https://sts-fips.us-east-1.amazonaws.com/", "AWS STS", True),
        ("", "https://sts.cn-north-1.amazonaws.com.cn/", "AWS STS", True),
        ("", "https://sts.amazonaws.com.attacker.example/", "AWS STS", False),
        ("", "https://sts.amazonaws.com:8443/", "AWS STS", False),
        ("", "http://sts.amazonaws.com/", "AWS STS", False),
        ("", "https://sts.googleapis.com/v1/token", "Google STS", True),
        ("", "https://sts.googleapis.com/v1/token", "AWS STS", False),  # another cloud's
        ("", "https://iamcredentials.googleapis.com/v1/x", "Google IAM Credentials", True),
        ("", "https://login.microsoftonline.com/t/oauth2/v2.0/token", "Microsoft Entra ID", True),
        ("", "https://login.microsoftonline.us/t", "Microsoft Entra ID", True),
        ("", "https://login.microsoftonline.com.attacker.example/t", "Microsoft Entra ID", False),
        ("", "https://vault.example.com/v1/auth/jwt/login", "Vault", False),
        ("vault.example.com", "https://vault.example.com/v1/auth/jwt/login", "Vault", True),
        ("vault.example.com", "https://vault.example.com:8200/v1/auth", "Vault", False),
        ("vault.example.com:8200", "https://vault.example.com:8200/v1/auth", "Vault", True),
        ("vault.example.com", "http://vault.example.com/v1/auth", "Vault", False),
        ("vault.example.com", "https://vault.example.com.attacker.example/", "Vault", False),
        ("https://psc.example.com/sts", "https://psc.example.com/sts/v1/token", "Google STS", True),
        ("https://psc.example.com/sts", "https://psc.example.com/sts", "Google STS", True),
        ("https://psc.example.com/sts", "https://psc.example.com/stsx/v1", "Google STS", False),
        ("https://psc.example.com/sts/", "https://psc.example.com/other", "Google STS", False),
        ("http://127.0.0.1:8200", "http://127.0.0.1:8200/v1/auth", "Vault", True),
        ("http://127.0.0.1:8200", "http://127.0.0.1:8201/v1/auth", "Vault", False),
        ("a.example, VAULT.Example.com", "https://vault.example.com/v1", "Vault", True),
        ("vault.example.com", "https://x@vault.example.com/v1", "Vault", False),
    ],
)
def test_official_or_listed_endpoints_only(
    setting: str, url: str, service: str, allowed: bool
) -> None:
    assert (endpoints(setting).refusal(url, service=service) is None) is allowed


def test_a_listed_endpoint_may_be_private_an_official_one_may_not() -> None:
    listed = endpoints("http://127.0.0.1:8200").policy_for("http://127.0.0.1:8200/v1")
    assert listed is not None and listed.allow_http
    official = endpoints("").policy_for("https://sts.amazonaws.com/")
    assert official is not None and official.allowed_networks == ()


@pytest.mark.parametrize(
    "setting",
    [
        "ftp://vault.example.com",
        "https://u@vault.example.com",
        "https://v.example.com/?a=1",
        "https://v.example.com/#x",
        "https://v.example.com:99999",
        "https://",
        "vault example",
    ],
)
def test_a_malformed_allow_list_is_refused_at_start_up(setting: str) -> None:
    with pytest.raises(ConfigError, match="TRUSTPORTAL_PROVIDER_ENDPOINTS"):
        load_config({"TRUSTPORTAL_PROVIDER_ENDPOINTS": setting})


def test_the_providers_poster_refuses_what_is_not_allowed_without_connecting(
    collector: Collector,
) -> None:
    post = endpoints("").poster()
    with pytest.raises(FetchError) as refused:
        post(collector.url + "/v1/auth/jwt/login", body=b"{}", content_type="application/json")
    assert refused.value.reason == REFUSED
    assert collector.requests == []
    status, _headers, _body = endpoints(collector.url).poster()(
        collector.url + "/v1/auth/jwt/login", body=b"{}", content_type="application/json"
    )
    assert status == 200 and len(collector.requests) == 1
