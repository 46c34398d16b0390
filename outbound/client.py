"""The outbound client: `fetch_json` (GET), `post`, `decode_json` and `check_url`.

Each request runs the whole guard: URL checks, one bounded DNS lookup and address checks
(`addresses.py`), a connection to the checked address with verified TLS and pins
(`transport.py`), one request under one deadline, no redirects, a body cap, and strict JSON
(`kernel.strictjson`). Environment proxies are ignored on purpose: the checked address is
the one connected to.
"""

from __future__ import annotations

import http.client
import re
import socket
import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from kernel.strictjson import loads_object
from outbound.addresses import Resolver, check_target, system_resolve
from outbound.deadlines import DeadlineSocket
from outbound.errors import FetchError, refuse
from outbound.policy import IPAddress, OutboundPolicy
from outbound.transport import (
    Certificate,
    normalize_thumbprint,
    open_channel,
    read_body,
    request_headers,
    response_headers,
)
from outbound.urls import ParsedTarget

__all__ = ["FetchResult", "check_url", "decode_json", "fetch_json", "post"]

_JSON_MEDIA_TYPE = re.compile(r"application/(?:json|[a-z0-9!#$&^_.+-]+\+json)")


@dataclass(frozen=True)
class FetchResult:
    """The outcome of a successful fetch (2xx with a JSON object, or 304); never partial."""

    url: str
    status: int
    headers: Mapping[str, str]
    body: bytes
    data: dict[str, Any]
    address: str
    certificate: Certificate | None = field(default=None)


def check_url(
    url: str, *, policy: OutboundPolicy, resolve: Resolver = system_resolve
) -> tuple[ParsedTarget, list[str]]:
    """Validate, resolve and address-check a URL; it never connects to the host.

    Meant for the UI to explain a URL before saving it. Raises FetchError exactly as
    fetch_json would for the same URL before connecting. DNS answers can change, so a
    passing check is no promise about a later fetch (which re-checks everything).
    """
    deadline = time.monotonic() + policy.timeout
    target, addresses = check_target(url, policy, resolve, deadline)
    return target, [str(ip) for ip in addresses]


def fetch_json(
    url: str,
    *,
    policy: OutboundPolicy,
    resolve: Resolver = system_resolve,
    thumbprints: Sequence[str] = (),
    headers: Mapping[str, str] | None = None,
) -> FetchResult:
    """GET a JSON object from an issuer under the outbound guard; never follows redirects.

    Raises FetchError for every refusal or failure (ValueError only for a programming error
    in ``headers``). A 304 answer is returned as a result with an empty body and data.
    """
    return _request(url, policy=policy, resolve=resolve, thumbprints=thumbprints, headers=headers)


def post(
    url: str,
    *,
    body: bytes,
    content_type: str,
    policy: OutboundPolicy,
    resolve: Resolver = system_resolve,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, Mapping[str, str], bytes]:
    """POST ``body`` under the outbound guard and return (status, headers, raw body).

    The same checks as fetch_json run before the first byte is sent (URL syntax, one DNS
    lookup, address policy, verified TLS) and the same deadline and body cap apply while
    reading. Any status but a redirect is returned, error bodies included, so that the caller
    can report the server's own error; redirects are refused, never followed (a 307 would
    replay the body, credentials included, to wherever it points). It does not judge the
    content type: use `decode_json` for JSON answers. Raises FetchError, or ValueError for a
    programming error in ``headers``/``content_type``.
    """
    merged = {"Content-Type": content_type, **(headers or {})}
    result = _request(
        url,
        policy=policy,
        resolve=resolve,
        headers=merged,
        method="POST",
        payload=body,
        judge=False,
    )
    return result.status, result.headers, result.body


