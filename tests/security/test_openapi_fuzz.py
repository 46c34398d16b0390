"""Fuzz every operation of `/api/openapi.json` with schemathesis against the WSGI application.

An org admin token of an organization that has data (an issuer with a policy, an environment with
a secret, revision and environment tags, an open session, an exchange event, tokens) calls each
operation with generated query strings, headers and bodies. The path parameters name that
organization's real objects (otherwise every call would stop at "organization not found"),
except the ones whose lookups are themselves worth fuzzing (`version`, `tag`, `session`, `fmt`).

Checks: never a 5xx, every status code and every response body as the schema documents them.
"""

from __future__ import annotations

import copy
import os
import socket
import time
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from django.test import Client
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation.value import GeneratedValue
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

import issuers.services
from devtools.issuer import SigningKey, sign_jws
from issuers.services import Outbound, outbound_policy
from policies.models import AuthPolicy
from policies.registration import issuer_register
from policies.services import policy_update
from tests.security.test_tenant_matrix import MARK, World, build_world
from tokens.models import AccessToken
from trustportal.models import Organization
from trustportal.wsgi import application

# Per operation; a deeper run: FUZZ_EXAMPLES=500 pytest tests/security/test_openapi_fuzz.py
MAX_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "15"))

schema = schemathesis.openapi.from_wsgi("/api/openapi.json", application)

# Path parameters filled with the seeded organization's objects.
FIXED_PARAMETERS = ("org", "issuer_id", "policy_id", "project", "env", "event_id")

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]

# Text PostgreSQL cannot store, put into one generated string of about half the path parameters,
# query strings and bodies: the API must refuse it (400), never fail on it (500). A URL cannot
# carry a lone surrogate (it is not UTF-8), so paths and queries get NUL only.
IN_URLS = st.sampled_from([None, None, "\x00", "a\x00"])
IN_BODIES = st.sampled_from([None, None, "\x00", "\ud800", "x\udfff"])


def _with_text(value: Any, text: str | None, choice: int) -> Any:
    """A copy of `value` with `text` appended to one of its strings (picked by `choice`)."""
    if text is None:
        return value
    if isinstance(value, str):
        return value + text
    if not isinstance(value, dict | list):
        return value
    value = copy.deepcopy(value)
    slots: list[tuple[Any, Any]] = []
    pending = [value]
    while pending:
        node = pending.pop()
        pairs = node.items() if isinstance(node, dict) else enumerate(node)
        for key, item in pairs:
            if isinstance(item, str):
                slots.append((node, key))
            elif isinstance(item, dict | list):
                pending.append(item)
    if slots:
        node, key = slots[choice % len(slots)]
        node[key] += text
    return value


def _hostile(strategy: st.SearchStrategy[Any], texts: st.SearchStrategy[Any]) -> Any:
    def put(generated: Any, text: str | None, choice: int) -> Any:
        if isinstance(generated, GeneratedValue):  # a value with its generation metadata
            return generated.map_value(lambda value: _with_text(value, text, choice))
        return _with_text(generated, text, choice)

    return st.tuples(strategy, texts, st.integers(0, 1000)).map(lambda drawn: put(*drawn))


@schema.hook("before_generate_path_parameters")
def _hostile_path_parameters(context: Any, strategy: st.SearchStrategy[Any]) -> Any:
    return _hostile(strategy, IN_URLS)


@schema.hook("before_generate_query")
def _hostile_query(context: Any, strategy: st.SearchStrategy[Any]) -> Any:
    return _hostile(strategy, IN_URLS)


@schema.hook("before_generate_case")
def _hostile_body(context: Any, strategy: st.SearchStrategy[Any]) -> Any:
    """Bodies: JSON can carry a lone surrogate (as an escape); a form body NUL only."""

    def put(case: Any, text: str | None, choice: int) -> Any:
        if text is not None and "json" not in (case.media_type or "") and text != "\x00":
            text = "\x00"
        case.body = _with_text(case.body, text, choice)
        return case

    return st.tuples(strategy, IN_BODIES, st.integers(0, 1000)).map(lambda drawn: put(*drawn))


def _no_dns(host: str, port: int) -> list[str]:
    """Generated issuer URLs name random hosts: refuse to look them up, as an offline DNS would.

    The outbound guard stays the real one; only name resolution is kept off the network.
    """
    raise socket.gaierror(socket.EAI_NONAME, f"not resolved in tests: {host}")


@pytest.fixture(autouse=True)
def _keep_the_test_transactions_connection() -> Iterator[None]:
    """Call the WSGI application the way Django's test client does.

    schemathesis calls the real handler, whose request signals close "old" connections: the
    test's connection (in a transaction, so not in autocommit) would count as one and be closed,
    on PostgreSQL, under the test. Django's own test client disconnects the same receivers.
    """
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def fuzz_world(outbound: Outbound, monkeypatch: pytest.MonkeyPatch) -> World:
    monkeypatch.setattr(
        issuers.services,
        "default_outbound",
        lambda: Outbound(policy=outbound_policy(), resolve=_no_dns),
    )
    return build_world(outbound, victim="fuzzed")


