"""Where `fn::open` providers may send the portal's ID tokens: official endpoints, or listed ones.

The writer of a definition chooses a provider's endpoint (`aws-login.endpoint`,
`gcp-login.stsEndpoint`, `azure-login.authorityHost`, `vault-login.address`), and the request
carries an ID token. So a provider may only call:

- its cloud's official token endpoints over https on port 443 (AWS STS's global and regional
  endpoints, Google's STS and IAM Credentials, Microsoft's login authority hosts), which must
  resolve to public addresses; or
- an endpoint the operator listed in `TRUSTPORTAL_PROVIDER_ENDPOINTS` (URL prefixes or hosts).
  Vault has no official endpoint, so every Vault address must be listed. A listed endpoint may
  resolve to a private address: the operator vouches for it.

The issuer networks (`TRUSTPORTAL_ISSUER_ALLOWED_NETWORKS`) play no part: they are for issuers
the portal fetches keys from, not for places environment writers may send tokens. This module
does not judge anything else about a request: the guarded client (`outbound/client.py`) still does
its URL, DNS, TLS, redirect, deadline and size checks.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from environments.providers.posting import HttpPoster
from kernel.config import ProviderEndpoint, TrustPortalConfig
from outbound import client
from outbound.addresses import Resolver, system_resolve
from outbound.errors import FetchError
from outbound.policy import OutboundPolicy

SETTING = "TRUSTPORTAL_PROVIDER_ENDPOINTS"
REFUSED = "endpoint_not_allowed"  # FetchError reason of the poster's own refusal

_AWS_REGION = r"[a-z]{2}(?:-[a-z]+)+-\d{1,2}"
# Official token endpoints by service name (the providers' `SERVICE` names); https, port 443.
OFFICIAL: Mapping[str, re.Pattern[str]] = {
    "AWS STS": re.compile(
        rf"sts\.amazonaws\.com|sts(?:-fips)?\.{_AWS_REGION}\.amazonaws\.com"
        rf"|sts\.cn-[a-z]+-\d{{1,2}}\.amazonaws\.com\.cn"
    ),
    "Google STS": re.compile(r"sts\.googleapis\.com"),
    "Google IAM Credentials": re.compile(r"iamcredentials\.googleapis\.com"),
    "Microsoft Entra ID": re.compile(
        r"login\.microsoftonline\.com|login\.microsoftonline\.us|login\.chinacloudapi\.cn"
    ),
}
_ANY_ADDRESS = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str
    port: int
    path: str


def _target(url: str) -> _Target | None:
    """Split a URL for matching; None for anything the guarded client would refuse anyway."""
    if any(not ("!" <= ch <= "~") or ch == "\\" for ch in url):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("https", "http") or not parts.hostname or "@" in parts.netloc:
        return None
    default = 443 if parts.scheme == "https" else 80
    return _Target(parts.scheme, parts.hostname, port if port is not None else default, parts.path)


def _covers(entry: ProviderEndpoint, target: _Target) -> bool:
    """Whether a listed prefix covers the URL: same scheme, host and port, whole path segments."""
    if (entry.scheme, entry.host, entry.port) != (target.scheme, target.host, target.port):
        return False
    return not entry.path or target.path == entry.path or target.path.startswith(entry.path + "/")


def _official(service: str | None, target: _Target) -> bool:
    """Whether the URL is an official endpoint of `service` (of any provider when None)."""
    if (target.scheme, target.port) != ("https", 443):
        return False
    patterns = OFFICIAL.values() if service is None else [OFFICIAL.get(service)]
    return any(p is not None and p.fullmatch(target.host) for p in patterns)


@dataclass(frozen=True)
class ProviderEndpoints:
    """The operator's allow-list plus each cloud's official endpoints; decides per URL."""

    listed: tuple[ProviderEndpoint, ...] = ()
    ca_bundle: str | None = None

    @classmethod
    def from_config(cls, config: TrustPortalConfig) -> ProviderEndpoints:
        return cls(listed=config.provider_endpoints, ca_bundle=config.issuer_ca_bundle)

    def policy_for(self, url: str, *, service: str | None = None) -> OutboundPolicy | None:
        """The outbound policy for a URL, or None when a provider may not send anything there.

        Official endpoints get the strict policy (public addresses only); listed ones may be
        private or loopback (plain http only when the entry itself says http://).
        """
        target = _target(url)
        if target is None:
            return None
        if _official(service, target):
            return OutboundPolicy(ca_bundle=self.ca_bundle)
        for entry in self.listed:
            if _covers(entry, target):
                return OutboundPolicy(
                    allow_http=entry.scheme == "http",
                    allowed_networks=_ANY_ADDRESS,
                    ca_bundle=self.ca_bundle,
                )
        return None

    def refusal(self, url: str, *, service: str) -> str | None:
        """Why a provider of `service` may not call `url` (None when it may); names the host."""
        if self.policy_for(url, service=service) is not None:
            return None
        target = _target(url)
        shown = f"{target.scheme}://{target.host}:{target.port}" if target else "this URL"
        official = (
            f"not an official {service} endpoint and "
            if service in OFFICIAL
            else f"not allowed: {service} has no official endpoint, and it is "
        )
        return (
            f"{shown} is {official}not in the portal's list of provider endpoints "
            f"({SETTING}); ask the portal's operator to add it"
        )

    def poster(self, *, resolve: Resolver = system_resolve) -> HttpPoster:
        """The guarded POST for providers: every URL must be official or listed, else refused.

        A backstop to the providers' own argument checks: no request leaves for a URL this
        object does not allow, whichever provider builds it.
        """

        def post(
            url: str,
            *,
            body: bytes,
            content_type: str,
            headers: Mapping[str, str] | None = None,
        ) -> tuple[int, Mapping[str, str], bytes]:
            policy = self.policy_for(url)
            if policy is None:
                raise FetchError(REFUSED, f"it is not a provider endpoint allowed by {SETTING}")
            return client.post(
                url,
                body=body,
                content_type=content_type,
                headers=headers,
                policy=policy,
                resolve=resolve,
            )

        return post
