"""Outbound HTTP guard: the only code in the project that opens sockets to OIDC issuers
(and, through `post`, to the token services of `fn::open` login providers).

Implements product spec §6 ("Outbound HTTP guard"). Every URL goes through the same
pipeline, at registration time and on every later fetch:

1. strict syntax checks on the URL string (scheme, userinfo, fragment, length, host form);
2. one DNS resolution (through an injectable resolver) bounded by the fetch deadline;
3. every resolved address must be globally routable or inside a caller-allowed network;
4. the TCP socket is opened to the *checked* address (no second lookup, so no DNS
   rebinding), TLS is verified against the original host name, optional SHA-256 pins of
   the leaf certificate are compared before any request byte is sent;
5. one request (a GET by fetch_json, a POST by post), no redirects, a whole-fetch
   deadline, a body cap, strict JSON decoding (fetch_json; decode_json for post's callers).

This module deliberately imports nothing from Django so that it can be reasoned about
(and tested) in isolation.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import ipaddress
import logging
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn, cast
from urllib.parse import urlsplit

from cryptography import x509

from kernel.strictjson import loads_object

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_TIMEOUT",
    "MAX_URL_LENGTH",
    "USER_AGENT",
    "Certificate",
    "FetchError",
    "FetchResult",
    "OutboundPolicy",
    "ParsedTarget",
    "Resolver",
    "check_url",
    "decode_json",
    "fetch_json",
    "normalize_thumbprint",
    "parse_cache_control_max_age",
    "post",
    "system_resolve",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_TIMEOUT = 5.0
DEFAULT_MAX_BYTES = 256 * 1024
MAX_URL_LENGTH = 2048
USER_AGENT = "trustportal"
_log = logging.getLogger(__name__)

# Read size for the body loop; small enough that the cap is enforced close to the limit.
_CHUNK = 16 * 1024
# Cache-Control delta-seconds saturate here (RFC 9111 §1.2.2).
_MAX_DELTA_SECONDS = 2_147_483_648
# Headers a caller must not set: they would change framing or the target of the request.
_FORBIDDEN_REQUEST_HEADERS = frozenset(
    {"host", "connection", "content-length", "transfer-encoding"}
)


@dataclass(frozen=True)
class OutboundPolicy:
    """Caller-chosen knobs for one fetch; it does not relax the non-negotiable checks.

    Userinfo, fragments, non-canonical IPv4 literals and IPv4-mapped IPv6 addresses are
    refused whatever the policy says. ``allowed_networks`` only lifts the "must be globally
    routable" rule for addresses inside those networks (e.g. a self-hosted GitLab on
    10.0.0.0/8, or 127.0.0.0/8 in dev and tests).
    """

    allow_http: bool = False
    allowed_networks: tuple[IPNetwork, ...] = ()
    ca_bundle: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    max_bytes: int = DEFAULT_MAX_BYTES

    def __post_init__(self) -> None:
        """Reject nonsensical limits early; does not check that ca_bundle exists (TLS does)."""
        if not self.timeout > 0:
            raise ValueError("OutboundPolicy.timeout must be a positive number of seconds")
        if self.max_bytes <= 0:
            raise ValueError("OutboundPolicy.max_bytes must be positive")


class FetchError(Exception):
    """A refused or failed fetch with a stable ``reason`` code; it never wraps a traceback.

    ``reason`` is a snake_case code that callers may branch on or store; ``message`` is
    plain English for an operator. ``status`` is set when an HTTP status was received.
    """

    def __init__(self, reason: str, message: str, *, status: int | None = None) -> None:
        # args carry (reason, message) so that serializers that rebuild exceptions as
        # cls(*args) (pickle, Celery result backends) get an equivalent error back.
        super().__init__(reason, message)
        self.reason = reason
        self.message = message
        self.status = status

    def __str__(self) -> str:
        """Return the operator message only; the reason code is available separately."""
        return self.message

    def __repr__(self) -> str:
        """Show reason and message for logs; does not include chained exceptions."""
        return f"FetchError({self.reason!r}, {self.message!r})"

    def __reduce__(self) -> tuple[type[FetchError], tuple[str, str], dict[str, Any]]:
        """Pickle as (reason, message) plus status; does not keep the traceback."""
        return (type(self), (self.reason, self.message), {"status": self.status})


@dataclass(frozen=True)
class Certificate:
    """Facts about the served leaf certificate for display; it is not a trust decision."""

    sha256: str
    subject: str
    issuer: str
    not_after: datetime


@dataclass(frozen=True)
class ParsedTarget:
    """A URL split into what the connection needs; it carries no resolution results.

    ``host`` is lower-case and without IPv6 brackets; ``host_header`` is what goes into the
    Host header (brackets and a non-default port included); ``request_target`` is the
    path plus query, exactly as written in the URL.
    """

    url: str
    scheme: str
    host: str
    port: int
    request_target: str
    host_header: str
    ip_literal: IPAddress | None


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


Resolver = Callable[[str, int], Sequence[str]]


def system_resolve(host: str, port: int) -> list[str]:
    """Resolve ``host`` with getaddrinfo to unique IP strings; does not check them."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        address = str(sockaddr[0])
        if address not in seen:
            seen.append(address)
    return seen


