"""URL checks: the strict syntax every outbound URL must pass before any DNS or socket.

Refuses anything a lenient parser could read differently from us: control characters and
spaces (urlsplit silently strips some), backslashes, non-ASCII, userinfo, fragments, and
IPv4 hosts in any form but canonical dotted-quad.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from outbound.errors import refuse
from outbound.policy import MAX_URL_LENGTH, IPAddress, OutboundPolicy

__all__ = ["ParsedTarget", "parse_url"]


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


_DEC_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_CANONICAL_IPV4 = re.compile(rf"{_DEC_OCTET}(?:\.{_DEC_OCTET}){{3}}")
# The last label decides whether a host is "numeric" (WHATWG URL rule); inet_aton-style
# parsers accept decimal, octal and hex labels, so all of those count.
_NUMERIC_LABEL = re.compile(r"0x[0-9a-f]*|[0-9]+")
_HOST_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_PORT = re.compile(r"[0-9]{1,5}")


def parse_url(url: str, policy: OutboundPolicy) -> ParsedTarget:
    """Validate the URL string and split it; it does no DNS and opens no socket."""
    _check_characters(url)
    scheme = _check_scheme(url, policy)
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. "Invalid IPv6 URL" for unbalanced brackets
        refuse("bad_url", f"the URL cannot be parsed ({exc})")
    netloc = parts.netloc
    if "@" in netloc:
        # Even an empty "@" is refused: "https://evil.example@10.0.0.5/" is a classic trick.
        refuse("userinfo_not_allowed", "the URL contains a user name or password (...@host)")

    host, port_text = _split_netloc(netloc)
    default_port = 443 if scheme == "https" else 80
    port = default_port if port_text is None else _parse_port(port_text)
    ip_literal = _parse_host(host, bracketed=netloc.startswith("["))

    path = parts.path
    if path and not path.startswith("/"):
        refuse("bad_url", "the URL path must start with '/'")
    request_target = path or "/"
    if "?" in url:
        request_target += "?" + parts.query

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


def _check_characters(url: str) -> None:
    """Refuse empty, over-long or ambiguous URL strings; does not look at their structure."""
    if not isinstance(url, str) or not url:
        refuse("bad_url", "the URL is empty")
    if len(url) > MAX_URL_LENGTH:
        refuse("bad_url", f"the URL is {len(url)} characters long; the limit is {MAX_URL_LENGTH}")
    if any(not ("!" <= ch <= "~") for ch in url):
        refuse(
            "bad_url",
            "the URL contains spaces, control characters or non-ASCII characters; "
            "percent-encode them (and write international host names in punycode)",
        )
    if "\\" in url:
        refuse("bad_url", "the URL contains a backslash, which parsers disagree about")


def _check_scheme(url: str, policy: OutboundPolicy) -> str:
    """Return the lower-case scheme (https, or http when allowed); refuses fragments too."""
    scheme_end = url.find(":")
    scheme = url[:scheme_end].lower() if scheme_end > 0 else ""
    if not re.fullmatch(r"[a-z][a-z0-9+.-]*", scheme):
        refuse("bad_url", "the URL is not absolute (it must start with https://)")
    if scheme not in ("https", "http"):
        refuse("scheme_not_allowed", f"the URL scheme {scheme!r} is not allowed; use https")
    if scheme == "http" and not policy.allow_http:
        refuse("scheme_not_allowed", "plain http is not allowed; use https")
    if not url[scheme_end + 1 :].startswith("//"):
        refuse("bad_url", "the URL has no host (expected scheme://host/...)")
    if "#" in url:
        refuse("fragment_not_allowed", "the URL contains a fragment (#...), which is not allowed")
    return scheme


def _parse_port(port_text: str) -> int:
    """Return the port written in the URL; refuses anything but 1-65535 in plain digits."""
    if not _PORT.fullmatch(port_text) or not 1 <= int(port_text) <= 65535:
        refuse("bad_url", f"the URL port {port_text!r} is not a number between 1 and 65535")
    return int(port_text)


def _split_netloc(netloc: str) -> tuple[str, str | None]:
    """Split host and optional port text; does not validate either beyond bracket syntax."""
    if not netloc:
        refuse("bad_url", "the URL has no host")
    if netloc.startswith("["):
        end = netloc.find("]")
        if end < 0:
            refuse("bad_url", "the URL has an unterminated IPv6 literal")
        host, rest = netloc[1:end], netloc[end + 1 :]
        if rest and not rest.startswith(":"):
            refuse("bad_url", "unexpected characters after the IPv6 literal")
        return host.lower(), (rest[1:] if rest else None)
    if "[" in netloc or "]" in netloc:
        refuse("bad_url", "misplaced '[' or ']' in the URL host")
    host, sep, port_text = netloc.partition(":")
    if ":" in port_text:
        refuse("bad_url", "the URL host has more than one ':' (IPv6 literals need brackets)")
    return host.lower(), (port_text if sep else None)


def _parse_host(host: str, *, bracketed: bool) -> IPAddress | None:
    """Return the IP for an IP-literal host, None for a DNS name; does not resolve names.

    Any IPv4-looking host that is not exactly canonical dotted-quad is refused, because
    getaddrinfo/inet_aton would happily turn ``2852039166`` or ``0251.0376.0251.0376``
    into 169.254.169.254 behind our back.
    """
    if not host:
        refuse("bad_url", "the URL has an empty host")
    if bracketed:
        if "%" in host:
            refuse("bad_url", "IPv6 zone identifiers (%...) are not allowed in the URL")
        try:
            v6 = ipaddress.IPv6Address(host)
        except ValueError:
            refuse("bad_url", f"[{host}] is not a valid IPv6 address")
        if v6.ipv4_mapped is not None:
            refuse(
                "non_canonical_ip",
                f"[{host}] is the IPv4 address {v6.ipv4_mapped} written as an IPv4-mapped "
                "IPv6 address; such hosts are always refused",
            )
        return v6

    labels = host.split(".")
    last = labels[-1] if labels[-1] or len(labels) == 1 else labels[-2]
    if _NUMERIC_LABEL.fullmatch(last):
        if not _CANONICAL_IPV4.fullmatch(host):
            refuse(
                "non_canonical_ip",
                f"the host {host!r} is a numeric address that is not in canonical dotted-quad "
                "form (like 192.0.2.10); decimal, octal, hex and shortened forms are refused",
            )
        return ipaddress.IPv4Address(host)

    if len(host) > 253:
        refuse("bad_url", "the URL host name is longer than 253 characters")
    for label in labels:
        if not _HOST_LABEL.fullmatch(label):
            refuse(
                "bad_url",
                f"the URL host {host!r} is not a valid host name "
                "(letters, digits, '-' and '.' only; no empty labels or trailing dot)",
            )
    return None
