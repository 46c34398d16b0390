"""Nothing secret reaches the logs, stdout or stderr, whatever the portal is asked.

One representative run — exchanges allowed and refused, API calls with good, revoked and
malformed credentials, an environment with a secret written, opened and decrypted — under a
capture of every log record at DEBUG (every logger, SQL statements with their parameters
included) and of the process's stdout and stderr. No subject token, access token (`tp*_…`),
secret value or Authorization header value may appear in any of it.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from rest_framework.test import APIClient

from devtools.issuer import DevIssuer, sign_jws
from tests.tokens import conftest as tokens_conftest
from tests.tokens.conftest import AUDIENCE, REQUESTED, exchange_body
from tokens.format import hash_token
from tokens.models import AccessToken

pytestmark = pytest.mark.django_db

trusted = tokens_conftest.trusted

SECRET = "correct-horse-battery-staple-4c1d"
ENVIRONMENT_YAML = f"""\
values:
  app: {{name: web}}
  password:
    fn::secret: {SECRET}
  dsn: postgres://app:${{password}}@db/app
"""
ACCESS_TOKEN = re.compile(r"tp[otpr]_[A-Za-z0-9]{20,}")
ENV = "/api/esc/environments/acme/app/dev"


@pytest.fixture
def everything_logged(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every logger at DEBUG into caplog, and SQL statements logged with their parameters."""
    caplog.set_level(logging.DEBUG)
    for name in list(logging.root.manager.loggerDict):
        caplog.set_level(logging.DEBUG, logger=name)
    connection.force_debug_cursor = True
    try:
        yield caplog
    finally:
        connection.force_debug_cursor = False


def record_text(record: logging.LogRecord) -> str:
    """Everything a handler could write for a record: message, arguments, traceback, extras."""
    parts = [record.getMessage(), repr(record.args), record.exc_text or "", record.stack_info or ""]
    if record.exc_info and record.exc_info[1] is not None:
        parts.append(logging.Formatter().formatException(record.exc_info))
    parts.extend(repr(value) for value in vars(record).values())
    return "\n".join(parts)


def post_json(client: APIClient, body: dict[str, Any]) -> Any:
    return client.post("/api/oauth/token", body, format="json")


