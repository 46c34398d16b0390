"""OpenID Connect discovery and JWKS fetching, through the guarded client only."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from issuers.jwks import JwksError, ParsedKey, parse_jwks
from outbound.addresses import Resolver, system_resolve
from outbound.cachecontrol import parse_cache_control_max_age
from outbound.client import FetchResult, fetch_json
from outbound.errors import FetchError
from outbound.policy import OutboundPolicy
from outbound.transport import Certificate

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

    @property
    def not_modified(self) -> bool:
        """The server answered 304: `keys` is empty and means "unchanged", not "none"."""
        return self.status == 304


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


@dataclass(frozen=True)
class Deadline:
    """One time limit shared by every fetch of an operation (discovery plus JWKS)."""

    seconds: float
    until: float

    @classmethod
    def after(cls, seconds: float | None) -> Deadline | None:
        return None if seconds is None else cls(seconds, time.monotonic() + seconds)


def _guarded(
    fetch: Fetch, url: str, *, policy: OutboundPolicy, deadline: Deadline | None, **kwargs: Any
) -> FetchResult:
    """One guarded fetch, given only the time left of the whole operation's deadline."""
    if deadline is not None:
        remaining = deadline.until - time.monotonic()
        if remaining <= 0:
            raise DiscoveryError("timeout", _too_slow(url, deadline))
        policy = replace(policy, timeout=min(policy.timeout, remaining))
    try:
        return fetch(url, policy=policy, **kwargs)
    except FetchError as exc:
        if exc.reason == "timeout" and deadline is not None:
            raise DiscoveryError("timeout", _too_slow(url, deadline)) from exc
        raise DiscoveryError(exc.reason, f"{url}: {exc.message}") from exc


def _too_slow(url: str, deadline: Deadline) -> str:
    return f"{url}: the issuer did not answer within the {deadline.seconds:g} s allowed"


def fetch_keys(
    jwks_uri: str,
    *,
    policy: OutboundPolicy,
    thumbprints: Sequence[str] = (),
    etag: str = "",
    resolve: Resolver = system_resolve,
    fetch: Fetch = fetch_json,
    deadline: Deadline | None = None,
) -> KeySet:
    """Fetch and check an issuer's key set; `not_modified` when the server says so.

    A 304 still carries the served certificate, so a renewal is noticed between key changes.
    """
    headers = {"If-None-Match": etag} if etag else None
    result = _guarded(
        fetch,
        jwks_uri,
        policy=policy,
        deadline=deadline,
        resolve=resolve,
        thumbprints=thumbprints,
        headers=headers,
    )
    if result.status == 304:
        return KeySet(keys=[], etag=etag, max_age=None, certificate=result.certificate, status=304)
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
    total_timeout: float | None = None,
) -> Discovered:
    """Fetch `<url>/.well-known/openid-configuration`, check its issuer, fetch its keys.

    Both fetches go through the guard with the same pinned thumbprints and, with
    `total_timeout`, share one deadline (each fetch keeps the policy's own timeout as well).
    Does not follow `jwks_uri` anywhere the guard would refuse, nor trust any other field.
    """
    deadline = Deadline.after(total_timeout)
    result = _guarded(
        fetch,
        url.rstrip("/") + DISCOVERY_PATH,
        policy=policy,
        deadline=deadline,
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
        jwks_uri,
        policy=policy,
        thumbprints=thumbprints,
        resolve=resolve,
        fetch=fetch,
        deadline=deadline,
    )
    if keys.not_modified:  # a 304 to a request without If-None-Match is a broken server
        raise DiscoveryError("bad_status", f"{jwks_uri}: answered 304 to a fresh request")
    certificates = tuple(c for c in (result.certificate, keys.certificate) if c is not None)
    return Discovered(
        issuer=issuer,
        jwks_uri=jwks_uri,
        keys=keys,
        certificates=certificates,
        document=document,
    )