def decode_json(headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """Decode an answer as strict JSON (application/json, UTF-8, an object); no schema checks.

    The rules fetch_json applies to its answers (no NaN, no duplicate keys), for callers of
    `post`. Raises FetchError("not_json") otherwise. Header names must be lower-case, as
    `post` returns them.
    """
    _check_content_type(headers)
    return _parse_json(body)


def _request(
    url: str,
    *,
    policy: OutboundPolicy,
    resolve: Resolver,
    thumbprints: Sequence[str] = (),
    headers: Mapping[str, str] | None = None,
    method: str = "GET",
    payload: bytes | None = None,
    judge: bool = True,
) -> FetchResult:
    """Run one request through the whole guard (checks, connect, TLS, pins, exchange).

    ``method``, ``payload`` and ``judge`` are passed to `_exchange`; everything before the
    first request byte is the same for every method.
    """
    deadline = time.monotonic() + policy.timeout
    try:
        pins = {normalize_thumbprint(value) for value in thumbprints}
    except ValueError as exc:
        refuse("bad_thumbprint", f"a pinned thumbprint is malformed: {exc}")
    target, addresses = check_target(url, policy, resolve, deadline)
    sent_headers = request_headers(target, headers)
    sock, address, certificate = open_channel(target, addresses, policy, pins, deadline)
    try:
        return _exchange(
            _Channel(target, sock, address, certificate, policy, deadline),
            sent_headers,
            method=method,
            payload=payload,
            judge=judge,
        )
    finally:
        sock.close()


@dataclass(frozen=True)
class _Channel:
    """An open, checked connection and what was learned opening it; owns nothing."""

    target: ParsedTarget
    sock: socket.socket
    address: IPAddress
    certificate: Certificate | None
    policy: OutboundPolicy
    deadline: float

    def result(
        self, status: int, headers: Mapping[str, str], body: bytes, data: dict[str, Any]
    ) -> FetchResult:
        """Build the result of a request made on this channel."""
        return FetchResult(
            url=self.target.url,
            status=status,
            headers=headers,
            body=body,
            data=data,
            address=str(self.address),
            certificate=self.certificate,
        )


def _exchange(
    channel: _Channel,
    sent_headers: Mapping[str, str],
    *,
    method: str = "GET",
    payload: bytes | None = None,
    judge: bool = True,
) -> FetchResult:
    """Send one request and read the answer on an open socket; does not close the socket.

    With ``judge`` (GET by fetch_json) only a 2xx JSON object or a 304 is accepted. Without
    it (`post`) any status but a redirect is returned with its raw body and empty ``data``,
    so that the caller can read the server's error; the body cap and deadline still apply.
    """
    target = channel.target
    connection = http.client.HTTPConnection(target.host, target.port)
    # http.client only connects when .sock is None; handing it our socket (wrapped so that
    # every send and recv respects the deadline) guarantees it never resolves or connects.
    connection.sock = cast(socket.socket, DeadlineSocket(channel.sock, channel.deadline))
    try:
        connection.request(method, target.request_target, body=payload, headers=dict(sent_headers))
        response = connection.getresponse()
        status = response.status
        headers = response_headers(response)
        if status == 304 and judge:
            return channel.result(status, headers, b"", {})
        _judge_status(response, headers, judge=judge)
        body = read_body(response, channel.policy.max_bytes)
    except FetchError:
        raise
    except TimeoutError:
        refuse("timeout", f"fetching {target.url} took longer than {channel.policy.timeout:g} s")
    except ssl.SSLError as exc:
        refuse("tls_error", f"TLS failed while talking to {target.host}: {exc}")
    except http.client.IncompleteRead:
        refuse("connection_failed", f"{target.host} closed the connection before the body ended")
    except http.client.HTTPException as exc:
        refuse("bad_response", f"{target.host} sent a malformed HTTP response: {exc!r}")
    except OSError as exc:
        refuse("connection_failed", f"the connection to {target.host} failed: {exc}")
    finally:
        connection.close()
    return channel.result(status, headers, body, _parse_json(body) if judge else {})


def _judge_status(
    response: http.client.HTTPResponse, headers: Mapping[str, str], *, judge: bool
) -> None:
    """Refuse redirects always, and with ``judge`` anything but a 2xx JSON answer."""
    status = response.status
    if 300 <= status < 400:
        refuse(
            "redirect_refused",
            _redirect_message(status, headers.get("location")),
            status=status,
        )
    if not judge:
        return
    if not 200 <= status < 300:
        reason = (response.reason or "")[:100]
        message = f"the server answered HTTP {status} {reason}".rstrip()
        refuse("bad_status", message, status=status)
    _check_content_type(headers)


def _check_content_type(headers: Mapping[str, str]) -> None:
    """Accept application/json and application/*+json (UTF-8 only); ignores the body."""
    raw = headers.get("content-type")
    if raw is None:
        refuse("not_json", "the response has no Content-Type; expected application/json")
    media_type, *params = (part.strip() for part in raw.split(";"))
    if not _JSON_MEDIA_TYPE.fullmatch(media_type.lower()):
        shown = raw[:100]
        refuse("not_json", f"the response Content-Type is {shown!r}, not application/json")
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').lower()
            if charset not in ("utf-8", "utf8"):
                refuse("not_json", f"the response charset is {charset!r}; only UTF-8 is accepted")


def _parse_json(body: bytes) -> dict[str, Any]:
    """Decode strict UTF-8 JSON whose top level is an object; no schema checks.

    The same rules as every other untrusted JSON (`kernel/strictjson.py`): no NaN/Infinity or
    overflowing numbers, no duplicate keys, no NUL or lone surrogates (issuer documents are
    stored in JSON columns), no BOM (json.loads refuses it).
    """
    try:
        return loads_object(body.decode("utf-8"))
    except UnicodeDecodeError:
        refuse("not_json", "the response body is not valid UTF-8")
    except (ValueError, RecursionError) as exc:
        refuse("not_json", f"the response body is not a valid JSON object: {exc}")


def _redirect_message(status: int, location: str | None) -> str:
    """Explain a refused redirect, showing where it pointed; never follows it."""
    if location is None:
        return (
            f"the server answered {status} (a redirect without a Location); "
            "redirects are not followed"
        )
    shown = location if len(location) <= 300 else location[:300] + "..."
    return f"the server answered {status} redirecting to {shown!r}; redirects are not followed"