# --------------------------------------------------------------------------- URL parsing

_DEC_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_CANONICAL_IPV4 = re.compile(rf"{_DEC_OCTET}(?:\.{_DEC_OCTET}){{3}}")
# The last label decides whether a host is "numeric" (WHATWG URL rule); inet_aton-style
# parsers accept decimal, octal and hex labels, so all of those count.
_NUMERIC_LABEL = re.compile(r"0x[0-9a-f]*|[0-9]+")
_HOST_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_PORT = re.compile(r"[0-9]{1,5}")


def _refuse(reason: str, message: str, *, status: int | None = None) -> NoReturn:
    """Raise a FetchError; exists so that every refusal site reads the same."""
    raise FetchError(reason, message, status=status)


def _parse_url(url: str, policy: OutboundPolicy) -> ParsedTarget:
    """Validate the URL string and split it; it does no DNS and opens no socket.

    Refuses anything a lenient parser could read differently from us: control characters
    and spaces (urlsplit silently strips some), backslashes, non-ASCII, userinfo, fragments.
    """
    if not isinstance(url, str) or not url:
        _refuse("bad_url", "the URL is empty")
    if len(url) > MAX_URL_LENGTH:
        _refuse("bad_url", f"the URL is {len(url)} characters long; the limit is {MAX_URL_LENGTH}")
    if any(not ("!" <= ch <= "~") for ch in url):
        _refuse(
            "bad_url",
            "the URL contains spaces, control characters or non-ASCII characters; "
            "percent-encode them (and write international host names in punycode)",
        )
    if "\\" in url:
        _refuse("bad_url", "the URL contains a backslash, which parsers disagree about")

    scheme_end = url.find(":")
    scheme = url[:scheme_end].lower() if scheme_end > 0 else ""
    if not re.fullmatch(r"[a-z][a-z0-9+.-]*", scheme):
        _refuse("bad_url", "the URL is not absolute (it must start with https://)")
    if scheme not in ("https", "http"):
        _refuse("scheme_not_allowed", f"the URL scheme {scheme!r} is not allowed; use https")
    if scheme == "http" and not policy.allow_http:
        _refuse("scheme_not_allowed", "plain http is not allowed; use https")
    if not url[scheme_end + 1 :].startswith("//"):
        _refuse("bad_url", "the URL has no host (expected scheme://host/...)")
    if "#" in url:
        _refuse("fragment_not_allowed", "the URL contains a fragment (#...), which is not allowed")

    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. "Invalid IPv6 URL" for unbalanced brackets
        _refuse("bad_url", f"the URL cannot be parsed ({exc})")
    netloc = parts.netloc
    if "@" in netloc:
        # Even an empty "@" is refused: "https://evil.example@10.0.0.5/" is a classic trick.
        _refuse("userinfo_not_allowed", "the URL contains a user name or password (...@host)")

    host, port_text = _split_netloc(netloc)
    port = 443 if scheme == "https" else 80
    if port_text is not None:
        if not _PORT.fullmatch(port_text) or not 1 <= int(port_text) <= 65535:
            _refuse("bad_url", f"the URL port {port_text!r} is not a number between 1 and 65535")
        port = int(port_text)

    ip_literal = _parse_host(host, bracketed=netloc.startswith("["))

    path = parts.path
    if path and not path.startswith("/"):
        _refuse("bad_url", "the URL path must start with '/'")
    request_target = path or "/"
    if "?" in url:
        request_target += "?" + parts.query

    default_port = 443 if scheme == "https" else 80
    shown_host = f"[{host}]" if isinstance(ip_literal, ipaddress.IPv6Address) else host
    host_header = shown_host if port == default_port else f"{shown_host}:{port}"
    return ParsedTarget(
        url=url,
        scheme=scheme,
        host=host,
        port=port,
        request_target=request_target,
        host_header=host_header,
        ip_literal=ip_literal,
    )


