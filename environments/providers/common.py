"""What every login provider shares: reading arguments, durations, posting, remote errors.

A provider reads its arguments through `Arguments` (every refusal names the argument's path,
e.g. `aws-login.oidc.roleArn`), posts through `post_form` / `post_json` (which go through the
context's guarded client and turn transport failures into `ProviderError`), and reads answers
with `json_answer` / `refusal`, which report the remote service's own error code and
description with every token scrubbed out. Nothing here reads settings, keys or the clock.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

from environments.durations import parse_duration
from environments.providers.base import OpenContext, ProviderError
from environments.providers.endpoints import REFUSED as ENDPOINT_REFUSED
from environments.providers.endpoints import ProviderEndpoints
from outbound.client import decode_json
from outbound.errors import FetchError

# ProviderError reasons (stable codes recorded with the credential issuance).
INVALID_ARGUMENTS = "provider_arguments_invalid"
UNREACHABLE = "provider_unreachable"
REFUSED = "provider_refused"
BAD_ANSWER = "provider_bad_answer"
ENDPOINT_NOT_ALLOWED = "provider_endpoint_not_allowed"

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"

# A compact JWS/JWT (ID tokens, Azure access tokens) anywhere in a remote message.
_JWT_LIKE = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_MAX_MESSAGE = 400
_MAX_STRING = 2048
# Guard refusals about the answer rather than about reaching the server.
_ANSWER_PROBLEMS = frozenset({"too_large", "bad_response", "redirect_refused"})


def show_duration(value: timedelta) -> str:
    """Write a duration the way definitions do (`2h`, `15m`, `90s`); for messages only."""
    seconds = int(value.total_seconds())
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"


def invalid(message: str) -> ProviderError:
    """A refusal of the definition's arguments; the message names the argument."""
    return ProviderError(message, reason=INVALID_ARGUMENTS)


