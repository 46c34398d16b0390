"""Tests for the outbound client, the outbound HTTP guard, against real sockets on 127.0.0.1.

Nothing in the client is mocked: a threaded HTTP(S) server records every request it gets,
a spy on socket.connect records every outbound connection, and resolvers are injected.
"""

from __future__ import annotations

import contextlib
import hashlib
import http
import ipaddress
import logging
import pickle
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from outbound.cachecontrol import parse_cache_control_max_age
from outbound.client import FetchResult, check_url, fetch_json
from outbound.errors import FetchError
from outbound.policy import DEFAULT_MAX_BYTES, OutboundPolicy
from outbound.transport import normalize_thumbprint
from tests.issuers.tls import TLSMaterial, make_tls_material

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)
PUBLIC_IP = "93.184.215.14"  # a real public address; never connected to in these tests

# ----------------------------------------------------------------------------- helpers


@dataclass(frozen=True)
class Route:
    """What the test server answers on one path."""

    status: int = 200
    body: bytes = b'{"ok": true}'
    content_type: str | None = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    framing: Literal["length", "close", "chunked"] = "length"
    declared_length: int | str | None = None  # overrides the real Content-Length when set
    chunk_size: int = 1024
    drip: float = 0.0  # seconds between body bytes
    drip_headers: float = 0.0  # seconds between header bytes
    hold: float = 0.0  # keep the connection open this long after writing


@dataclass(frozen=True)
class SeenRequest:
    method: str
    path: str
    headers: dict[str, str]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    owner: LocalServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Failed handshakes and clients that hang up early are expected in these tests.
        self.owner.errors += 1


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 5
    server: _Server

    def setup(self) -> None:
        self.server.owner.connections += 1
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(5)
            self.request.do_handshake()
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        owner = self.server.owner
        owner.requests.append(
            SeenRequest("GET", self.path, {k.lower(): v for k, v in self.headers.items()})
        )
        route = owner.routes.get(self.path.split("?", 1)[0])
        if route is None:
            route = Route(status=404, body=b'{"error": "not found"}')
        self.close_connection = True
        # The client may give up early (timeouts, size caps): that is what those tests want.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError, ssl.SSLError, TimeoutError):
            self._answer(route)

    def _answer(self, route: Route) -> None:
        phrase = http.HTTPStatus(route.status).phrase
        head = [f"HTTP/1.1 {route.status} {phrase}"]
        if route.content_type is not None:
            head.append(f"Content-Type: {route.content_type}")
        head += [f"{name}: {value}" for name, value in route.headers]
        payload = route.body
        if route.framing == "length":
            length = len(route.body) if route.declared_length is None else route.declared_length
            head.append(f"Content-Length: {length}")
        elif route.framing == "chunked":
            head.append("Transfer-Encoding: chunked")
            pieces = [
                route.body[i : i + route.chunk_size]
                for i in range(0, len(route.body), route.chunk_size)
            ]
            payload = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
        head.append("Connection: close")
        raw_head = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        self._write(raw_head, route.drip_headers)
        self._write(payload, route.drip)
        if route.hold:
            time.sleep(route.hold)

    def _write(self, data: bytes, drip: float) -> None:
        if not drip:
            self.wfile.write(data)
            self.wfile.flush()
            return
        for i in range(len(data)):
            self.wfile.write(data[i : i + 1])
            self.wfile.flush()
            time.sleep(drip)


class LocalServer:
    """A threaded HTTP or HTTPS server on 127.0.0.1:<random port> that logs what it sees."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[SeenRequest] = []
        self.connections = 0
        self.errors = 0
        self.scheme = "https" if tls else "http"
        self.httpd = _Server(("127.0.0.1", 0), _Handler)
        self.httpd.owner = self
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(
                self.httpd.socket, server_side=True, do_handshake_on_connect=False
            )
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def url(self, path: str = "/doc", host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class FakeResolver:
    """Maps host names to fixed answers and records every call."""

    def __init__(self, answers: dict[str, list[str]] | None = None) -> None:
        self.answers = answers or {}
        self.calls: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return list(self.answers[host])


@pytest.fixture
def server() -> Iterator[LocalServer]:
    srv = LocalServer()
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def tls_material(tmp_path_factory: pytest.TempPathFactory) -> TLSMaterial:
    return make_tls_material(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> TLSMaterial:
    return make_tls_material(tmp_path_factory.mktemp("other-tls"), ca_name="some other CA")


@pytest.fixture
def https_server(tls_material: TLSMaterial) -> Iterator[LocalServer]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls_material.leaf_pem, tls_material.key_pem)
    srv = LocalServer(tls=context)
    yield srv
    srv.close()


@pytest.fixture
def connect_log(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Record the address of every socket.connect made while the test runs."""
    seen: list[Any] = []
    original = socket.socket.connect

    def spy(self: socket.socket, address: Any) -> None:
        seen.append(address)
        original(self, address)

    monkeypatch.setattr(socket.socket, "connect", spy)
    return seen


def local_policy(**overrides: Any) -> OutboundPolicy:
    """Policy for the plain-http test server: loopback allowed, http allowed, short timeout."""
    values: dict[str, Any] = {"allow_http": True, "allowed_networks": LOOPBACK, "timeout": 2.0}
    values.update(overrides)
    return OutboundPolicy(**values)