def _split_netloc(netloc: str) -> tuple[str, str | None]:
    """Split host and optional port text; does not validate either beyond bracket syntax."""
    if not netloc:
        _refuse("bad_url", "the URL has no host")
    if netloc.startswith("["):
        end = netloc.find("]")
        if end < 0:
            _refuse("bad_url", "the URL has an unterminated IPv6 literal")
        host, rest = netloc[1:end], netloc[end + 1 :]
        if rest and not rest.startswith(":"):
            _refuse("bad_url", "unexpected characters after the IPv6 literal")
        return host.lower(), (rest[1:] if rest else None)
    if "[" in netloc or "]" in netloc:
        _refuse("bad_url", "misplaced '[' or ']' in the URL host")
    host, sep, port_text = netloc.partition(":")
    if ":" in port_text:
        _refuse("bad_url", "the URL host has more than one ':' (IPv6 literals need brackets)")
    return host.lower(), (port_text if sep else None)


def _parse_host(host: str, *, bracketed: bool) -> IPAddress | None:
    """Return the IP for an IP-literal host, None for a DNS name; does not resolve names.

    Any IPv4-looking host that is not exactly canonical dotted-quad is refused, because
    getaddrinfo/inet_aton would happily turn ``2852039166`` or ``0251.0376.0251.0376``
    into 169.254.169.254 behind our back.
    """
    if not host:
        _refuse("bad_url", "the URL has an empty host")
    if bracketed:
        if "%" in host:
            _refuse("bad_url", "IPv6 zone identifiers (%...) are not allowed in the URL")
        try:
            v6 = ipaddress.IPv6Address(host)
        except ValueError:
            _refuse("bad_url", f"[{host}] is not a valid IPv6 address")
        if v6.ipv4_mapped is not None:
            _refuse(
                "non_canonical_ip",
                f"[{host}] is the IPv4 address {v6.ipv4_mapped} written as an IPv4-mapped "
                "IPv6 address; such hosts are always refused",
            )
        return v6

    labels = host.split(".")
    last = labels[-1] if labels[-1] or len(labels) == 1 else labels[-2]
    if _NUMERIC_LABEL.fullmatch(last):
        if not _CANONICAL_IPV4.fullmatch(host):
            _refuse(
                "non_canonical_ip",
                f"the host {host!r} is a numeric address that is not in canonical dotted-quad "
                "form (like 192.0.2.10); decimal, octal, hex and shortened forms are refused",
            )
        return ipaddress.IPv4Address(host)

    if len(host) > 253:
        _refuse("bad_url", "the URL host name is longer than 253 characters")
    for label in labels:
        if not _HOST_LABEL.fullmatch(label):
            _refuse(
                "bad_url",
                f"the URL host {host!r} is not a valid host name "
                "(letters, digits, '-' and '.' only; no empty labels or trailing dot)",
            )
    return None


# ----------------------------------------------------------------------- address checks

