"""What a caller may choose about one outbound request, and the defaults it starts from."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_TIMEOUT",
    "MAX_URL_LENGTH",
    "USER_AGENT",
    "IPAddress",
    "IPNetwork",
    "OutboundPolicy",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_TIMEOUT = 5.0
DEFAULT_MAX_BYTES = 256 * 1024
MAX_URL_LENGTH = 2048
USER_AGENT = "trustportal"


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
