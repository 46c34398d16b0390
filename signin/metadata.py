"""A provider's endpoints and keys from its discovery document, through the outbound guard."""

from __future__ import annotations

from dataclasses import dataclass

from issuers.discovery import DiscoveryError, discover
from issuers.jwks import ParsedKey
from issuers.services import Outbound, default_outbound
from signin.errors import SignInRefused


@dataclass(frozen=True)
class ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    userinfo_endpoint: str | None
    keys: list[ParsedKey]


def _endpoint(document: object, name: str, *, allow_http: bool, required: bool) -> str | None:
    value = document.get(name) if isinstance(document, dict) else None
    if value is None and not required:
        return None
    if not isinstance(value, str) or not (
        value.startswith("https://") or (allow_http and value.startswith("http://"))
    ):
        raise SignInRefused("provider_unavailable", f"discovery: {name} is missing or not https")
    return value


def provider_metadata(issuer: str, outbound: Outbound | None = None) -> ProviderMetadata:
    """Discovery (its issuer must equal `issuer`) and the JWKS, both fetched through the guard.

    Raises SignInRefused("provider_unavailable") when either cannot be had or is malformed.
    """
    outbound = outbound or default_outbound()
    try:
        found = discover(
            issuer, policy=outbound.policy, resolve=outbound.resolve, fetch=outbound.fetch
        )
    except DiscoveryError as exc:
        raise SignInRefused("provider_unavailable", f"{exc.reason}: {exc.message}") from exc
    document = dict(found.document)
    allow_http = outbound.policy.allow_http
    authorization = _endpoint(
        document, "authorization_endpoint", allow_http=allow_http, required=True
    )
    token = _endpoint(document, "token_endpoint", allow_http=allow_http, required=True)
    userinfo = _endpoint(document, "userinfo_endpoint", allow_http=allow_http, required=False)
    assert authorization is not None and token is not None
    return ProviderMetadata(
        issuer=found.issuer,
        authorization_endpoint=authorization,
        token_endpoint=token,
        userinfo_endpoint=userinfo,
        keys=found.keys.keys,
    )
