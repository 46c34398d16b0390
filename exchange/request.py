"""Step 1 of the exchange: parse and check the request body (pure).

Accepts what the real clients send: JSON from `pulumi/auth-actions`, form-encoded from
`pulumi login --oidc-token` (with `scope=` and `expiration=7200`). Does not look at the subject
token beyond its presence: that is verification's job.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from kernel.strictjson import check_text, loads_object, no_duplicates
from tokens.errors import InvalidRequest, InvalidScope, InvalidTarget, UnsupportedGrantType

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange"
SUBJECT_TOKEN_TYPES = frozenset(
    {"urn:ietf:params:oauth:token-type:id_token", "urn:ietf:params:oauth:token-type:jwt"}
)
REQUESTED_PREFIX = "urn:pulumi:token-type:access_token:"
TOKEN_TYPES = ("organization", "team", "personal", "runner")
SCOPE_PREFIXES = {"team": "team:", "personal": "user:", "runner": "runner:"}
DEFAULT_EXPIRATION = 7200
MAX_BODY_BYTES = 64 * 1024
MAX_FIELD_CHARS = 1024


@dataclass(frozen=True)
class ExchangeRequest:
    """A well-formed exchange request; the subject token is still unverified text."""

    audience: str
    organization: str
    subject_token: str
    subject_token_type: str
    requested_token_type: str  # the full URN, echoed back as issued_token_type
    token_type: str  # organization | team | personal | runner
    scope: str  # as requested ("" when absent)
    scope_name: str | None  # "admin" for organization, else the team / user / runner name
    expiration: int | None


@dataclass(frozen=True)
class RawRequest:
    """What could be read of the body even when it is refused (for the exchange event)."""

    fields: Mapping[str, str]
    # Fields that were present but unusable (not a string, or text that cannot be stored);
    # parse_request refuses them, after the rest could name the organization for the event.
    problems: tuple[str, ...] = ()

    def get(self, name: str) -> str:
        return self.fields.get(name, "")


def read_body(body: bytes, content_type: str) -> RawRequest:
    """Decode a JSON or form body into string fields; InvalidRequest when it cannot be read."""
    if len(body) > MAX_BODY_BYTES:
        raise InvalidRequest("request_too_large")
    media_type = content_type.split(";", 1)[0].strip().lower()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequest("malformed_body", "not UTF-8") from exc
    fields: dict[str, Any]
    if media_type == "application/json":
        try:
            fields = loads_object(text, check_strings=False)
        except (ValueError, RecursionError) as exc:
            raise InvalidRequest("malformed_body", f"invalid JSON: {exc}") from exc
    elif media_type in ("application/x-www-form-urlencoded", ""):
        try:
            fields = no_duplicates(parse_qsl(text, keep_blank_values=True, strict_parsing=False))
        except ValueError as exc:
            raise InvalidRequest("malformed_body", f"form: {exc}") from exc
    else:
        raise InvalidRequest("unsupported_media_type", media_type)
    strings: dict[str, str] = {}
    problems: list[str] = []
    for name, value in fields.items():
        if value is None:
            continue
        try:
            check_text([name, value])
        except ValueError:
            problems.append("a field")
            continue
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            problems.append(name)
            continue
        strings[name] = value if isinstance(value, str) else json.dumps(value)
    return RawRequest(strings, tuple(problems))


def _expiration(raw: str) -> int | None:
    if raw == "":
        return None
    try:
        value = float(raw)
    except ValueError as exc:
        raise InvalidRequest("bad_expiration", "expiration is not a number") from exc
    if value != value or value in (float("inf"), float("-inf")) or value != int(value):
        raise InvalidRequest("bad_expiration", "expiration is not a whole number")
    if value <= 0:
        raise InvalidRequest("bad_expiration", "expiration must be positive")
    return int(min(value, 10**9))


def organization_of(audience: str, prefix: str) -> str | None:
    """The organization login an audience names, or None when it is not of our form."""
    if not audience.startswith(prefix):
        return None
    login = audience[len(prefix) :]
    return login if login and len(login) <= 100 and "/" not in login else None


def parse_request(raw: RawRequest, *, audience_prefix: str) -> ExchangeRequest:
    """Check every field of an exchange request (SPEC §3) and return it typed."""
    if raw.problems:
        raise InvalidRequest("malformed_body", f"unusable fields: {', '.join(raw.problems)}")
    for name, value in raw.fields.items():
        if name != "subject_token" and len(value) > MAX_FIELD_CHARS:
            raise InvalidRequest("field_too_large", name)
    grant_type = raw.get("grant_type")
    if grant_type != GRANT_TYPE:
        raise UnsupportedGrantType("unsupported_grant_type", grant_type[:100])
    audience = raw.get("audience")
    if not audience:
        raise InvalidRequest("missing_audience")
    organization = organization_of(audience, audience_prefix)
    if organization is None:
        raise InvalidTarget("bad_audience", audience[:200])
    subject_token = raw.get("subject_token")
    if not subject_token:
        raise InvalidRequest("missing_subject_token")
    subject_token_type = raw.get("subject_token_type")
    if subject_token_type not in SUBJECT_TOKEN_TYPES:
        raise InvalidRequest("bad_subject_token_type", subject_token_type[:100])
    requested = raw.get("requested_token_type") or REQUESTED_PREFIX + "organization"
    token_type = (
        requested[len(REQUESTED_PREFIX) :] if requested.startswith(REQUESTED_PREFIX) else ""
    )
    if token_type not in TOKEN_TYPES:
        raise InvalidRequest("bad_requested_token_type", requested[:100])
    scope = raw.get("scope").strip()
    target = scope_name(token_type, scope)
    return ExchangeRequest(
        audience=audience,
        organization=organization,
        subject_token=subject_token,
        subject_token_type=subject_token_type,
        requested_token_type=requested,
        token_type=token_type,
        scope=scope,
        scope_name=target,
        expiration=_expiration(raw.get("expiration").strip()),
    )


def scope_name(token_type: str, scope: str) -> str | None:
    """What the scope names for the token type; InvalidScope when it does not fit."""
    if token_type == "organization":
        if scope in ("", "admin"):
            return scope or None
        raise InvalidScope("scope_mismatch", "organization tokens take no scope or 'admin'")
    prefix = SCOPE_PREFIXES[token_type]
    if not scope.startswith(prefix) or len(scope) == len(prefix):
        raise InvalidScope("scope_mismatch", f"{token_type} tokens need scope '{prefix}<name>'")
    return scope[len(prefix) :]