@dataclass(frozen=True)
class ExchangeWorld:
    """An issuer of the fuzzed organization whose ID tokens the fuzz can sign."""

    key: SigningKey
    issuer: str
    audience: str

    def token(self, **claims: Any) -> str:
        now = int(time.time())
        payload = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": "repo:fuzz/app:ref:refs/heads/main",
            "jti": str(uuid.uuid4()),
            "iat": now,
            "nbf": now - 5,
            "exp": now + 300,
            **claims,
        }
        header = {"alg": self.key.alg, "typ": "JWT", "kid": self.key.kid}
        return sign_jws(header, payload, self.key)

    def request(self, **fields: Any) -> dict[str, Any]:
        return {
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "audience": self.audience,
            "subject_token": self.token(),
            "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
            "requested_token_type": "urn:pulumi:token-type:access_token:organization",
            "scope": "admin",
            **fields,
        }


@pytest.fixture
def exchange_world(fuzz_world: World, outbound: Outbound) -> ExchangeWorld:
    organization = Organization.objects.get(login=fuzz_world.values["org"])
    key = SigningKey.generate("ES256", kid="fuzz-exchange-kid")
    url = "https://fuzz-exchange-issuer.example/oidc"
    issuer = issuer_register(
        organization=organization,
        url=url,
        name="fuzz-exchange",
        jwks={"keys": [key.public_jwk()]},
        outbound=outbound,
    )
    policy_update(
        policy=AuthPolicy.objects.get(issuer=issuer),
        definitions=[
            {
                "decision": "allow",
                "tokenType": "organization",
                "authorizedPermissions": ["admin"],
                "rules": {"sub": "repo:fuzz/app:*"},
            }
        ],
    )
    return ExchangeWorld(key, url, f"urn:pulumi:org:{organization.login}")


def _hostile_text(value: Any) -> bool:
    return isinstance(value, str) and any(c == "\x00" or "\ud800" <= c <= "\udfff" for c in value)


def _meaningful_exchange(case: Any, world: ExchangeWorld) -> None:
    """Make a generated token request reach verification, the policy and the record.

    Random strings stop at the first check; a quarter of the cases stay as generated, the others
    get a real signed token and (some) the fields that let it through, keeping any unstorable text
    the hooks put in. Which one is decided by the generated body, so runs stay reproducible.
    """
    if not isinstance(case.body, dict):
        return
    kept = {name: value for name, value in case.body.items() if _hostile_text(value)}
    variant = zlib.crc32(repr(sorted(case.body.items(), key=str)).encode()) % 4
    if variant == 1:  # a request that is granted
        case.body = {**world.request(), **kept}
    elif variant == 2:  # a real token refused later: expired, another audience, denied subject
        refusals: list[dict[str, Any]] = [
            {"exp": int(time.time()) - 600},
            {"aud": "urn:pulumi:org:elsewhere"},
            {"sub": "repo:other/app:ref:refs/heads/main"},
        ]
        chosen = refusals[zlib.crc32(str(case.body).encode()) % len(refusals)]
        case.body = {**world.request(subject_token=world.token(**chosen)), **kept}
    elif variant == 3:  # the generated fields around a real token
        case.body = {**case.body, "subject_token": world.token()}


@pytest.mark.django_db
@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_schema(
    case: Any, fuzz_world: World, exchange_world: ExchangeWorld
) -> None:
    if case.path == "/api/oauth/token":
        _meaningful_exchange(case, exchange_world)
    values = fuzz_world.values
    for name in FIXED_PARAMETERS:
        if case.path_parameters and name in case.path_parameters:
            # The real object's name, keeping a NUL the hook put into the generated one.
            nul = "\x00" if "\x00" in str(case.path_parameters[name]) else ""
            case.path_parameters[name] = values[name] + nul
    parameters = case.path_parameters or {}
    if "org" in parameters and "token_id" in parameters:
        # Not the calling token: revoking it would leave the other examples with a 401 only.
        team_token = AccessToken.objects.get(name=f"{MARK}-team-token")
        case.path_parameters["token_id"] = str(team_token.pk)
    token = fuzz_world.b.tokens["admin"]
    case.call_and_validate(headers={"Authorization": f"token {token}"}, checks=CHECKS)


def _valid_jwks() -> dict[str, Any]:
    return {"keys": [SigningKey.generate("ES256", kid="fuzz-kid").public_jwk()]}