def tls_policy(material: TLSMaterial, **overrides: Any) -> OutboundPolicy:
    values: dict[str, Any] = {
        "allowed_networks": LOOPBACK,
        "ca_bundle": str(material.ca_pem),
        "timeout": 2.0,
    }
    values.update(overrides)
    return OutboundPolicy(**values)


def refused(call: Callable[[], object]) -> FetchError:
    with pytest.raises(FetchError) as info:
        call()
    return info.value


def json_body_of_size(size: int) -> bytes:
    """A valid JSON object of exactly ``size`` bytes."""
    body = b'{"k": "' + b"x" * (size - 9) + b'"}'
    assert len(body) == size
    return body


# ----------------------------------------------------------------- hostile URL table

STRICT = OutboundPolicy(timeout=2.0)
HTTP_OK = OutboundPolicy(allow_http=True, timeout=2.0)
LOCAL = OutboundPolicy(allow_http=True, allowed_networks=LOOPBACK, timeout=2.0)
EVERYTHING = OutboundPolicy(
    allow_http=True,
    allowed_networks=(ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")),
    timeout=2.0,
)

HOSTILE: list[tuple[str, OutboundPolicy, str]] = [
    # scheme
    ("http://public.test/jwks", STRICT, "scheme_not_allowed"),
    ("http://public.test/jwks", HTTP_OK, "scheme_not_allowed"),  # http needs loopback
    (f"http://{PUBLIC_IP}/jwks", HTTP_OK, "scheme_not_allowed"),
    ("http://10.0.0.5/", EVERYTHING, "scheme_not_allowed"),  # allowed net, still not loopback
    ("ftp://public.test/jwks", STRICT, "scheme_not_allowed"),
    ("file:///etc/passwd", STRICT, "scheme_not_allowed"),
    ("gopher://public.test:70/_GET", STRICT, "scheme_not_allowed"),
    ("javascript:alert(1)", STRICT, "scheme_not_allowed"),
    # userinfo and fragments
    ("https://user:pw@public.test/", STRICT, "userinfo_not_allowed"),
    ("https://@public.test/", STRICT, "userinfo_not_allowed"),
    ("https://evil.com@127.0.0.1/", LOCAL, "userinfo_not_allowed"),
    ("https://public.test/jwks#frag", STRICT, "fragment_not_allowed"),
    ("https://public.test/jwks#", STRICT, "fragment_not_allowed"),
    # odd numeric encodings: refused even where the decoded address would be allowed
    ("http://2852039166/", EVERYTHING, "non_canonical_ip"),
    ("https://0xA9FEA9FE/", EVERYTHING, "non_canonical_ip"),
    ("https://0251.0376.0251.0376/", EVERYTHING, "non_canonical_ip"),
    ("https://127.1/", LOCAL, "non_canonical_ip"),
    ("https://0x7f.0.0.1/", LOCAL, "non_canonical_ip"),
    ("https://017700000001/", LOCAL, "non_canonical_ip"),
    ("https://127.000.000.001/", LOCAL, "non_canonical_ip"),
    ("https://127.0.0.1./", LOCAL, "non_canonical_ip"),
    ("https://256.0.0.1/", EVERYTHING, "non_canonical_ip"),
    ("https://[::ffff:127.0.0.1]/", EVERYTHING, "non_canonical_ip"),
    ("https://[::ffff:169.254.169.254]/", EVERYTHING, "non_canonical_ip"),
    ("https://[::ffff:a9fe:a9fe]/", EVERYTHING, "non_canonical_ip"),
    # non-public literals
    ("https://0.0.0.0/", STRICT, "address_not_allowed"),
    ("https://[::]/", STRICT, "address_not_allowed"),
    ("https://[::1]/", STRICT, "address_not_allowed"),
    ("https://127.0.0.1/", STRICT, "address_not_allowed"),
    ("https://[fe80::1]/", STRICT, "address_not_allowed"),
    ("https://169.254.169.254/latest/meta-data", STRICT, "address_not_allowed"),
    ("https://10.0.0.5/", STRICT, "address_not_allowed"),
    ("HTTPS://10.0.0.5/", STRICT, "address_not_allowed"),
    ("https://172.16.0.1/", STRICT, "address_not_allowed"),
    ("https://192.168.1.1/", STRICT, "address_not_allowed"),
    ("https://100.64.0.1/", STRICT, "address_not_allowed"),
    ("https://224.0.0.1/", STRICT, "address_not_allowed"),
    ("https://240.0.0.1/", STRICT, "address_not_allowed"),
    ("https://255.255.255.255/", STRICT, "address_not_allowed"),
    ("https://192.0.2.1/", STRICT, "address_not_allowed"),
    ("https://[fc00::1]/", STRICT, "address_not_allowed"),
    ("https://[ff02::1]/", STRICT, "address_not_allowed"),
    ("https://[fec0::1]/", STRICT, "address_not_allowed"),
    ("https://[2001:db8::1]/", STRICT, "address_not_allowed"),
    ("https://[2002:a00:5::1]/", STRICT, "address_not_allowed"),  # 6to4 wrapping 10.0.0.5
    ("https://[64:ff9b::a9fe:a9fe]/", STRICT, "address_not_allowed"),  # NAT64 of metadata
    ("https://[2001:0:4136:e378:8000:63bf:f5ff:fffa]/", STRICT, "address_not_allowed"),  # Teredo
    # names whose resolution is hostile
    ("https://evil.test/", STRICT, "address_not_allowed"),
    ("https://mixed.test/", STRICT, "address_not_allowed"),
    ("https://mapped.test/", EVERYTHING, "address_not_allowed"),
    ("https://metadata.test/", STRICT, "address_not_allowed"),
    ("https://nxdomain.test/", STRICT, "dns_failure"),
    ("https://empty.test/", STRICT, "dns_failure"),
    ("https://garbage.test/", STRICT, "dns_failure"),
    # malformed
    ("https://public.test/" + "a" * 2048, STRICT, "bad_url"),
    ("https:public.test/", STRICT, "bad_url"),
    ("//public.test/", STRICT, "bad_url"),
    ("https://public.test:0/", STRICT, "bad_url"),
    ("https://public.test:99999/", STRICT, "bad_url"),
    ("https://public.test:+443/", STRICT, "bad_url"),
    ("https://public .test/", STRICT, "bad_url"),
    ("https://public.test\r\nX-Injected: 1/", STRICT, "bad_url"),
    ("https://public.test\\@10.0.0.5/", STRICT, "bad_url"),
    ("https://pübl1c.test/", STRICT, "bad_url"),
    ("https://public.test/café", STRICT, "bad_url"),
    ("https://exam\tple.test/", STRICT, "bad_url"),  # urlsplit would silently drop the tab
    ("https://public.test/jw\nks", STRICT, "bad_url"),
    ("https://public%2etest/", STRICT, "bad_url"),
    ("https://[fe80::1%25eth0]/", EVERYTHING, "bad_url"),
    ("https://::1/", EVERYTHING, "bad_url"),
    ("https:///jwks", STRICT, "bad_url"),
    ("", STRICT, "bad_url"),
]

HOSTILE_DNS = {
    "public.test": [PUBLIC_IP],
    "evil.test": ["10.0.0.5"],
    "mixed.test": [PUBLIC_IP, "10.0.0.5"],
    "mapped.test": [f"::ffff:{PUBLIC_IP}"],
    "metadata.test": ["169.254.169.254"],
    "empty.test": [],
    "garbage.test": ["not-an-ip"],
}


def test_hostile_table_is_big_enough() -> None:
    assert len(HOSTILE) >= 25


@pytest.mark.parametrize(("url", "policy", "reason"), HOSTILE, ids=[h[0][:60] for h in HOSTILE])
def test_hostile_urls_are_refused_before_connecting(
    url: str, policy: OutboundPolicy, reason: str, server: LocalServer, connect_log: list[Any]
) -> None:
    resolver = FakeResolver(HOSTILE_DNS)
    error = refused(lambda: fetch_json(url, policy=policy, resolve=resolver))
    assert error.reason == reason, error.message
    assert str(error) == error.message
    assert connect_log == []
    assert server.requests == []
    # check_url gives the same verdict without fetching.
    assert refused(lambda: check_url(url, policy=policy, resolve=resolver)).reason == reason


def test_literal_hosts_never_call_the_resolver() -> None:
    resolver = FakeResolver()
    refused(lambda: fetch_json("https://10.0.0.5/", policy=STRICT, resolve=resolver))
    refused(lambda: fetch_json("https://0xA9FEA9FE/", policy=STRICT, resolve=resolver))
    assert resolver.calls == []


def test_private_resolution_message_does_not_name_the_address(
    caplog: pytest.LogCaptureFixture,
) -> None:
    resolver = FakeResolver({"evil.test": ["10.0.0.5"]})
    with caplog.at_level(logging.WARNING, logger="outbound"):
        error = refused(lambda: fetch_json("https://evil.test/", policy=STRICT, resolve=resolver))
    assert error.reason == "address_not_allowed"
    assert error.message == "evil.test resolves to a non-public address, which is not allowed"
    assert "10.0.0.5" not in error.message and "private" not in error.message
    # The operator's log keeps what the name resolved to.
    assert "evil.test" in caplog.text and "10.0.0.5" in caplog.text


@pytest.mark.parametrize(
    ("policy", "addresses"),
    [
        (STRICT, ["192.168.7.7"]),
        (STRICT, ["2001:db8::7"]),
        (STRICT, ["::ffff:10.0.0.7"]),
        (STRICT, ["93.184.216.34", "172.16.5.5"]),
        # plain http to an allowed (internal) network that is not loopback
        (
            OutboundPolicy(allow_http=True, allowed_networks=(ipaddress.ip_network("10.0.0.0/8"),)),
            ["10.0.0.7"],
        ),
    ],
)
def test_no_refusal_names_what_a_host_resolves_to(
    policy: OutboundPolicy, addresses: list[str]
) -> None:
    resolver = FakeResolver({"internal.test": addresses})
    url = "http://internal.test/" if policy.allow_http else "https://internal.test/"
    error = refused(lambda: fetch_json(url, policy=policy, resolve=resolver))
    assert error.reason in ("address_not_allowed", "scheme_not_allowed")
    for address in addresses:
        assert address not in error.message, error.message


@pytest.mark.parametrize(
    ("host", "words"),
    [
        ("127.0.0.1", ["a loopback address"]),
        ("169.254.169.254", ["link-local (cloud metadata)"]),
        ("169.254.1.1", ["a link-local address"]),
        ("100.64.0.1", ["carrier-grade NAT"]),
        ("192.0.2.1", ["a documentation address"]),
        ("224.0.0.1", ["a multicast address"]),
        ("255.255.255.255", ["a broadcast address"]),
        ("240.0.0.1", ["a reserved address"]),
        ("[ff02::1]", ["a multicast address"]),
        ("[fe80::1]", ["a link-local address"]),
        ("[fc00::1]", ["unique-local"]),
        ("[2002:a00:5::1]", ["6to4", "a private address 10.0.0.5"]),
        ("[2001:0:4136:e378:8000:63bf:f5ff:fffa]", ["Teredo", "a private address 10.0.0.5"]),
        ("[64:ff9b::a9fe:a9fe]", ["NAT64", "169.254.169.254"]),
    ],
)
def test_refusal_messages_say_what_kind_of_address(host: str, words: list[str]) -> None:
    error = refused(lambda: check_url(f"https://{host}/", policy=STRICT))
    assert error.reason == "address_not_allowed"
    for word in words:
        assert word in error.message


def test_one_bad_address_taints_the_whole_name() -> None:
    resolver = FakeResolver({"mixed.test": [PUBLIC_IP, "169.254.169.254"]})
    error = refused(lambda: check_url("https://mixed.test/", policy=STRICT, resolve=resolver))
    assert error.reason == "address_not_allowed"
    assert "resolves to a non-public address" in error.message
    assert "169.254.169.254" not in error.message


def test_mapped_address_is_refused_even_inside_allowed_networks() -> None:
    policy = OutboundPolicy(allowed_networks=(ipaddress.ip_network("::ffff:0:0/96"),))
    resolver = FakeResolver({"mapped.test": ["::ffff:10.0.0.5"]})
    error = refused(lambda: check_url("https://mapped.test/", policy=policy, resolve=resolver))
    assert error.reason == "address_not_allowed"
    assert "resolves to a non-public address" in error.message
    assert "10.0.0.5" not in error.message


def test_non_canonical_message_is_clear() -> None:
    error = refused(lambda: check_url("https://2852039166/", policy=STRICT))
    assert error.reason == "non_canonical_ip"
    assert "canonical dotted-quad" in error.message


def test_url_length_limit_is_2048() -> None:
    resolver = FakeResolver({"public.test": [PUBLIC_IP]})
    base = "https://public.test/"
    check_url(base + "a" * (2048 - len(base)), policy=STRICT, resolve=resolver)
    error = refused(
        lambda: check_url(base + "a" * (2049 - len(base)), policy=STRICT, resolve=resolver)
    )
    assert error.reason == "bad_url"


def test_check_url_explains_without_connecting(connect_log: list[Any]) -> None:
    resolver = FakeResolver({"issuer.example": [PUBLIC_IP, "2606:4700::1111"]})
    target, addresses = check_url(
        "https://Issuer.Example:8443/path/jwks?x=1&y", policy=STRICT, resolve=resolver
    )
    assert addresses == [PUBLIC_IP, "2606:4700::1111"]
    assert (target.scheme, target.host, target.port) == ("https", "issuer.example", 8443)
    assert target.request_target == "/path/jwks?x=1&y"
    assert target.host_header == "issuer.example:8443"
    assert target.ip_literal is None
    assert resolver.calls == [("issuer.example", 8443)]
    assert connect_log == []


def test_check_url_default_port_and_ipv6_host_header() -> None:
    target, addresses = check_url("https://[2606:4700::1111]/", policy=STRICT)
    assert target.port == 443
    assert target.host_header == "[2606:4700::1111]"
    assert target.request_target == "/"
    assert addresses == ["2606:4700::1111"]


def test_public_address_passes_the_check() -> None:
    _target, addresses = check_url(f"https://{PUBLIC_IP}/jwks", policy=STRICT)
    assert addresses == [PUBLIC_IP]


def test_resolver_exceptions_other_than_os_errors_propagate() -> None:
    def broken(host: str, port: int) -> list[str]:
        raise RuntimeError("bug in resolver")

    with pytest.raises(RuntimeError):
        check_url("https://x.test/", policy=STRICT, resolve=broken)


def test_slow_resolver_is_cut_by_the_deadline() -> None:
    def slow(host: str, port: int) -> list[str]:
        time.sleep(2)
        return [PUBLIC_IP]

    started = time.monotonic()
    error = refused(
        lambda: fetch_json("https://slow.test/", policy=OutboundPolicy(timeout=0.3), resolve=slow)
    )
    assert error.reason == "timeout"
    assert time.monotonic() - started < 1.0


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_ipv4_literals_pass_only_when_public(value: int) -> None:
    ip = ipaddress.IPv4Address(value)
    special = ipaddress.ip_network("192.0.0.0/24")
    public = ip.is_global and not ip.is_multicast and ip not in special
    if public:
        assert check_url(f"https://{ip}/", policy=STRICT)[1] == [str(ip)]
    else:
        error = refused(lambda: check_url(f"https://{ip}/", policy=STRICT))
        assert error.reason == "address_not_allowed"


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=0, max_value=2**32 - 1),
    st.sampled_from(["decimal", "hex", "octal", "hexdotted", "short"]),
)
def test_non_canonical_ipv4_encodings_are_always_refused(value: int, form: str) -> None:
    octets = ipaddress.IPv4Address(value).packed
    host = {
        "decimal": str(value),
        "hex": hex(value),
        "octal": ".".join("0" + oct(o)[2:] for o in octets),
        "hexdotted": ".".join(hex(o) for o in octets),
        "short": f"{octets[0]}.{int.from_bytes(octets[1:], 'big')}",
    }[form]
    error = refused(lambda: check_url(f"https://{host}/", policy=EVERYTHING))
    assert error.reason == "non_canonical_ip"