@dataclass(frozen=True)
class Arguments:
    """A provider's arguments (or one nested section), read with messages naming the path.

    Unknown keys are refused rather than ignored, so that a misspelt `roleARN` fails loudly
    instead of silently falling back to a default. It does not interpolate or decrypt: the
    evaluator hands over plain values.
    """

    path: str
    values: Mapping[str, Any]

    @classmethod
    def read(
        cls,
        path: str,
        value: object,
        *,
        allowed: Iterable[str],
        unsupported: Mapping[str, str] | None = None,
    ) -> Arguments:
        """Check that ``value`` is a mapping whose keys are all known; returns the reader."""
        if not isinstance(value, Mapping):
            raise invalid(f"{path} takes a mapping of arguments, not {_kind(value)}")
        known = tuple(allowed)
        for key in value:
            if not isinstance(key, str):
                raise invalid(f"{path} has a key that is not a string")
            if unsupported and key in unsupported:
                raise invalid(f"{path}.{key} is not supported: {unsupported[key]}")
            if key not in known:
                raise invalid(
                    f"{path}.{_shown(key)} is not a known argument; expected {', '.join(known)}"
                )
        return cls(path, value)

    def section(
        self,
        key: str,
        *,
        allowed: Iterable[str],
        unsupported: Mapping[str, str] | None = None,
    ) -> Arguments:
        """Read the required nested mapping ``key``."""
        if key not in self.values:
            raise invalid(f"{self.path}.{key} is required")
        return Arguments.read(
            f"{self.path}.{key}", self.values[key], allowed=allowed, unsupported=unsupported
        )

    def string(self, key: str, *, pattern: re.Pattern[str] | None = None, hint: str = "") -> str:
        """Read a required string (a number is taken as written, e.g. a GCP project number)."""
        value = self.optional_string(key, pattern=pattern, hint=hint)
        if value is None:
            raise invalid(f"{self.path}.{key} is required")
        return value

    def optional_string(
        self, key: str, *, pattern: re.Pattern[str] | None = None, hint: str = ""
    ) -> str | None:
        """Read an optional string; None when absent or null."""
        raw = self.values.get(key)
        if raw is None:
            return None
        return self._check_string(f"{self.path}.{key}", raw, pattern, hint)

    def strings(
        self,
        key: str,
        *,
        pattern: re.Pattern[str] | None = None,
        hint: str = "",
        max_items: int = 20,
    ) -> tuple[str, ...]:
        """Read an optional list of strings; () when absent."""
        raw = self.values.get(key)
        if raw is None:
            return ()
        if not isinstance(raw, list):
            raise invalid(f"{self.path}.{key} must be a list of strings, not {_kind(raw)}")
        if len(raw) > max_items:
            raise invalid(f"{self.path}.{key} has {len(raw)} items; at most {max_items} allowed")
        return tuple(
            self._check_string(f"{self.path}.{key}[{index}]", item, pattern, hint)
            for index, item in enumerate(raw)
        )

    def duration(
        self, key: str, *, default: timedelta, minimum: timedelta, maximum: timedelta
    ) -> timedelta:
        """Read a duration (`1h`, `15m`, `2h0m0s`, or whole seconds) within [minimum, maximum]."""
        raw = self.values.get(key)
        if raw is None:
            return default
        where = f"{self.path}.{key}"
        if isinstance(raw, bool) or not isinstance(raw, int | str):
            raise invalid(f"{where} must be a duration such as 1h or 15m, not {_kind(raw)}")
        try:
            value = timedelta(seconds=raw) if isinstance(raw, int) else parse_duration(raw)
        except (ValueError, OverflowError):
            raise invalid(f"{where} must be a duration such as 1h, 15m or 900 (seconds)") from None
        if not minimum <= value <= maximum:
            raise invalid(
                f"{where} must be between {show_duration(minimum)} and {show_duration(maximum)}"
            )
        return value

    def flag(self, key: str, *, default: bool) -> bool:
        """Read an optional boolean (only YAML `true` / `false`)."""
        raw = self.values.get(key)
        if raw is None:
            return default
        if not isinstance(raw, bool):
            raise invalid(f"{self.path}.{key} must be true or false, not {_kind(raw)}")
        return raw

    def base_url(self, key: str, *, default: str | None, allow_path: bool = True) -> str:
        """Read an http(s) URL to append paths to; returned without a trailing slash.

        Only the shape is checked here (scheme, host, no user name, query or fragment);
        whether the host may be reached is the outbound guard's decision at request time.
        """
        raw = self.optional_string(key)
        where = f"{self.path}.{key}"
        if raw is None:
            if default is None:
                raise invalid(f"{where} is required")
            return default.rstrip("/")
        try:
            parts = urlsplit(raw)
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError:
            raise invalid(f"{where} is not a valid URL") from None
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise invalid(f"{where} must be an https:// URL with a host name")
        if "@" in parts.netloc or parts.query or parts.fragment or "?" in raw or "#" in raw:
            raise invalid(f"{where} must not contain a user name, a query or a fragment")
        if not allow_path and parts.path not in ("", "/"):
            raise invalid(f"{where} must be the server's address only, without a path")
        return raw.rstrip("/")

    def endpoint(
        self,
        key: str,
        *,
        default: str | None,
        service: str,
        endpoints: ProviderEndpoints,
        allow_path: bool = True,
    ) -> str:
        """Read a service URL (`base_url`) that must be official for `service` or listed.

        Checked here, before any ID token is minted, so that a definition cannot send one
        where the operator has not allowed (see `endpoints`).
        """
        url = self.base_url(key, default=default, allow_path=allow_path)
        problem = endpoints.refusal(url, service=service)
        if problem is not None:
            raise ProviderError(f"{self.path}.{key}: {problem}", reason=ENDPOINT_NOT_ALLOWED)
        return url

    @staticmethod
    def _check_string(where: str, raw: object, pattern: re.Pattern[str] | None, hint: str) -> str:
        """Accept a string (or an integer, as written); refuse control characters and junk."""
        if isinstance(raw, int) and not isinstance(raw, bool):
            raw = str(raw)
        if not isinstance(raw, str):
            raise invalid(f"{where} must be a string, not {_kind(raw)}")
        if not raw:
            raise invalid(f"{where} must not be empty")
        if len(raw) > _MAX_STRING or _CONTROL.search(raw):
            raise invalid(f"{where} is too long or contains control characters")
        if pattern is not None and not pattern.fullmatch(raw):
            # The value is not shown: it may come from an `fn::secret`, and messages are kept.
            raise invalid(f"{where} must be {hint or 'well-formed'}")
        return raw


def _kind(value: object) -> str:
    """Name a YAML value's kind for messages; never shows the value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


def _shown(key: str) -> str:
    """Quote an argument name for a message, shortened (names, never values, are shown)."""
    return repr(key if len(key) <= 80 else key[:80] + "...")


# ----------------------------------------------------------------------------------- posting


@dataclass(frozen=True)
class Answer:
    """A remote service's answer: status, lower-case headers and the raw (capped) body."""

    service: str
    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def ok(self) -> bool:
        """Whether the status is 2xx."""
        return 200 <= self.status < 300


def post_form(
    context: OpenContext,
    url: str,
    fields: Sequence[tuple[str, str]],
    *,
    service: str,
    headers: Mapping[str, str] | None = None,
) -> Answer:
    """POST form-encoded ``fields`` through the context's guarded client."""
    return _post(context, url, urlencode(list(fields)).encode("ascii"), FORM, service, headers)


def post_json(
    context: OpenContext,
    url: str,
    document: Mapping[str, Any],
    *,
    service: str,
    headers: Mapping[str, str] | None = None,
) -> Answer:
    """POST ``document`` as JSON through the context's guarded client."""
    body = json.dumps(document, separators=(",", ":")).encode("utf-8")
    return _post(context, url, body, JSON, service, headers)