# Successful writes random data rarely reaches (a valid key set, a valid definition): each one
# called once and validated the same way, so their documented success answers are checked too.
EXPLICIT_CASES: list[tuple[str, str, dict[str, Any]]] = [
    (
        "/api/orgs/{org}/oidc/issuers",
        "POST",
        {"url": "https://fuzz-issuer.example/oidc", "name": "fuzz", "jwks": "VALID_JWKS"},
    ),
    ("/api/orgs/{org}/tokens", "POST", {"name": "fuzz", "admin": False}),
    ("/api/orgs/{org}/tokens/revoke", "POST", {"since": "2000-01-01T00:00:00Z", "dryRun": True}),
    ("/api/orgs/{org}/auth/policies/{policy_id}", "PATCH", {"policies": []}),
    ("/api/orgs/{org}/auth/policies/{policy_id}/versions/{version}/rollback", "POST", {}),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("path", "method", "body"), EXPLICIT_CASES, ids=lambda v: str(v)[:40])
def test_successful_writes_conform_to_the_schema(
    fuzz_world: World, path: str, method: str, body: dict[str, Any]
) -> None:
    operation = schema[path][method]
    parameters = {
        name: fuzz_world.values[name]
        for name in ("org", "policy_id", "version")
        if "{" + name + "}" in path
    }
    if body.get("jwks") == "VALID_JWKS":
        body = {**body, "jwks": _valid_jwks()}
    case = operation.Case(path_parameters=parameters, body=body, media_type="application/json")
    token = fuzz_world.b.tokens["admin"]
    response = case.call_and_validate(headers={"Authorization": f"token {token}"}, checks=CHECKS)
    assert 200 <= response.status_code < 300, response.text


TOKEN_CASES: list[tuple[str, dict[str, Any], int]] = [
    ("application/json", {}, 200),
    ("application/x-www-form-urlencoded", {"expiration": "600"}, 200),
    ("application/json", {"sub": "repo:other/app:ref:refs/heads/main"}, 400),
    ("application/x-www-form-urlencoded", {"exp": 1}, 400),
    ("application/json", {"aud": "urn:pulumi:org:elsewhere"}, 400),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("media_type", "change", "status"), TOKEN_CASES, ids=str)
def test_token_exchange_answers_conform_to_the_schema(
    exchange_world: ExchangeWorld, media_type: str, change: dict[str, Any], status: int
) -> None:
    """Both content types, a grant and refusals, validated against the documented answers."""
    fields = {k: v for k, v in change.items() if k == "expiration"}
    claims = {k: v for k, v in change.items() if k != "expiration"}
    body = exchange_world.request(subject_token=exchange_world.token(**claims), **fields)
    case = schema["/api/oauth/token"]["POST"].Case(body=body, media_type=media_type)
    response = case.call_and_validate(checks=CHECKS)
    assert response.status_code == status, response.text
    assert response.headers["cache-control"] == ["no-store"]


# Inputs the fuzzing found answered with a 500 (or a Python error message), now refused cleanly.
# `²` is a digit to str.isdigit() but not to int().
REFUSED_INPUTS: list[tuple[str, str, str, int]] = [
    ("admin", "GET", "/api/esc/environments/{org}/vproj/venv/versions/%C2%B2", 404),
    ("admin", "GET", "/api/esc/environments/{org}/vproj/venv/versions/%C2%B2/decrypt", 404),
    ("admin", "GET", "/api/esc/environments/{org}/vproj/venv/tags?count=0", 400),
    ("admin", "GET", "/api/esc/environments/{org}/vproj/venv/versions/tags?count=0", 400),
    ("admin", "GET", "/api/esc/environments/{org}/vproj/venv/versions?count=%C2%B2", 400),
    ("admin", "GET", "/api/esc/environments/{org}/vproj/venv/versions?before=99999999999", 400),
    ("admin", "GET", "/api/orgs/{org}/tokens?limit=%C2%B2", 400),
    ("admin", "GET", "/api/orgs/{org}/oidc/exchanges?limit=%C2%B2", 400),
    ("personal", "DELETE", "/api/user/tokens/%C2%B2", 404),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("role", "method", "path", "status"), REFUSED_INPUTS)
def test_malformed_numbers_are_refused_cleanly(
    fuzz_world: World, role: str, method: str, path: str, status: int
) -> None:
    client = Client()
    client.defaults["HTTP_AUTHORIZATION"] = f"token {fuzz_world.b.tokens[role]}"
    response = client.generic(method, path.format(org=fuzz_world.values["org"]))
    assert response.status_code == status, response.content
    assert response.json()["code"] == status
    assert "invalid literal" not in response.json()["message"]


@pytest.mark.django_db
def test_revision_page_ignores_a_malformed_revision_number(fuzz_world: World) -> None:
    client = Client()
    client.force_login(fuzz_world.b.admin)
    org = fuzz_world.values["org"]
    response = client.get(f"/orgs/{org}/environments/vproj/venv/revisions/?to=%C2%B2&from=%C2%B2")
    assert response.status_code == 200