# ------------------------------------------------------------ loopback and rebinding


def test_loopback_http_needs_both_allowed_network_and_allow_http(
    server: LocalServer,
) -> None:
    server.routes["/doc"] = Route()
    url = server.url("/doc")

    no_net = refused(lambda: fetch_json(url, policy=OutboundPolicy(allow_http=True)))
    assert no_net.reason == "address_not_allowed"
    no_http = refused(lambda: fetch_json(url, policy=OutboundPolicy(allowed_networks=LOOPBACK)))
    assert no_http.reason == "scheme_not_allowed"
    assert server.requests == []

    result = fetch_json(url, policy=local_policy())
    assert result.status == 200
    assert result.data == {"ok": True}
    assert result.address == "127.0.0.1"
    assert result.certificate is None
    assert len(server.requests) == 1


def test_request_carries_expected_headers(server: LocalServer) -> None:
    server.routes["/jwks"] = Route()
    fetch_json(server.url("/jwks?a=1"), policy=local_policy())
    [seen] = server.requests
    assert seen.path == "/jwks?a=1"
    assert seen.headers["host"] == f"127.0.0.1:{server.port}"
    assert seen.headers["user-agent"] == "trustportal"
    assert seen.headers["accept"] == "application/json"
    assert "if-none-match" not in seen.headers