def _post(
    context: OpenContext,
    url: str,
    body: bytes,
    content_type: str,
    service: str,
    headers: Mapping[str, str] | None,
) -> Answer:
    """Send through context.post; a refused or failed request becomes a ProviderError.

    The guard's message names the host and what went wrong (refused address, timeout, TLS);
    it never contains the request body, which is where the ID token travels.
    """
    try:
        status, answer_headers, answer_body = context.post(
            url, body=body, content_type=content_type, headers=headers
        )
    except FetchError as exc:
        if exc.reason == ENDPOINT_REFUSED:
            raise ProviderError(
                f"{service} at {url} is refused: {exc.message}", reason=ENDPOINT_NOT_ALLOWED
            ) from exc
        if exc.reason in _ANSWER_PROBLEMS:
            raise ProviderError(
                f"{service} at {url} sent an unusable answer: {exc.message}", reason=BAD_ANSWER
            ) from exc
        raise ProviderError(
            f"could not reach {service} at {url}: {exc.message}", reason=UNREACHABLE
        ) from exc
    lowered = {name.lower(): value for name, value in answer_headers.items()}
    return Answer(service=service, status=status, headers=lowered, body=answer_body)


# ----------------------------------------------------------------------------------- answers


def json_answer(answer: Answer, *, secrets: Sequence[str] = ()) -> dict[str, Any]:
    """The JSON object of a 2xx answer; a ProviderError with the remote error otherwise."""
    data, problem = _decode(answer)
    if not answer.ok:
        raise refusal(answer, remote_error(data) if data is not None else None, secrets=secrets)
    if data is None:
        raise ProviderError(
            f"{answer.service} sent an answer that is not JSON ({problem})", reason=BAD_ANSWER
        )
    return data


def _decode(answer: Answer) -> tuple[dict[str, Any] | None, str]:
    """Decode strictly; returns (None, why) instead of raising, for error answers."""
    try:
        return decode_json(answer.headers, answer.body), ""
    except FetchError as exc:
        return None, exc.message


def refusal(answer: Answer, detail: str | None, *, secrets: Sequence[str] = ()) -> ProviderError:
    """The error for a non-2xx answer: status plus the remote error, tokens scrubbed."""
    message = f"{answer.service} refused the request (HTTP {answer.status})"
    if detail:
        message += ": " + scrub(detail, secrets)
    return ProviderError(message, reason=REFUSED)


def remote_error(data: Mapping[str, Any]) -> str | None:
    """Pick the error code and description out of the JSON error shapes services use.

    OAuth 2.0 (`error`, `error_description`: Google STS, Microsoft Entra), Google APIs
    (`error: {code, message, status}`), Vault (`errors: [...]`) and a bare `message`.
    """
    error = data.get("error")
    if isinstance(error, Mapping):
        parts = [error.get("status"), error.get("message")]
    else:
        parts = [error, data.get("error_description")]
    errors = data.get("errors")
    if isinstance(errors, list):
        parts.extend(errors)
    texts = [part.strip() for part in parts if isinstance(part, str) and part.strip()]
    if not texts and isinstance(data.get("message"), str):
        texts = [data["message"].strip()]
    return ": ".join(texts) or None


def scrub(text: str, secrets: Sequence[str] = ()) -> str:
    """Make a remote message safe to show: no tokens, no control characters, bounded length."""
    for secret in secrets:
        if len(secret) >= 8:
            text = text.replace(secret, "[redacted]")
    text = _JWT_LIKE.sub("[redacted]", text)
    text = _CONTROL.sub(" ", text).strip()
    if len(text) > _MAX_MESSAGE:
        text = text[:_MAX_MESSAGE] + "..."
    return text


def answer_string(data: Mapping[str, Any], key: str, *, service: str) -> str:
    """A required non-empty string field of a successful answer."""
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise ProviderError(f"{service}'s answer has no {key}", reason=BAD_ANSWER)
    return value


MAX_EXPIRES_IN = 366 * 24 * 3600  # a credential said to live longer is an answer not to trust


def expires_in(context: OpenContext, value: object, *, service: str) -> datetime:
    """Turn an `expires_in` number of seconds (a number or numeric string) into an instant."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_EXPIRES_IN:
        raise ProviderError(f"{service}'s answer has no valid expires_in", reason=BAD_ANSWER)
    return context.now() + timedelta(seconds=value)


def parse_timestamp(value: object, *, service: str) -> datetime:
    """Parse an RFC 3339 timestamp from an answer (`Z` or offset, any fraction) to UTC."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is not None:
                return parsed.astimezone(UTC)
    raise ProviderError(f"{service}'s answer has no valid expiry time", reason=BAD_ANSWER)


def rfc3339(value: datetime) -> str:
    """Write an instant as `2026-01-02T03:04:05Z` for the open result."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
