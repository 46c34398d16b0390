"""`outbound.client.post` and `decode_json`: the guard's POST, against a local server."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from outbound.client import decode_json, post
from outbound.errors import FetchError
from outbound.policy import OutboundPolicy
from tests.conftest import LOOPBACK
from tests.environments.cloud_servers import FakeService, Reply, Request

LOCAL = OutboundPolicy(allow_http=True, allowed_networks=LOOPBACK, timeout=2)


class Server(FakeService):
    """Answers every request with `reply` after `delay` seconds."""

    def __init__(self) -> None:
        super().__init__()
        self.reply = Reply.json(200, {"ok": True})
        self.delay = 0.0

    def handle(self, request: Request, path: str) -> Reply:
        time.sleep(self.delay)
        return self.reply


@pytest.fixture
def server() -> Iterator[Server]:
    with Server() as running:
        yield running


def test_post_sends_the_body_and_returns_the_answer(server: Server) -> None:
    status, headers, body = post(
        server.url + "/v1/token?x=1",
        body=b"grant_type=a&b=c",
        content_type="application/x-www-form-urlencoded",
        policy=LOCAL,
        headers={"Authorization": "Bearer t", "Accept": "text/xml"},
    )

    assert (status, headers["content-type"], body) == (200, "application/json", b'{"ok": true}')
    (request,) = server.requests
    assert (request.method, request.path, request.body) == (
        "POST",
        "/v1/token?x=1",
        b"grant_type=a&b=c",
    )
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.headers["content-length"] == "16"
    assert request.headers["authorization"] == "Bearer t"
    assert request.headers["accept"] == "text/xml"
    assert request.headers["user-agent"] == "trustportal"


def test_error_statuses_come_back_with_their_body(server: Server) -> None:
    server.reply = Reply.json(400, {"error": "invalid_grant"})
    status, _headers, body = post(
        server.url, body=b"{}", content_type="application/json", policy=LOCAL
    )
    assert (status, body) == (400, b'{"error": "invalid_grant"}')


def test_a_redirect_is_refused_and_not_followed(server: Server) -> None:
    with Server() as elsewhere:
        # A 307 would make a following client replay the body (the ID token) elsewhere.
        server.reply = Reply(307, b"", "text/plain", (("Location", elsewhere.url + "/steal"),))
        with pytest.raises(FetchError) as caught:
            post(server.url, body=b"token", content_type="text/plain", policy=LOCAL)
        assert caught.value.reason == "redirect_refused"
        assert "/steal" in caught.value.message
        assert len(server.requests) == 1
        assert elsewhere.requests == []


def test_the_body_cap_applies_to_answers(server: Server) -> None:
    server.reply = Reply(400, b"x" * 5000, "text/plain")
    small = OutboundPolicy(allow_http=True, allowed_networks=LOOPBACK, max_bytes=4096)
    with pytest.raises(FetchError) as caught:
        post(server.url, body=b"", content_type="text/plain", policy=small)
    assert caught.value.reason == "too_large"


def test_a_refused_address_sends_nothing(server: Server) -> None:
    with pytest.raises(FetchError) as caught:
        post(
            server.url,
            body=b"token",
            content_type="text/plain",
            policy=OutboundPolicy(allow_http=True),
        )
    assert caught.value.reason == "address_not_allowed"
    assert server.requests == []


def test_plain_http_to_a_public_name_is_refused_before_connecting() -> None:
    with pytest.raises(FetchError) as caught:
        post(
            "http://sts.example.com/",
            body=b"token",
            content_type="text/plain",
            policy=OutboundPolicy(allow_http=True),
            resolve=lambda host, port: ["93.184.216.34"],
        )
    assert caught.value.reason == "scheme_not_allowed"


def test_a_slow_server_hits_the_deadline(server: Server) -> None:
    server.delay = 1.5
    quick = OutboundPolicy(allow_http=True, allowed_networks=LOOPBACK, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(FetchError) as caught:
        post(server.url, body=b"", content_type="text/plain", policy=quick)
    assert caught.value.reason == "timeout"
    assert time.monotonic() - started < 1.4


def test_framing_headers_cannot_be_set(server: Server) -> None:
    with pytest.raises(ValueError, match="Content-Length"):
        post(
            server.url,
            body=b"",
            content_type="text/plain",
            policy=LOCAL,
            headers={"Content-Length": "0"},
        )
    with pytest.raises(ValueError, match="invalid characters"):
        post(server.url, body=b"", content_type="text/plain\r\nX-Evil: 1", policy=LOCAL)
    assert server.requests == []


@pytest.mark.parametrize(
    ("content_type", "body", "ok"),
    [
        ("application/json", b'{"a": 1}', True),
        ("application/json; charset=utf-8", b'{"a": 1}', True),
        ("text/html", b'{"a": 1}', False),
        ("application/json", b'{"a": 1, "a": 2}', False),
        ("application/json", b'{"a": NaN}', False),
        ("application/json", b"[1]", False),
        ("application/json; charset=latin-1", b'{"a": 1}', False),
    ],
)
def test_decode_json_is_strict(content_type: str, body: bytes, ok: bool) -> None:
    if ok:
        assert decode_json({"content-type": content_type}, body) == {"a": 1}
    else:
        with pytest.raises(FetchError) as caught:
            decode_json({"content-type": content_type}, body)
        assert caught.value.reason == "not_json"
