"""The transport: connect to a checked address, verified TLS, pins, request headers, capped reads.

It never resolves a name (the addresses come from `addresses.check_target`), never disables
certificate or host-name verification, and compares pinned thumbprints before any request
byte is sent, so a wrong server never sees our headers.
"""

from __future__ import annotations

import hashlib
import http.client
import re
import socket
import ssl
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509

from outbound.deadlines import remaining
from outbound.errors import refuse
from outbound.policy import USER_AGENT, IPAddress, OutboundPolicy
from outbound.urls import ParsedTarget

__all__ = [
    "Certificate",
    "normalize_thumbprint",
    "open_channel",
    "read_body",
    "request_headers",
    "response_headers",
]

# Read size for the body loop; small enough that the cap is enforced close to the limit.
_CHUNK = 16 * 1024
# Headers a caller must not set: they would change framing or the target of the request.
_FORBIDDEN_REQUEST_HEADERS = frozenset(
    {"host", "connection", "content-length", "transfer-encoding"}
)


@dataclass(frozen=True)
class Certificate:
    """Facts about the served leaf certificate for display; it is not a trust decision."""

    sha256: str
    subject: str
    issuer: str
    not_after: datetime


def open_channel(
    target: ParsedTarget,
    addresses: Sequence[IPAddress],
    policy: OutboundPolicy,
    pins: Collection[str],
    deadline: float,
) -> tuple[socket.socket, IPAddress, Certificate | None]:
    """Connect to a checked address and, for https, verify TLS and the pins; sends nothing.

    Returns the socket to talk on (the caller closes it), the address connected to and the
    served certificate (None for plain http). Pins must already be normalized.
    """
    if pins and target.scheme != "https":
        refuse("thumbprint_mismatch", "certificate thumbprints are pinned but the URL is not https")
    raw, address = _connect(target, addresses, deadline)
    if target.scheme != "https":
        return raw, address, None
    try:
        tls = _start_tls(raw, target, policy, deadline)
    except BaseException:
        raw.close()
        raise
    try:
        der = tls.getpeercert(binary_form=True)
        if der is None:
            refuse("tls_error", f"{target.host} presented no certificate")
        certificate = _certificate_from_der(der)
        if pins and certificate.sha256 not in pins:
            refuse(
                "thumbprint_mismatch",
                f"the served certificate's SHA-256 thumbprint is {certificate.sha256}, "
                "which matches none of the pinned thumbprints",
            )
    except BaseException:
        tls.close()
        raise
    return tls, address, certificate


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
        refuse("tls_error", f"could not load the CA bundle {policy.ca_bundle!r}: {exc}")
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
        left = remaining(deadline, f"connecting to {target.host}")
        # AI_NUMERICHOST turns the already-checked literal into a sockaddr without DNS.
        family, socktype, proto, _canon, sockaddr = socket.getaddrinfo(
            str(ip), target.port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST
        )[0]
        sock = socket.socket(family, socktype, proto)
        try:
            sock.settimeout(left)
            sock.connect(sockaddr)
        except TimeoutError:
            sock.close()
            refuse("timeout", f"connecting to {target.host} took longer than allowed")
        except OSError as exc:
            sock.close()
            last_error = exc
            continue
        return sock, ip
    refuse("connection_failed", f"could not connect to {target.host}: {last_error}")


def _start_tls(
    raw: socket.socket, target: ParsedTarget, policy: OutboundPolicy, deadline: float
) -> ssl.SSLSocket:
    """Handshake and verify against the original host name; pins are checked by the caller."""
    context = _tls_context(policy)
    raw.settimeout(remaining(deadline, "starting TLS"))
    try:
        # The connected socket goes to the checked IP; the name is only used for SNI and
        # certificate matching (Python sends no SNI for IP literals, and matches IP SANs).
        return context.wrap_socket(raw, server_hostname=target.host)
    except ssl.SSLCertVerificationError as exc:
        refuse("tls_error", f"the TLS certificate of {target.host} is not trusted: {exc}")
    except ssl.SSLError as exc:
        refuse("tls_error", f"the TLS handshake with {target.host} failed: {exc}")
    except TimeoutError:
        refuse("timeout", f"the TLS handshake with {target.host} took longer than allowed")
    except OSError as exc:
        refuse("connection_failed", f"the TLS handshake with {target.host} failed: {exc}")


def request_headers(target: ParsedTarget, extra: Mapping[str, str] | None) -> dict[str, str]:
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


def response_headers(response: http.client.HTTPResponse) -> Mapping[str, str]:
    """Headers with lower-case names, repeats joined by ', ', as a plain (picklable) dict."""
    collected: dict[str, str] = {}
    for name, value in response.getheaders():
        key = name.lower()
        collected[key] = f"{collected[key]}, {value}" if key in collected else value
    return collected


def read_body(response: http.client.HTTPResponse, limit: int) -> bytes:
    """Read the body in chunks and stop past ``limit``; never buffers more than limit+chunk."""
    declared = response.getheader("content-length")
    # isascii: str.isdigit() also accepts digits such as "²" that int() refuses.
    declared = declared.strip() if declared is not None else None
    if declared and declared.isascii() and declared.isdigit() and int(declared) > limit:
        refuse(
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
            refuse("too_large", f"the response body is larger than the limit of {limit} bytes")
        chunks.append(chunk)
    # read1 reports a premature EOF as a normal end; a Content-Length that was not met
    # means we hold a truncated body that might still parse as JSON.
    if response.length:
        refuse("connection_failed", "the connection closed before the whole body arrived")
    return b"".join(chunks)