_IPV4_NAMED: tuple[tuple[ipaddress.IPv4Network, str], ...] = tuple(
    (ipaddress.IPv4Network(net), kind)
    for net, kind in (
        ("0.0.0.0/8", "an unspecified ('this network')"),
        ("127.0.0.0/8", "a loopback"),
        ("169.254.169.254/32", "a link-local (cloud metadata)"),
        ("169.254.0.0/16", "a link-local"),
        ("10.0.0.0/8", "a private"),
        ("172.16.0.0/12", "a private"),
        ("192.168.0.0/16", "a private"),
        ("100.64.0.0/10", "a shared (carrier-grade NAT)"),
        ("192.0.0.0/24", "an IETF protocol assignment"),
        ("192.0.2.0/24", "a documentation"),
        ("198.51.100.0/24", "a documentation"),
        ("203.0.113.0/24", "a documentation"),
        ("198.18.0.0/15", "a benchmarking"),
        ("224.0.0.0/4", "a multicast"),
        ("255.255.255.255/32", "a broadcast"),
        ("240.0.0.0/4", "a reserved"),
    )
)
_IPV6_NAMED: tuple[tuple[ipaddress.IPv6Network, str], ...] = tuple(
    (ipaddress.IPv6Network(net), kind)
    for net, kind in (
        ("::/128", "an unspecified"),
        ("::1/128", "a loopback"),
        ("fe80::/10", "a link-local"),
        ("fc00::/7", "a private (unique-local)"),
        ("fec0::/10", "a site-local"),
        ("ff00::/8", "a multicast"),
        ("2001:db8::/32", "a documentation"),
        ("3fff::/20", "a documentation"),
        ("100::/64", "a discard-only"),
    )
)
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))


def _address_problem(ip: IPAddress) -> str | None:
    """Describe why an address is not publicly routable, or None if it is; ignores policy.

    Python 3.11's ``is_global`` calls multicast, site-local and NAT64 addresses global, so
    explicit tables come first and ``is_global`` is only the final catch-all.
    """
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return "a scoped (zone-qualified)"
        if ip.ipv4_mapped is not None:
            return "an IPv4-mapped IPv6"
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            kind, v4 = embedded
            inner = _address_problem(v4)
            if inner is not None:
                return f"a {kind} (embedding {inner} address {v4})"
        for net6, kind in _IPV6_NAMED:
            if ip in net6:
                return kind
    else:
        for net4, kind in _IPV4_NAMED:
            if ip in net4:
                return kind
    if ip.is_private:
        return "a private"
    if ip.is_reserved or ip.is_multicast or ip.is_unspecified:
        return "a reserved"
    if not ip.is_global:
        return "a non-public"
    return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    """Return the IPv4 address tunnelled inside 6to4/Teredo/NAT64 forms; ignores others."""
    if ip.sixtofour is not None:
        return "6to4", ip.sixtofour
    if ip.teredo is not None:
        # Teredo carries the client address obfuscated; that is the one that would be hit.
        return "Teredo", ip.teredo[1]
    for net in _NAT64:
        if ip in net:
            return "NAT64", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _check_address(host: str, ip: IPAddress, policy: OutboundPolicy) -> None:
    """Refuse one address unless it is public or inside an allowed network; no I/O."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        # Mapped addresses are refused even when allowed_networks would match: they are the
        # standard way to smuggle an IPv4 target past IPv6-only checks.
        _refuse("address_not_allowed", _address_message(host, ip, "an IPv4-mapped IPv6"))
    if any(ip in net for net in policy.allowed_networks):
        return
    problem = _address_problem(ip)
    if problem is not None:
        _refuse("address_not_allowed", _address_message(host, ip, problem))


def _address_message(host: str, ip: IPAddress, problem: str) -> str:
    """The message for a refused address; what a name resolves to is logged, never shown
    (it would map the internal network for anyone who may register an issuer)."""
    if host == str(ip):
        return f"{host} is {problem} address, which is not allowed"
    _log.warning("refused %s: it resolves to %s address %s", host, problem, ip)
    return f"{host} resolves to a non-public address, which is not allowed"


# --------------------------------------------------------------------------- resolution


def _deadline_remaining(deadline: float, what: str) -> float:
    """Seconds left before the deadline; raises a timeout FetchError instead of returning <=0."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        _refuse("timeout", f"the fetch took longer than allowed ({what})")
    return remaining