def test_dns_rebinding_is_impossible(server: LocalServer, connect_log: list[Any]) -> None:
    server.routes["/.well-known/openid-configuration"] = Route()
    answers = iter([["127.0.0.1"], ["169.254.169.254"], ["10.0.0.5"]])
    calls: list[tuple[str, int]] = []

    def rebinding(host: str, port: int) -> list[str]:
        # A hostile DNS server: the first answer passes the check, later ones would not.
        calls.append((host, port))
        return next(answers)

    url = f"http://issuer.test:{server.port}/.well-known/openid-configuration"
    result = fetch_json(url, policy=local_policy(), resolve=rebinding)

    assert calls == [("issuer.test", server.port)]
    assert connect_log == [("127.0.0.1", server.port)]
    assert result.address == "127.0.0.1"
    [seen] = server.requests
    assert seen.headers["host"] == f"issuer.test:{server.port}"


def test_unreachable_port_is_connection_failed(connect_log: list[Any]) -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    error = refused(lambda: fetch_json(f"http://127.0.0.1:{port}/", policy=local_policy()))
    assert error.reason == "connection_failed"
    assert connect_log == [("127.0.0.1", port)]


# ------------------------------------------------------------------ response handling


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects_are_refused_and_not_followed(
    status: int, server: LocalServer, connect_log: list[Any]
) -> None:
    target = "http://169.254.169.254/latest/meta-data"
    server.routes["/r"] = Route(status=status, body=b"", headers=(("Location", target),))
    error = refused(lambda: fetch_json(server.url("/r"), policy=local_policy()))
    assert error.reason == "redirect_refused"
    assert error.status == status
    assert target in error.message
    assert connect_log == [("127.0.0.1", server.port)]
    assert [r.path for r in server.requests] == ["/r"]


