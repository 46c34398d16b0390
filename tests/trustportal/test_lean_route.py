"""The token endpoint's lean request path: no browser layers, every header and the 503 kept."""

from __future__ import annotations

from typing import Any
from unittest import mock
from urllib.parse import urlencode

import pytest
from django.db import OperationalError
from django.test import Client

from devtools.issuer import DevIssuer
from tests.tokens import conftest as tokens_conftest
from tests.tokens.conftest import AUDIENCE, exchange_body

trusted = tokens_conftest.trusted
TOKEN = "/api/oauth/token"
FORM = "application/x-www-form-urlencoded"


def post(client: Client, path: str, body: dict[str, Any]) -> Any:
    return client.post(path, urlencode(body), content_type=FORM)


def test_an_exchange_runs_no_session_csrf_authentication_or_message_layer(
    client: Client, trusted: Any, local_issuer: DevIssuer
) -> None:
    client.cookies["sessionid"] = "a-session-cookie-the-endpoint-must-not-read"
    response = post(
        client, TOKEN, exchange_body(local_issuer.mint(audience=AUDIENCE), scope="admin")
    )

    assert response.status_code == 200
    request = response.wsgi_request
    for attribute in ("session", "_messages", "csrf_processing_done"):
        assert not hasattr(request, attribute), attribute
    assert getattr(request, "user", None) is None  # no one authenticated, no session read
    assert "sessionid" not in response.cookies
    assert "Cookie" not in response.get("Vary", "")  # no session or CSRF layer read a cookie
    # The layers every response needs still ran.
    assert response["X-Request-Id"] == request.request_id
    assert response["Content-Security-Policy"].startswith("default-src 'self'")
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    assert response["Cache-Control"] == "no-store"


@pytest.mark.django_db
def test_a_refused_exchange_keeps_the_oauth_shape_and_the_headers(client: Client) -> None:
    response = post(client, TOKEN, {"grant_type": "password"})

    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"
    assert response["X-Frame-Options"] == "DENY"
    assert not hasattr(response.wsgi_request, "session")


@pytest.mark.django_db
def test_other_paths_keep_the_whole_stack(client: Client) -> None:
    response = client.get("/api/user")
    assert hasattr(response.wsgi_request, "session")
    assert hasattr(response.wsgi_request, "user")
    slash = post(client, TOKEN + "/", {"grant_type": "password"})
    assert hasattr(slash.wsgi_request, "session")


@pytest.mark.django_db
def test_a_wrong_method_is_refused_on_the_lean_path(client: Client) -> None:
    response = client.get(TOKEN)
    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert not hasattr(response.wsgi_request, "session")


@pytest.mark.django_db
def test_a_lost_database_outside_the_pipeline_answers_503_not_500(client: Client) -> None:
    with mock.patch("portal.exchange.views.client_ip", side_effect=OperationalError("gone")):
        response = post(client, TOKEN, {"grant_type": "password"})

    assert response.status_code == 503
    assert response.json()["code"] == 503
    assert response["X-Request-Id"]
    assert response["X-Frame-Options"] == "DENY"
