"""What a refused attempt may write: claims within a depth and a size, else a marked form."""

from __future__ import annotations

import base64
import json

import pytest

from exchange.bounded import MAX_BYTES, MAX_DEPTH, TRUNCATED, bound_claims
from tests.tokens.conftest import AUDIENCE, exchange_body
from tokens.models import ExchangeEvent


def nested(depth: int) -> object:
    value: object = "leaf"
    for _ in range(depth):
        value = [value]
    return value


def test_claims_within_the_caps_are_kept_as_they_are() -> None:
    claims = {"sub": "repo:acme/x", "nested": nested(MAX_DEPTH - 1), "n": 3}
    assert bound_claims(claims) == claims


def test_deep_claims_are_cut_at_the_depth_cap_and_marked() -> None:
    stored = bound_claims({"sub": "s", "deep": nested(900)})
    assert TRUNCATED in stored and stored["sub"] == "s"
    text = json.dumps(stored)
    assert text.count("[") <= MAX_DEPTH


def test_large_claims_keep_only_the_identifying_ones_marked() -> None:
    stored = bound_claims({"sub": "s" * 5000, "iss": "i", "blob": "x" * 20000, "exp": 5})
    assert stored["sub"] == "s" * 200 and stored["iss"] == "i" and stored["exp"] == 5
    assert "blob" not in stored and "bytes exceed" in stored[TRUNCATED]
    assert len(json.dumps(stored)) < MAX_BYTES


def _segment(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


@pytest.mark.django_db
@pytest.mark.usefixtures("trusted")
def test_a_forged_token_nested_900_deep_is_stored_bounded(api_client) -> None:
    header = _segment({"alg": "RS256", "kid": "test-key-1"})
    payload = _segment({"iss": "https://forged.example", "sub": "x", "deep": nested(900)})
    response = api_client.post(
        "/api/oauth/token",
        exchange_body(f"{header}.{payload}.c2ln", audience=AUDIENCE),
        format="json",
    )
    assert response.status_code == 400
    event = ExchangeEvent.objects.get()
    # Refused before its payload is parsed (a scan, not a recursive parse, sees the depth), so
    # nothing of it is stored, however many stack frames the request already used.
    assert (event.decision, event.reason) == ("deny", "malformed_token")
    assert "nested deeper than 64" in event.detail
    assert event.claims == {}


@pytest.mark.django_db
@pytest.mark.usefixtures("trusted")
def test_a_forged_token_nested_a_little_too_deep_is_stored_bounded(api_client) -> None:
    header = _segment({"alg": "RS256", "kid": "test-key-1"})
    payload = _segment({"iss": "https://forged.example", "sub": "x", "deep": nested(40)})
    response = api_client.post(
        "/api/oauth/token",
        exchange_body(f"{header}.{payload}.c2ln", audience=AUDIENCE),
        format="json",
    )
    assert response.status_code == 400
    event = ExchangeEvent.objects.get()
    assert event.decision == "deny" and event.sub == "x", (event.reason, event.detail)
    assert TRUNCATED in event.claims
    assert json.dumps(event.claims).count("[") <= MAX_DEPTH