@pytest.mark.parametrize("status", [400, 404, 500, 503])
def test_non_2xx_is_bad_status(status: int, server: LocalServer) -> None:
    server.routes["/x"] = Route(status=status, body=b'{"error": "nope"}')
    error = refused(lambda: fetch_json(server.url("/x"), policy=local_policy()))
    assert error.reason == "bad_status"
    assert error.status == status
    assert str(status) in error.message


@pytest.mark.parametrize(
    "content_type",
    [
        "text/html",
        "text/html; charset=utf-8",
        "text/plain",
        "text/json",
        "application/javascript",
        "application/jsonp",
        "application/json; charset=iso-8859-1",
        "application/+json",
        None,
    ],
)
def test_non_json_content_type_is_refused(content_type: str | None, server: LocalServer) -> None:
    server.routes["/x"] = Route(content_type=content_type, body=b"{}")
    error = refused(lambda: fetch_json(server.url("/x"), policy=local_policy()))
    assert error.reason == "not_json"


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "Application/JSON",
        "application/json; charset=utf-8",
        'application/json;charset="UTF-8"',
        "application/jwk-set+json",
        "application/problem+json; charset=utf-8",
    ],
)
def test_json_content_types_are_accepted(content_type: str, server: LocalServer) -> None:
    server.routes["/x"] = Route(content_type=content_type, body=b'{"keys": []}')
    assert fetch_json(server.url("/x"), policy=local_policy()).data == {"keys": []}


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"<html></html>",
        b'{"a": 1, "a": 2}',
        b'{"outer": {"b": 1, "b": 2}}',
        b'{"a": NaN}',
        b'{"a": Infinity}',
        b'{"a": -Infinity}',
        b"[1, 2]",
        b'"just a string"',
        b"null",
        b"42",
        b'{"a": "\xff"}',
        b"\xef\xbb\xbf{}",  # UTF-8 BOM
        b"\xff\xfe{\x00}\x00",  # UTF-16
        b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"a": 1' + b"0" * 5000 + b"}",  # beyond Python's int digit limit
    ],
    ids=lambda b: repr(b[:30]),
)
def test_invalid_json_is_not_json(body: bytes, server: LocalServer) -> None:
    server.routes["/x"] = Route(body=body)
    error = refused(lambda: fetch_json(server.url("/x"), policy=local_policy()))
    assert error.reason == "not_json", error.message


