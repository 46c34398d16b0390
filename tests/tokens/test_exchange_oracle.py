"""The token endpoint is no organization/issuer oracle: the four "not for here" refusals look alike.

An unknown organization, an issuer the organization does not have, a disabled issuer and a token
whose audience is another organization's all answer the same bytes (but the request id); the
exchange event keeps the real reason for the admin.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from devtools.issuer import DevIssuer
from issuers.models import Issuer
from tests.tokens.conftest import AUDIENCE, exchange_body
from tokens.models import ExchangeEvent

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("trusted")]


def _unknown_org(issuer: DevIssuer, trusted: Issuer) -> dict[str, Any]:
    ghost = "urn:pulumi:org:ghost"
    return exchange_body(issuer.mint(audience=ghost), audience=ghost)


def _unknown_issuer(issuer: DevIssuer, trusted: Issuer) -> dict[str, Any]:
    return exchange_body(issuer.mint({"iss": "https://elsewhere.example"}, audience=AUDIENCE))


def _disabled_issuer(issuer: DevIssuer, trusted: Issuer) -> dict[str, Any]:
    trusted.enabled = False
    trusted.save()
    return exchange_body(issuer.mint(audience=AUDIENCE))


def _wrong_audience(issuer: DevIssuer, trusted: Issuer) -> dict[str, Any]:
    return exchange_body(issuer.mint(audience="urn:pulumi:org:other"))


CASES: list[tuple[str, Callable[[DevIssuer, Issuer], dict[str, Any]]]] = [
    ("unknown_organization", _unknown_org),
    ("unknown_issuer", _unknown_issuer),
    ("audience_mismatch", _wrong_audience),
    ("issuer_disabled", _disabled_issuer),  # last: it disables the issuer
]


def _answer(api_client: Any, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    response = api_client.post("/api/oauth/token", body, format="json")
    request_id = response.json()["request_id"]
    assert request_id
    headers = {
        name: value
        for name, value in response.headers.items()
        if name not in ("Content-Length", "X-Request-Id")
    }
    return response.status_code, headers, response.content.replace(request_id.encode(), b"RID")


def test_not_for_here_refusals_are_byte_identical_but_the_event_keeps_the_reason(
    api_client: Any, local_issuer: DevIssuer, trusted: Issuer
) -> None:
    answers = []
    for reason, build in CASES:
        answers.append(_answer(api_client, build(local_issuer, trusted)))
        assert ExchangeEvent.objects.order_by("-id").first().reason == reason  # type: ignore[union-attr]
    assert all(answer == answers[0] for answer in answers), answers
    status, _, content = answers[0]
    body = json.loads(content)
    assert status == 400
    assert body["error"] == "invalid_request" and body["reason"] == "untrusted_token"
    for word in ("organization", "issuer", "audience", "disabled", "ghost", "elsewhere"):
        assert word not in body["error_description"].lower()
