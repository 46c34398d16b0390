"""OpenID Connect discovery and JWKS fetching, through the guarded client only."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from issuers.http import (
    Certificate,
    FetchError,
    FetchResult,
    OutboundPolicy,
    Resolver,
    fetch_json,
    parse_cache_control_max_age,
    system_resolve,
)
from issuers.jwks import JwksError, ParsedKey, parse_jwks

Fetch = Callable[..., FetchResult]
DISCOVERY_PATH = "/.well-known/openid-configuration"


class DiscoveryError(Exception):
    """Discovery or key fetching failed; `reason` is a stable code, `message` plain words."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class KeySet:
    keys: list[ParsedKey]
    etag: str
    max_age: int | None
    certificate: Certificate | None
    status: int


@dataclass(frozen=True)
class Discovered:
    issuer: str
    jwks_uri: str
    keys: KeySet
    certificates: tuple[Certificate, ...]
    # The whole discovery document (endpoints for sign-in); only `issuer` and `jwks_uri` are
    # checked here.
    document: Mapping[str, Any] = field(default_factory=dict)

    @property
    def thumbprints(self) -> list[str]:
        """The SHA-256 thumbprints of the discovery and JWKS hosts' certificates, once each."""
        return list(dict.fromkeys(c.sha256 for c in self.certificates))


def issuer_matches_url(url: str, issuer: str) -> bool:
    """Discovery's `issuer` must equal the registered URL, modulo one trailing slash."""
    return issuer in (url, url + "/") or (url.endswith("/") and issuer == url[:-1])


def _guarded(fetch: Fetch, url: str, **kwargs: Any) -> FetchResult:
    try:
        return fetch(url, **kwargs)
    except FetchError as exc:
        raise DiscoveryError(exc.reason, f"{url}: {exc.message}") from exc


def fetch_keys(
    jwks_uri: str,
    *,
    policy: OutboundPolicy,
    thumbprints: Sequence[str] = (),
    etag: str = "",
    resolve: Resolver = system_resolve,
    fetch: Fetch = fetch_json,
) -> KeySet | None:
    """Fetch and check an issuer's key set; None when the server says it has not changed."""
    headers = {"If-None-Match": etag} if etag else None
    result = _guarded(
        fetch, jwks_uri, policy=policy, resolve=resolve, thumbprints=thumbprints, headers=headers
    )
    if result.status == 304:
        return None
    try:
        keys = parse_jwks(result.data)
    except JwksError as exc:
        raise DiscoveryError(exc.reason, f"{jwks_uri}: {exc.message}") from exc
    return KeySet(
        keys=keys,
        etag=result.headers.get("etag", "")[:512],
        max_age=parse_cache_control_max_age(result.headers),
        certificate=result.certificate,
        status=result.status,
    )


def discover(
    url: str,
    *,
    policy: OutboundPolicy,
    thumbprints: Sequence[str] = (),
    resolve: Resolver = system_resolve,
    fetch: Fetch = fetch_json,
) -> Discovered:
    """Fetch `<url>/.well-known/openid-configuration`, check its issuer, fetch its keys.

    Both fetches go through the guard with the same pinned thumbprints. Does not follow
    `jwks_uri` anywhere the guard would refuse, and does not trust any other field.
    """
    result = _guarded(
        fetch,
        url.rstrip("/") + DISCOVERY_PATH,
        policy=policy,
        resolve=resolve,
        thumbprints=thumbprints,
    )
    document = result.data
    issuer = document.get("issuer")
    if not isinstance(issuer, str) or not issuer_matches_url(url, issuer):
        raise DiscoveryError(
            "issuer_mismatch",
            f"discovery says the issuer is {issuer!r}, which is not the URL {url!r}",
        )
    jwks_uri = document.get("jwks_uri")
    if not isinstance(jwks_uri, str) or not jwks_uri:
        raise DiscoveryError("no_jwks_uri", "the discovery document has no jwks_uri")
    keys = fetch_keys(
        jwks_uri, policy=policy, thumbprints=thumbprints, resolve=resolve, fetch=fetch
    )
    if keys is None:  # a 304 to a request without If-None-Match is a broken server
        raise DiscoveryError("bad_status", f"{jwks_uri}: answered 304 to a fresh request")
    certificates = tuple(c for c in (result.certificate, keys.certificate) if c is not None)
    return Discovered(
        issuer=issuer,
        jwks_uri=jwks_uri,
        keys=keys,
        certificates=certificates,
        document=document,
    )