def _resolve(resolve: Resolver, host: str, port: int, deadline: float) -> list[IPAddress]:
    """Call the resolver exactly once, bounded by the deadline; does not check the addresses.

    getaddrinfo cannot be interrupted, so it runs on a daemon thread that we stop waiting
    for at the deadline (the thread finishes on its own later).
    """
    outcome: list[Sequence[str] | BaseException] = []

    def run() -> None:
        try:
            outcome.append(resolve(host, port))
        except BaseException as exc:  # handed over to the caller's thread below
            outcome.append(exc)

    worker = threading.Thread(target=run, name=f"resolve {host}", daemon=True)
    worker.start()
    worker.join(_deadline_remaining(deadline, f"resolving {host}"))
    if not outcome:
        _refuse("timeout", f"resolving {host} took longer than allowed")
    result = outcome[0]
    if isinstance(result, OSError | UnicodeError):
        _refuse("dns_failure", f"could not resolve {host}: {result}")
    if isinstance(result, BaseException):
        raise result
    if isinstance(result, str) or not result:
        _refuse("dns_failure", f"{host} did not resolve to any address")
    addresses: list[IPAddress] = []
    for text in result:
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            _refuse("dns_failure", f"resolving {host} returned something that is not an address")
        if ip not in addresses:
            addresses.append(ip)
    return addresses


def _check_target(
    url: str, policy: OutboundPolicy, resolve: Resolver, deadline: float
) -> tuple[ParsedTarget, list[IPAddress]]:
    """Run every pre-connection check and return the addresses to try; opens no socket."""
    target = _parse_url(url, policy)
    if target.ip_literal is not None:
        # No resolver call for literals: there is nothing to look up, and a resolver could
        # only disagree with the literal.
        addresses: list[IPAddress] = [target.ip_literal]
    else:
        addresses = _resolve(resolve, target.host, target.port, deadline)

    if target.scheme == "http":
        for ip in addresses:
            if not ip.is_loopback:
                _refuse(
                    "scheme_not_allowed",
                    f"plain http is only allowed to a loopback host, and {target.host} is not "
                    "one; use https",
                )
    # Every address must pass: picking the good one among bad ones would let an attacker who
    # controls DNS steer some fetches inside anyway.
    for ip in addresses:
        _check_address(target.host, ip, policy)
    return target, addresses


def check_url(
    url: str, *, policy: OutboundPolicy, resolve: Resolver = system_resolve
) -> tuple[ParsedTarget, list[str]]:
    """Validate, resolve and address-check a URL; it never connects to the host.

    Meant for the UI to explain a URL before saving it. Raises FetchError exactly as
    fetch_json would for the same URL before connecting. DNS answers can change, so a
    passing check is no promise about a later fetch (which re-checks everything).
    """
    deadline = time.monotonic() + policy.timeout
    target, addresses = _check_target(url, policy, resolve, deadline)
    return target, [str(ip) for ip in addresses]


# ------------------------------------------------------------------------------ fetching


class _DeadlineReader(io.RawIOBase):
    """Raw reader that gives each recv only the time left; it does no buffering itself.

    Per-recv socket timeouts alone cannot stop a server that drips one byte per second,
    so every read is bounded by the time remaining for the whole fetch.
    """

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self._sock = sock
        self._deadline = deadline

    def readable(self) -> bool:
        """Report that this stream can be read; it cannot be written or sought."""
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        """Receive into buffer within the remaining time; raises TimeoutError past it."""
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the fetch deadline passed while reading")
        self._sock.settimeout(remaining)
        return self._sock.recv_into(buffer)


class _DeadlineSocket:
    """The minimal socket surface http.client uses, bounded by the deadline; no connect.

    ``close`` is a no-op because http.client closes its socket before the body is read
    when the server says "Connection: close"; fetch_json closes the real socket itself.
    """

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline

    def sendall(self, data: bytes) -> None:
        """Send everything within the remaining time; does not retry on failure."""
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the fetch deadline passed while sending")
        self._sock.settimeout(remaining)
        self._sock.sendall(data)

    def makefile(self, mode: str, *args: object, **kwargs: object) -> io.BufferedReader:
        """Return a buffered reader over the deadline-bounded socket; read-only."""
        if "r" not in mode or "w" in mode:
            raise ValueError("only reading is supported")
        return io.BufferedReader(_DeadlineReader(self._sock, self._deadline))

    def close(self) -> None:
        """Do nothing; the owner of the real socket closes it (see class docstring)."""


