"""The client's address: the peer, or what the operator's trusted proxies say it is."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.http import HttpRequest

from kernel.config import IPNetwork


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _trusted(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, proxies: tuple[IPNetwork, ...]
) -> bool:
    return any(address.version == net.version and address in net for net in proxies)


def client_address(meta: Mapping[str, Any], trusted_proxies: tuple[IPNetwork, ...]) -> str | None:
    """The client address of a request, from its WSGI environ.

    With no trusted proxies (the default) it is `REMOTE_ADDR`: `X-Forwarded-For` is not read,
    since anyone can send it. When the peer is a trusted proxy, the header is read from the
    right (each proxy appends the address it saw) and the first address that is not itself a
    trusted proxy is the client. Entries left of it were written by the client and are never
    believed. A malformed entry stops the walk: the last trusted hop is answered instead.
    """
    remote = str(meta.get("REMOTE_ADDR") or "") or None
    if not trusted_proxies or remote is None:
        return remote
    peer = _address(remote)
    if peer is None or not _trusted(peer, trusted_proxies):
        return remote
    forwarded = str(meta.get("HTTP_X_FORWARDED_FOR") or "").split(",")
    closest = remote
    for entry in reversed([e for e in forwarded if e.strip()]):
        address = _address(entry)
        if address is None:
            return closest
        if not _trusted(address, trusted_proxies):
            return str(address)
        closest = str(address)
    return closest


def client_ip(request: HttpRequest) -> str | None:
    """The client address of a request under the running configuration."""
    return client_address(request.META, settings.TRUSTPORTAL.trusted_proxies)