def test_204_without_body_is_not_json(server: LocalServer) -> None:
    server.routes["/x"] = Route(status=204, body=b"", content_type=None)
    error = refused(lambda: fetch_json(server.url("/x"), policy=local_policy()))
    assert error.reason == "not_json"


def test_headers_etag_and_cache_control_are_exposed(server: LocalServer) -> None:
    server.routes["/jwks"] = Route(
        body=b'{"keys": [{"kid": "a"}]}',
        content_type="application/jwk-set+json",
        headers=(("ETag", '"v1"'), ("Cache-Control", "public, max-age=300"), ("X-A", "1")),
    )
    result = fetch_json(server.url("/jwks"), policy=local_policy())
    assert isinstance(result, FetchResult)
    assert result.headers["etag"] == '"v1"'
    assert result.headers["cache-control"] == "public, max-age=300"
    assert all(name == name.lower() for name in result.headers)
    assert parse_cache_control_max_age(result.headers) == 300
    assert result.body == b'{"keys": [{"kid": "a"}]}'
    assert result.url == server.url("/jwks")
    assert pickle.loads(pickle.dumps(result)) == result


def test_fetch_error_survives_pickling() -> None:
    error = FetchError("bad_status", "the server answered HTTP 404 Not Found", status=404)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.reason, copy.message, copy.status, str(copy)) == (
        "bad_status",
        "the server answered HTTP 404 Not Found",
        404,
        "the server answered HTTP 404 Not Found",
    )
    rebuilt = FetchError(*error.args)  # how Celery-style backends rebuild exceptions
    assert (rebuilt.reason, rebuilt.message) == (error.reason, error.message)


def test_if_none_match_and_304(server: LocalServer) -> None:
    server.routes["/jwks"] = Route(
        status=304, body=b"", content_type=None, headers=(("ETag", '"v1"'),)
    )
    result = fetch_json(
        server.url("/jwks"), policy=local_policy(), headers={"If-None-Match": '"v1"'}
    )
    assert (result.status, result.body, result.data) == (304, b"", {})
    assert result.headers["etag"] == '"v1"'
    [seen] = server.requests
    assert seen.headers["if-none-match"] == '"v1"'


def test_caller_may_override_accept(server: LocalServer) -> None:
    server.routes["/x"] = Route()
    fetch_json(
        server.url("/x"), policy=local_policy(), headers={"accept": "application/jwk-set+json"}
    )
    assert server.requests[0].headers["accept"] == "application/jwk-set+json"


@pytest.mark.parametrize(
    "headers",
    [{"Host": "evil.test"}, {"connection": "keep-alive"}, {"X-A": "1\r\nX-B: 2"}],
)
def test_dangerous_request_headers_are_a_programming_error(
    headers: dict[str, str], server: LocalServer
) -> None:
    server.routes["/x"] = Route()
    with pytest.raises(ValueError, match="header"):
        fetch_json(server.url("/x"), policy=local_policy(), headers=headers)
    assert server.requests == []


@pytest.mark.parametrize("framing", ["length", "close", "chunked"])
def test_body_at_the_cap_is_accepted(
    framing: Literal["length", "close", "chunked"], server: LocalServer
) -> None:
    body = json_body_of_size(DEFAULT_MAX_BYTES)
    server.routes["/x"] = Route(body=body, framing=framing, chunk_size=10_000)
    result = fetch_json(server.url("/x"), policy=local_policy())
    assert result.body == body
    assert len(result.data["k"]) == DEFAULT_MAX_BYTES - 9


@pytest.mark.parametrize("framing", ["length", "close", "chunked"])
def test_body_over_the_cap_is_too_large(
    framing: Literal["length", "close", "chunked"], server: LocalServer
) -> None:
    body = json_body_of_size(DEFAULT_MAX_BYTES + 1)
    server.routes["/x"] = Route(body=body, framing=framing, chunk_size=10_000)
    error = refused(lambda: fetch_json(server.url("/x"), policy=local_policy()))
    assert error.reason == "too_large"


def test_declared_length_over_the_cap_is_refused_before_reading(server: LocalServer) -> None:
    # The server promises 10 MiB, sends 10 bytes and then stalls: a client that started
    # reading would sit there until its timeout.
    server.routes["/x"] = Route(body=b'{"a": "b"}', declared_length=10 * 1024 * 1024, hold=3)
    started = time.monotonic()
    error = refused(lambda: fetch_json(server.url("/x"), policy=local_policy(timeout=2.0)))
    assert error.reason == "too_large"
    assert "10485760" in error.message
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize("declared", ["\u00b2", "\uff11\uff12", "-5", "1e9", ""])
def test_a_content_length_that_is_not_ascii_digits_is_no_crash(
    declared: str, server: LocalServer
) -> None:
    # "²" and fullwidth digits pass str.isdigit() but not int(): once a 500 on registration.
    server.routes["/x"] = Route(body=b'{"a": "b"}', declared_length=declared)
    outcome: Any
    try:
        outcome = fetch_json(server.url("/x"), policy=local_policy(timeout=2.0)).data
    except FetchError as error:
        outcome = error.reason
    assert outcome in ({"a": "b"}, "bad_response", "connection_failed", "timeout")