def normalize_thumbprint(value: str) -> str:
    """Return a SHA-256 thumbprint as 64 lowercase hex digits; does not check it is in use.

    Accepts upper or lower case and colon-separated pairs (as browsers and openssl print
    them); surrounding whitespace is ignored. Raises ValueError for anything else.
    """
    if not isinstance(value, str):
        raise ValueError("a thumbprint must be a string")
    compact = value.strip().replace(":", "").lower()
    if not re.fullmatch(r"[0-9a-f]{64}", compact):
        raise ValueError(
            "a SHA-256 thumbprint must be 64 hexadecimal digits (colons between pairs allowed)"
        )
    return compact


def _certificate_from_der(der: bytes) -> Certificate:
    """Summarise a DER certificate for display; does not validate it (TLS already did)."""
    cert = x509.load_der_x509_certificate(der)
    return Certificate(
        sha256=hashlib.sha256(der).hexdigest(),
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        not_after=cert.not_valid_after_utc,
    )


def _tls_context(policy: OutboundPolicy) -> ssl.SSLContext:
    """Build a verifying client TLS context; never disables hostname or chain checks."""
    try:
        context = ssl.create_default_context(cafile=policy.ca_bundle)
    except (OSError, ssl.SSLError) as exc:
        _refuse("tls_error", f"could not load the CA bundle {policy.ca_bundle!r}: {exc}")
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def _connect(
    target: ParsedTarget, addresses: Sequence[IPAddress], deadline: float
) -> tuple[socket.socket, IPAddress]:
    """Open TCP to the first checked address that answers; never looks a name up again."""
    last_error: OSError | None = None
    for ip in addresses:
        remaining = _deadline_remaining(deadline, f"connecting to {target.host}")
        # AI_NUMERICHOST turns the already-checked literal into a sockaddr without DNS.
        family, socktype, proto, _canon, sockaddr = socket.getaddrinfo(
            str(ip), target.port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST
        )[0]
        sock = socket.socket(family, socktype, proto)
        try:
            sock.settimeout(remaining)
            sock.connect(sockaddr)
        except TimeoutError:
            sock.close()
            _refuse("timeout", f"connecting to {target.host} took longer than allowed")
        except OSError as exc:
            sock.close()
            last_error = exc
            continue
        return sock, ip
    _refuse("connection_failed", f"could not connect to {target.host}: {last_error}")


def _start_tls(
    raw: socket.socket, target: ParsedTarget, policy: OutboundPolicy, deadline: float
) -> ssl.SSLSocket:
    """Handshake and verify against the original host name; pins are checked by the caller."""
    context = _tls_context(policy)
    raw.settimeout(_deadline_remaining(deadline, "starting TLS"))
    try:
        # The connected socket goes to the checked IP; the name is only used for SNI and
        # certificate matching (Python sends no SNI for IP literals, and matches IP SANs).
        return context.wrap_socket(raw, server_hostname=target.host)
    except ssl.SSLCertVerificationError as exc:
        _refuse("tls_error", f"the TLS certificate of {target.host} is not trusted: {exc}")
    except ssl.SSLError as exc:
        _refuse("tls_error", f"the TLS handshake with {target.host} failed: {exc}")
    except TimeoutError:
        _refuse("timeout", f"the TLS handshake with {target.host} took longer than allowed")
    except OSError as exc:
        _refuse("connection_failed", f"the TLS handshake with {target.host} failed: {exc}")


def _request_headers(target: ParsedTarget, extra: Mapping[str, str] | None) -> dict[str, str]:
    """Merge default and caller headers; refuses headers that change framing or target."""
    merged: dict[str, str] = {
        "Host": target.host_header,
        "User-Agent": USER_AGENT,
        "Accept": "application/json",
        "Connection": "close",
    }
    for name, value in (extra or {}).items():
        if name.lower() in _FORBIDDEN_REQUEST_HEADERS:
            raise ValueError(f"the {name} request header cannot be set by the caller")
        if any(ch in value for ch in "\r\n\0") or any(ch in name for ch in "\r\n\0: "):
            raise ValueError(f"invalid characters in request header {name!r}")
        for existing in list(merged):
            if existing.lower() == name.lower():
                del merged[existing]
        merged[name] = value
    return merged


