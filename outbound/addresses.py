"""Address checks: one bounded DNS lookup, and every resolved address public or allowed.

No socket is opened here. The addresses returned by `check_target` are the only ones the
transport may connect to, so a second lookup (DNS rebinding) cannot steer a request.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from collections.abc import Callable, Sequence

from outbound.deadlines import remaining
from outbound.errors import refuse
from outbound.policy import IPAddress, OutboundPolicy
from outbound.urls import ParsedTarget, parse_url

__all__ = ["Resolver", "check_target", "system_resolve"]

_log = logging.getLogger(__name__)

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
        refuse("address_not_allowed", _address_message(host, ip, "an IPv4-mapped IPv6"))
    if any(ip in net for net in policy.allowed_networks):
        return
    problem = _address_problem(ip)
    if problem is not None:
        refuse("address_not_allowed", _address_message(host, ip, problem))


def _address_message(host: str, ip: IPAddress, problem: str) -> str:
    """The message for a refused address; what a name resolves to is logged, never shown
    (it would map the internal network for anyone who may register an issuer)."""
    if host == str(ip):
        return f"{host} is {problem} address, which is not allowed"
    _log.warning("refused %s: it resolves to %s address %s", host, problem, ip)
    return f"{host} resolves to a non-public address, which is not allowed"


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
    worker.join(remaining(deadline, f"resolving {host}"))
    if not outcome:
        refuse("timeout", f"resolving {host} took longer than allowed")
    result = outcome[0]
    if isinstance(result, OSError | UnicodeError):
        refuse("dns_failure", f"could not resolve {host}: {result}")
    if isinstance(result, BaseException):
        raise result
    if isinstance(result, str) or not result:
        refuse("dns_failure", f"{host} did not resolve to any address")
    addresses: list[IPAddress] = []
    for text in result:
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            refuse("dns_failure", f"resolving {host} returned something that is not an address")
        if ip not in addresses:
            addresses.append(ip)
    return addresses


def check_target(
    url: str, policy: OutboundPolicy, resolve: Resolver, deadline: float
) -> tuple[ParsedTarget, list[IPAddress]]:
    """Run every pre-connection check and return the addresses to try; opens no socket."""
    target = parse_url(url, policy)
    if target.ip_literal is not None:
        # No resolver call for literals: there is nothing to look up, and a resolver could
        # only disagree with the literal.
        addresses: list[IPAddress] = [target.ip_literal]
    else:
        addresses = _resolve(resolve, target.host, target.port, deadline)

    if target.scheme == "http":
        for ip in addresses:
            if not ip.is_loopback:
                refuse(
                    "scheme_not_allowed",
                    f"plain http is only allowed to a loopback host, and {target.host} is not "
                    "one; use https",
                )
    # Every address must pass: picking the good one among bad ones would let an attacker who
    # controls DNS steer some fetches inside anyway.
    for ip in addresses:
        _check_address(target.host, ip, policy)
    return target, addresses