def run_the_battery(client: APIClient, issuer: DevIssuer) -> dict[str, list[str]]:
    """Drive the portal through a representative mix; returns what must never be logged."""
    subject_tokens: list[str] = []
    access_tokens: list[str] = []
    authorizations: list[str] = []

    def mint(claims: dict[str, Any] | None = None, **kwargs: Any) -> str:
        token = issuer.mint(claims, audience=AUDIENCE, **kwargs)
        subject_tokens.append(token)
        return token

    def call(method: str, path: str, authorization: str, **kwargs: Any) -> Any:
        authorizations.append(authorization)
        return client.generic(method, path, HTTP_AUTHORIZATION=authorization, **kwargs)

    # Allowed exchanges, JSON and form-encoded, org admin and team.
    admin = post_json(client, exchange_body(mint(), scope="admin"))
    assert admin.status_code == 200, admin.json()
    form = client.generic(
        "POST",
        "/api/oauth/token",
        "&".join(f"{k}={v}" for k, v in exchange_body(mint(), scope="").items()),
        "application/x-www-form-urlencoded",
    )
    assert form.status_code == 200, form.json()
    team = post_json(
        client,
        exchange_body(mint(), requested_token_type=REQUESTED + "team", scope="team:platform"),
    )
    assert team.status_code == 200, team.json()
    access_tokens += [r.json()["access_token"] for r in (admin, form, team)]

    # Refusals at every stage: signature, alg none, expiry, policy, scope, request, body.
    head, payload, signature = mint().split(".")
    forged = f"{head}.{payload}.{signature[::-1]}"
    unsigned = sign_jws({"alg": "none", "kid": issuer.current_key.kid}, issuer.claims(), None)
    subject_tokens += [forged, unsigned]
    refusals = [
        exchange_body(forged),
        exchange_body(unsigned),
        exchange_body(mint(now=issuer.claims()["iat"] - 3600)),
        exchange_body(mint({"event_name": "pull_request"}), scope="admin"),
        exchange_body(mint(), scope="team:platform"),
        exchange_body(mint(), audience="urn:pulumi:org:ghost"),
        exchange_body(mint(), grant_type="client_credentials"),
        exchange_body(mint(), subject_token_type="urn:x"),
    ]
    for body in refusals:
        assert post_json(client, body).status_code == 400
    raw = json.dumps(exchange_body(mint())).encode()
    for broken in (raw[:-1], raw + b"garbage", raw.replace(b'"scope"', b'"scope":1,"scope"')):
        client.generic("POST", "/api/oauth/token", broken, "application/json")

    # API calls with the issued tokens, both schemes, and with unusable credentials.
    admin_token, standard_token, team_token = access_tokens
    assert call("GET", "/api/user", f"token {admin_token}").status_code == 200
    assert call("GET", "/api/user", f"Bearer {standard_token}").status_code == 200
    assert call("GET", "/api/orgs/acme/oidc/issuers", f"token {team_token}").status_code in (
        200,
        403,
    )
    fake = "tpo_" + "A" * 43 + "bcdefg"
    for authorization in (
        f"token {fake}",
        f"Bearer {admin_token}x",
        f"token {admin_token[:-1]}",
        f"Basic {admin_token}",
        f"token {subject_tokens[0]}",
    ):
        assert call("GET", "/api/user", authorization).status_code == 401

    # An environment with a secret: written, opened, read, decrypted.
    created = call(
        "POST",
        "/api/esc/environments/acme",
        f"token {admin_token}",
        data=json.dumps({"project": "app", "name": "dev"}),
        content_type="application/json",
    )
    assert created.status_code in (200, 201), created.content
    updated = call(
        "PATCH",
        ENV,
        f"token {admin_token}",
        data=ENVIRONMENT_YAML.encode(),
        content_type="application/x-yaml",
    )
    assert updated.status_code == 200, updated.content
    opened = call("POST", f"{ENV}/open", f"token {admin_token}")
    assert opened.status_code == 200, opened.content
    read = call("GET", f"{ENV}/open/{opened.json()['id']}", f"token {admin_token}")
    assert read.json()["properties"]["password"]["value"] == SECRET  # the run really saw it
    assert SECRET in call("GET", f"{ENV}/decrypt", f"token {admin_token}").content.decode()

    # Revoke the standard token, then try it once more.
    standard_id = AccessToken.objects.get(token_hash=hash_token(standard_token)).pk
    revoke = call("DELETE", f"/api/orgs/acme/tokens/{standard_id}", f"token {admin_token}")
    assert revoke.status_code == 204, revoke.content
    assert call("GET", "/api/user", f"Bearer {standard_token}").status_code == 401
    return {
        "subject token": subject_tokens,
        "access token": [*access_tokens, fake],
        "Authorization header": authorizations,
        "secret": [SECRET],
    }


def test_no_token_secret_or_credential_is_logged(
    api_client: APIClient,
    local_issuer: DevIssuer,
    trusted: Any,
    everything_logged: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    forbidden = run_the_battery(api_client, local_issuer)
    records = everything_logged.records
    out, err = capfd.readouterr()
    logged = "\n".join([*(record_text(r) for r in records), out, err])

    # The capture is real: the run logged refusals and SQL, so a leak would have shown.
    messages = [r.getMessage() for r in records]
    assert any(m.startswith("exchange refused") for m in messages)
    assert sum(r.name == "django.db.backends" for r in records) > 50

    for kind, values in forbidden.items():
        for value in values:
            assert value not in logged, f"a {kind} was logged"
    for token in forbidden["subject token"]:
        signature = token.rsplit(".", 1)[-1]
        assert not signature or signature not in logged, "a subject token's signature was logged"
    leaked = ACCESS_TOKEN.findall(logged)
    assert not leaked, f"access tokens in the logs: {leaked[:3]}"