def _response_headers(response: http.client.HTTPResponse) -> Mapping[str, str]:
    """Headers with lower-case names, repeats joined by ', ', as a plain (picklable) dict."""
    collected: dict[str, str] = {}
    for name, value in response.getheaders():
        key = name.lower()
        collected[key] = f"{collected[key]}, {value}" if key in collected else value
    return collected


_JSON_MEDIA_TYPE = re.compile(r"application/(?:json|[a-z0-9!#$&^_.+-]+\+json)")


def _check_content_type(headers: Mapping[str, str]) -> None:
    """Accept application/json and application/*+json (UTF-8 only); ignores the body."""
    raw = headers.get("content-type")
    if raw is None:
        _refuse("not_json", "the response has no Content-Type; expected application/json")
    media_type, *params = (part.strip() for part in raw.split(";"))
    if not _JSON_MEDIA_TYPE.fullmatch(media_type.lower()):
        shown = raw[:100]
        _refuse("not_json", f"the response Content-Type is {shown!r}, not application/json")
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').lower()
            if charset not in ("utf-8", "utf8"):
                _refuse("not_json", f"the response charset is {charset!r}; only UTF-8 is accepted")


def _read_body(response: http.client.HTTPResponse, limit: int) -> bytes:
    """Read the body in chunks and stop past ``limit``; never buffers more than limit+chunk."""
    declared = response.getheader("content-length")
    # isascii: str.isdigit() also accepts digits such as "²" that int() refuses.
    declared = declared.strip() if declared is not None else None
    if declared and declared.isascii() and declared.isdigit() and int(declared) > limit:
        _refuse(
            "too_large",
            f"the response declares {int(declared)} bytes; the limit is {limit} bytes",
        )
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = response.read1(_CHUNK)
        if not chunk:
            break
        total += len(chunk)
        if total > limit:
            _refuse("too_large", f"the response body is larger than the limit of {limit} bytes")
        chunks.append(chunk)
    # read1 reports a premature EOF as a normal end; a Content-Length that was not met
    # means we hold a truncated body that might still parse as JSON.
    if response.length:
        _refuse("connection_failed", "the connection closed before the whole body arrived")
    return b"".join(chunks)


def _parse_json(body: bytes) -> dict[str, Any]:
    """Decode strict UTF-8 JSON whose top level is an object; no schema checks.

    The same rules as every other untrusted JSON (`kernel/strictjson.py`): no NaN/Infinity or
    overflowing numbers, no duplicate keys, no NUL or lone surrogates (issuer documents are
    stored in JSON columns), no BOM (json.loads refuses it).
    """
    try:
        return loads_object(body.decode("utf-8"))
    except UnicodeDecodeError:
        _refuse("not_json", "the response body is not valid UTF-8")
    except (ValueError, RecursionError) as exc:
        _refuse("not_json", f"the response body is not a valid JSON object: {exc}")


