"""`fn::open::oidc`: an ID token of the portal for any relying party.

    values:
      registry:
        fn::open::oidc:
          audience: https://registry.example.com
          subjectAttributes: [currentEnvironment.name, pulumi.user.login]   # optional
          duration: 15m                                                     # optional, 1m-1h

Returns `{token}`. Nothing is exchanged: the caller presents the token where it needs it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from environments.durations import parse_duration
from environments.providers.base import (
    MAX_ID_TOKEN_LIFETIME,
    MIN_ID_TOKEN_LIFETIME,
    Credentials,
    IdTokenRequest,
    OpenContext,
    ProviderError,
)

ARGUMENTS = frozenset({"audience", "subjectAttributes", "duration"})
# The schema of the arguments (types; the checks below say the rest): `environments.inputschema`.
INPUTS = {
    "type": "object",
    "properties": {
        "audience": {"type": "string"},
        "subjectAttributes": {"type": "array", "items": {"type": "string"}},
        "duration": {"type": ["string", "number"]},
    },
}
DEFAULT_LIFETIME = timedelta(minutes=5)


def oidc(context: OpenContext, arguments: Mapping[str, Any]) -> Credentials:
    """Mint an ID token for `audience`; the result's `token` is its only value."""
    if not isinstance(arguments, Mapping):
        raise ProviderError("fn::open::oidc takes a map: {audience, subjectAttributes, duration}")
    unknown = sorted(str(k) for k in arguments if k not in ARGUMENTS)
    if unknown:
        raise ProviderError(
            f"unknown argument {unknown[0]!r}: fn::open::oidc takes audience, "
            "subjectAttributes and duration"
        )
    audience = arguments.get("audience")
    if not isinstance(audience, str) or not audience.strip() or len(audience) > 500:
        raise ProviderError("`audience` is required: a string of at most 500 characters")
    attributes = arguments.get("subjectAttributes") or []
    if not isinstance(attributes, list) or not all(isinstance(a, str) for a in attributes):
        raise ProviderError("`subjectAttributes` is a list of attribute names")
    lifetime = _lifetime(arguments.get("duration"))
    request = IdTokenRequest(
        audience=audience, subject_attributes=tuple(attributes), lifetime=lifetime
    )
    token = context.id_token(request)
    return Credentials(
        values={"token": token},
        role=audience,
        expires_at=context.now() + max(lifetime, MIN_ID_TOKEN_LIFETIME),
    )


def _lifetime(raw: object) -> timedelta:
    """`duration` as a Go duration or seconds; at most an hour (shorter than a minute is raised
    to one by the issuer)."""
    if raw is None:
        return DEFAULT_LIFETIME
    try:
        if isinstance(raw, int) and not isinstance(raw, bool) and raw > 0:
            lifetime = timedelta(seconds=raw)
        elif isinstance(raw, str):
            lifetime = parse_duration(raw)
        else:
            raise ValueError(raw)
    except (ValueError, OverflowError) as exc:
        raise ProviderError("`duration` is a duration such as 15m or 1h") from exc
    if lifetime > MAX_ID_TOKEN_LIFETIME:
        raise ProviderError("`duration` is at most 1h for an ID token")
    return lifetime