def test_max_bytes_is_configurable(server: LocalServer) -> None:
    server.routes["/x"] = Route(body=json_body_of_size(101), framing="chunked", chunk_size=7)
    policy = local_policy(max_bytes=100)
    assert refused(lambda: fetch_json(server.url("/x"), policy=policy)).reason == "too_large"


def test_chunked_response_with_many_small_chunks_works(server: LocalServer) -> None:
    body = b'{"issuer": "https://issuer.example", "keys": [' + b"1, " * 500 + b"2]}"
    server.routes["/x"] = Route(body=body, framing="chunked", chunk_size=3)
    assert fetch_json(server.url("/x"), policy=local_policy()).body == body


@pytest.mark.parametrize("where", ["body", "headers"])
def test_drip_feeding_server_is_cut_at_the_deadline(where: str, server: LocalServer) -> None:
    body = b'{"a": "' + b"x" * 60 + b'"}'
    if where == "body":
        server.routes["/x"] = Route(body=body, drip=0.05)
    else:
        server.routes["/x"] = Route(body=body, drip_headers=0.05)
    timeout = 0.5
    started = time.monotonic()
    error = refused(lambda: fetch_json(server.url("/x"), policy=local_policy(timeout=timeout)))
    elapsed = time.monotonic() - started
    assert error.reason == "timeout"
    assert elapsed < timeout + 1.0
    assert elapsed >= timeout * 0.9


def test_silent_server_times_out() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts the TCP handshake via the backlog, never answers
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
        started = time.monotonic()
        error = refused(lambda: fetch_json(url, policy=local_policy(timeout=0.5)))
        assert error.reason == "timeout"
        assert time.monotonic() - started < 1.5
    finally:
        listener.close()


def test_truncated_body_is_connection_failed(server: LocalServer) -> None:
    server.routes["/x"] = Route(body=b'{"a": 1}', declared_length=100)
    error = refused(lambda: fetch_json(server.url("/x"), policy=local_policy()))
    assert error.reason == "connection_failed"


# -------------------------------------------------------------------------- caching


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"etag": '"x"'}, None),
        ({"cache-control": "public"}, None),
        ({"cache-control": "max-age=300"}, 300),
        ({"Cache-Control": "public, max-age=86400"}, 86400),
        ({"cache-control": "MAX-AGE=60, must-revalidate"}, 60),
        ({"cache-control": 'max-age="120"'}, 120),
        ({"cache-control": "max-age=0"}, 0),
        ({"cache-control": "no-store"}, 0),
        ({"cache-control": "max-age=600, no-cache"}, 0),
        ({"cache-control": 'no-cache="set-cookie"'}, 0),
        ({"cache-control": "max-age=600, max-age=60"}, 60),
        ({"cache-control": "max-age=abc"}, 0),
        ({"cache-control": "max-age=-5"}, 0),
        ({"cache-control": "max-age="}, 0),
        ({"cache-control": "max-age"}, 0),
        ({"cache-control": "max-age=99999999999999999999"}, 2**31),
        ({"cache-control": "s-maxage=10"}, None),
        ({"cache-control": "max-age=٣"}, 0),  # non-ASCII digit
    ],
)
def test_parse_cache_control_max_age(headers: dict[str, str], expected: int | None) -> None:
    assert parse_cache_control_max_age(headers) == expected


# ------------------------------------------------------------------------------ TLS


def test_https_success_reports_the_leaf_certificate(
    https_server: LocalServer, tls_material: TLSMaterial
) -> None:
    https_server.routes["/jwks"] = Route(body=b'{"keys": []}')
    resolver = FakeResolver({"localhost": ["127.0.0.1"]})
    result = fetch_json(
        https_server.url("/jwks", host="localhost"),
        policy=tls_policy(tls_material),
        resolve=resolver,
    )
    assert result.data == {"keys": []}
    assert result.address == "127.0.0.1"
    cert = result.certificate
    assert cert is not None
    assert cert.sha256 == hashlib.sha256(tls_material.leaf_der).hexdigest()
    assert cert.sha256 == tls_material.leaf_sha256
    assert cert.subject == tls_material.leaf_subject
    assert "CN=localhost" in cert.subject
    assert cert.issuer == tls_material.leaf_issuer
    assert cert.not_after == tls_material.leaf_not_after
    assert cert.not_after.tzinfo is not None
    assert cert.not_after.utcoffset() == UTC.utcoffset(None)
    assert https_server.requests[0].headers["host"] == f"localhost:{https_server.port}"


def test_https_to_ip_literal_uses_the_ip_san(
    https_server: LocalServer, tls_material: TLSMaterial
) -> None:
    https_server.routes["/x"] = Route()
    result = fetch_json(https_server.url("/x"), policy=tls_policy(tls_material))
    assert result.data == {"ok": True}