def _redirect_message(status: int, location: str | None) -> str:
    """Explain a refused redirect, showing where it pointed; never follows it."""
    if location is None:
        return (
            f"the server answered {status} (a redirect without a Location); "
            "redirects are not followed"
        )
    shown = location if len(location) <= 300 else location[:300] + "..."
    return f"the server answered {status} redirecting to {shown!r}; redirects are not followed"


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
    Environment proxies are ignored on purpose: the checked address is the one connected to.
    """
    return _request(url, policy=policy, resolve=resolve, thumbprints=thumbprints, headers=headers)


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
        _refuse("bad_thumbprint", f"a pinned thumbprint is malformed: {exc}")
    target, addresses = _check_target(url, policy, resolve, deadline)
    request_headers = _request_headers(target, headers)
    if pins and target.scheme != "https":
        _refuse(
            "thumbprint_mismatch", "certificate thumbprints are pinned but the URL is not https"
        )

    raw, address = _connect(target, addresses, deadline)
    sock: socket.socket = raw
    try:
        certificate: Certificate | None = None
        if target.scheme == "https":
            tls = _start_tls(raw, target, policy, deadline)
            sock = tls
            der = tls.getpeercert(binary_form=True)
            if der is None:
                _refuse("tls_error", f"{target.host} presented no certificate")
            certificate = _certificate_from_der(der)
            # Pins are compared before any request byte is sent, so a wrong server never
            # sees our headers (e.g. If-None-Match).
            if pins and certificate.sha256 not in pins:
                _refuse(
                    "thumbprint_mismatch",
                    f"the served certificate's SHA-256 thumbprint is {certificate.sha256}, "
                    "which matches none of the pinned thumbprints",
                )
        return _exchange(
            target,
            sock,
            address,
            certificate,
            request_headers,
            policy,
            deadline,
            method=method,
            payload=payload,
            judge=judge,
        )
    finally:
        sock.close()


def _exchange(
    target: ParsedTarget,
    sock: socket.socket,
    address: IPAddress,
    certificate: Certificate | None,
    request_headers: Mapping[str, str],
    policy: OutboundPolicy,
    deadline: float,
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
    connection = http.client.HTTPConnection(target.host, target.port)
    # http.client only connects when .sock is None; handing it our socket (wrapped so that
    # every send and recv respects the deadline) guarantees it never resolves or connects.
    connection.sock = cast(socket.socket, _DeadlineSocket(sock, deadline))
    try:
        connection.request(
            method, target.request_target, body=payload, headers=dict(request_headers)
        )
        response = connection.getresponse()
        status = response.status
        response_headers = _response_headers(response)
        if status == 304 and judge:
            return FetchResult(
                url=target.url,
                status=status,
                headers=response_headers,
                body=b"",
                data={},
                address=str(address),
                certificate=certificate,
            )
        if 300 <= status < 400:
            _refuse(
                "redirect_refused",
                _redirect_message(status, response_headers.get("location")),
                status=status,
            )
        if judge and not 200 <= status < 300:
            reason = (response.reason or "")[:100]
            message = f"the server answered HTTP {status} {reason}".rstrip()
            _refuse("bad_status", message, status=status)
        if judge:
            _check_content_type(response_headers)
        body = _read_body(response, policy.max_bytes)
    except FetchError:
        raise
    except TimeoutError:
        _refuse("timeout", f"fetching {target.url} took longer than {policy.timeout:g} s")
    except ssl.SSLError as exc:
        _refuse("tls_error", f"TLS failed while talking to {target.host}: {exc}")
    except http.client.IncompleteRead:
        _refuse("connection_failed", f"{target.host} closed the connection before the body ended")
    except http.client.HTTPException as exc:
        _refuse("bad_response", f"{target.host} sent a malformed HTTP response: {exc!r}")
    except OSError as exc:
        _refuse("connection_failed", f"the connection to {target.host} failed: {exc}")
    finally:
        connection.close()
    data = _parse_json(body) if judge else {}
    return FetchResult(
        url=target.url,
        status=status,
        headers=response_headers,
        body=body,
        data=data,
        address=str(address),
        certificate=certificate,
    )


def parse_cache_control_max_age(headers: Mapping[str, str]) -> int | None:
    """Return the freshness lifetime from Cache-Control in seconds; ignores Expires/Age.

    ``no-store`` or ``no-cache`` give 0; a malformed ``max-age`` gives 0 (RFC 9111 says to
    treat invalid freshness as stale); repeated ``max-age`` takes the smallest; values are
    capped at 2**31. Returns None when there is no usable directive. Header lookup is
    case-insensitive so raw header mappings work too.
    """
    values = [value for name, value in headers.items() if name.lower() == "cache-control"]
    if not values:
        return None
    ages: list[int] = []
    for directive in ",".join(values).split(","):
        name, sep, argument = directive.strip().partition("=")
        name = name.strip().lower()
        if name in ("no-store", "no-cache"):
            return 0
        if name != "max-age":
            continue
        argument = argument.strip()
        if len(argument) >= 2 and argument[0] == argument[-1] == '"':
            argument = argument[1:-1]
        if not sep or not argument.isascii() or not argument.isdigit():
            ages.append(0)
            continue
        ages.append(min(int(argument), _MAX_DELTA_SECONDS))
    return min(ages) if ages else None


# ------------------------------------------------------------------------------- posting


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