@pytest.mark.parametrize("form", ["lower", "upper", "colons", "upper-colons", "among-others"])
def test_pinned_thumbprint_matches_in_any_form(
    form: str, https_server: LocalServer, tls_material: TLSMaterial
) -> None:
    https_server.routes["/x"] = Route()
    hexdigest = tls_material.leaf_sha256
    colons = ":".join(hexdigest[i : i + 2] for i in range(0, 64, 2))
    pins: Sequence[str] = {
        "lower": [hexdigest],
        "upper": [hexdigest.upper()],
        "colons": [colons],
        "upper-colons": [colons.upper()],
        "among-others": ["ab" * 32, hexdigest, "cd" * 32],
    }[form]
    result = fetch_json(https_server.url("/x"), policy=tls_policy(tls_material), thumbprints=pins)
    assert result.certificate is not None
    assert result.certificate.sha256 == hexdigest


def test_pin_mismatch_is_refused_before_the_request(
    https_server: LocalServer, tls_material: TLSMaterial
) -> None:
    https_server.routes["/x"] = Route()
    error = refused(
        lambda: fetch_json(
            https_server.url("/x"),
            policy=tls_policy(tls_material),
            thumbprints=["00" * 32],
            headers={"If-None-Match": '"secret-etag"'},
        )
    )
    assert error.reason == "thumbprint_mismatch"
    assert tls_material.leaf_sha256 in error.message
    assert "matches none of the pinned thumbprints" in error.message
    assert https_server.requests == []


def test_untrusted_ca_is_tls_error(https_server: LocalServer, other_ca: TLSMaterial) -> None:
    https_server.routes["/x"] = Route()
    error = refused(lambda: fetch_json(https_server.url("/x"), policy=tls_policy(other_ca)))
    assert error.reason == "tls_error"
    assert https_server.requests == []


def test_system_store_does_not_trust_the_test_ca(
    https_server: LocalServer, tls_material: TLSMaterial
) -> None:
    https_server.routes["/x"] = Route()
    policy = tls_policy(tls_material, ca_bundle=None)
    error = refused(lambda: fetch_json(https_server.url("/x"), policy=policy))
    assert error.reason == "tls_error"
    assert https_server.requests == []


def test_certificate_must_match_the_original_host_name(
    https_server: LocalServer, tls_material: TLSMaterial
) -> None:
    https_server.routes["/x"] = Route()
    resolver = FakeResolver({"issuer.test": ["127.0.0.1"]})
    error = refused(
        lambda: fetch_json(
            https_server.url("/x", host="issuer.test"),
            policy=tls_policy(tls_material),
            resolve=resolver,
        )
    )
    assert error.reason == "tls_error"
    assert https_server.requests == []


def test_missing_ca_bundle_file_is_tls_error(
    https_server: LocalServer, tmp_path: Path, tls_material: TLSMaterial
) -> None:
    policy = tls_policy(tls_material, ca_bundle=str(tmp_path / "missing.pem"))
    error = refused(lambda: fetch_json(https_server.url("/x"), policy=policy))
    assert error.reason == "tls_error"


def test_plain_http_server_behind_https_url_is_tls_error(
    server: LocalServer, tls_material: TLSMaterial
) -> None:
    url = f"https://127.0.0.1:{server.port}/x"
    error = refused(lambda: fetch_json(url, policy=tls_policy(tls_material)))
    assert error.reason == "tls_error"


def test_malformed_pin_is_bad_thumbprint(https_server: LocalServer) -> None:
    error = refused(
        lambda: fetch_json(https_server.url("/x"), policy=local_policy(), thumbprints=["abc"])
    )
    assert error.reason == "bad_thumbprint"
    assert https_server.connections == 0


def test_pin_over_plain_http_is_refused(server: LocalServer) -> None:
    server.routes["/x"] = Route()
    error = refused(
        lambda: fetch_json(server.url("/x"), policy=local_policy(), thumbprints=["ab" * 32])
    )
    assert error.reason == "thumbprint_mismatch"
    assert server.requests == []


# ----------------------------------------------------------------------- thumbprints

DIGEST = hashlib.sha256(b"x").hexdigest()


@pytest.mark.parametrize(
    "value",
    [
        DIGEST,
        DIGEST.upper(),
        ":".join(DIGEST[i : i + 2] for i in range(0, 64, 2)),
        ":".join(DIGEST[i : i + 2] for i in range(0, 64, 2)).upper(),
        f"  {DIGEST}\n",
    ],
)
def test_normalize_thumbprint_accepts_common_forms(value: str) -> None:
    assert normalize_thumbprint(value) == DIGEST


@pytest.mark.parametrize(
    "value",
    ["", "abc", DIGEST[:-1], DIGEST + "0", "g" * 64, f"sha256:{DIGEST}", DIGEST[:32] + " " * 2],
)
def test_normalize_thumbprint_rejects_everything_else(value: str) -> None:
    with pytest.raises(ValueError, match="64 hexadecimal"):
        normalize_thumbprint(value)


@given(st.binary(min_size=32, max_size=32), st.booleans(), st.booleans())
def test_normalize_thumbprint_round_trips(raw: bytes, upper: bool, colons: bool) -> None:
    text = raw.hex(":") if colons else raw.hex()
    assert normalize_thumbprint(text.upper() if upper else text) == raw.hex()


def test_policy_rejects_nonsense_limits() -> None:
    with pytest.raises(ValueError, match="timeout"):
        OutboundPolicy(timeout=0)
    with pytest.raises(ValueError, match="max_bytes"):
        OutboundPolicy(max_bytes=0)
