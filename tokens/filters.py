"""The filters of the exchange history and the token list, parsed once for pages, API and CLI.

A query string, a JSON body and command-line options all arrive as a mapping from the same
names to text; `event_filters_from` / `token_filters_from` turn it into a frozen value or raise
FilterError naming every bad field. The selectors turn the value into a queryset; nothing here
touches the database.

Names (shared by the history page, its exports and `GET /api/orgs/{org}/oidc/exchanges`):
`issuer`, `decision`, `reason`, `subject`, `repository`, `type`, `requestId`, `since`, `until`.
Token filters
(token pages, `/api/orgs/{org}/tokens…`, `revoketokens`): `type`, `issuer`, `policy`,
`version`, `definition`, `status`, `subject`, `repository`, `since`, `until`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, fields
from dataclasses import field as dataclass_field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypeVar

from django.utils.dateparse import parse_date, parse_datetime

from policies.patterns import Pattern, PatternError, compile_pattern
from tokens.models import Decision, TokenType

T = TypeVar("T")
REASON = re.compile(r"^[a-z0-9_]{1,64}$")
# What the middleware accepts or generates as a request id (trustportal.middleware).
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MAX_PATTERN = 1000
TOKEN_STATUSES = ("active", "expired", "revoked")


class FilterError(ValueError):
    """One or more filter values could not be understood; `errors` maps name to message."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors = dict(errors)
        super().__init__("; ".join(f"{name}: {message}" for name, message in self.errors.items()))


@dataclass(frozen=True)
class EventFilters:
    """What the exchange history is narrowed to; None means "any"."""

    issuer: uuid.UUID | None = None
    decision: str | None = None
    reason: str | None = None
    subject: Pattern | None = None
    repository: Pattern | None = None
    type: str | None = None
    # Exact, not a pattern: the id a refusal and `trustportal-login` tell users to hand over.
    request_id: str | None = dataclass_field(default=None, metadata={"param": "requestId"})
    since: datetime | None = None
    until: datetime | None = None

    def as_params(self) -> dict[str, str]:
        """The filters as query parameters (for next-page and export links)."""
        return _params(self)

    @property
    def is_empty(self) -> bool:
        return not self.as_params()


@dataclass(frozen=True)
class TokenFilters:
    """What the token list, bulk revocation and `revoketokens` are narrowed to."""

    type: str | None = None
    issuer: uuid.UUID | None = None
    policy: uuid.UUID | None = None
    version: int | None = None
    definition: int | None = None
    status: str | None = None
    subject: Pattern | None = None
    repository: Pattern | None = None
    since: datetime | None = None
    until: datetime | None = None

    def as_params(self) -> dict[str, str]:
        return _params(self)

    @property
    def is_empty(self) -> bool:
        return not self.as_params()

    def selects_tokens(self) -> bool:
        """Whether anything besides `status` narrows the set (bulk revocation requires it)."""
        return any(name != "status" for name in self.as_params())


def _params(filters: EventFilters | TokenFilters) -> dict[str, str]:
    params: dict[str, str] = {}
    for field in fields(filters):
        value = getattr(filters, field.name)
        name = field.metadata.get("param", field.name)
        if value is None:
            continue
        if isinstance(value, Pattern):
            params[name] = value.source
        elif isinstance(value, datetime):
            params[name] = value.isoformat().replace("+00:00", "Z")
        else:
            params[name] = str(value)
    return params


# --- parsing ------------------------------------------------------------------------------------
def _text(params: Mapping[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError("must be text")
    text = str(value).strip()
    return text or None


def _uuid(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise ValueError("must be an id (a UUID)") from None


def _choice(options: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return text

    return parse


def _reason(text: str) -> str:
    if not REASON.match(text):
        raise ValueError("must be a reason code such as denied_by_policy")
    return text


def _request_id(text: str) -> str:
    if not REQUEST_ID.match(text):
        raise ValueError(
            "must be a request id as a refusal shows it: up to 64 letters, digits, '.', '_' or '-'"
        )
    return text


def _pattern(text: str) -> Pattern:
    if len(text) > MAX_PATTERN:
        raise ValueError(f"must be at most {MAX_PATTERN} characters")
    try:
        return compile_pattern(text)
    except PatternError as exc:
        raise ValueError(exc.message) from None


def _count(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 12:
        raise ValueError("must be a whole number")
    return int(text)


def parse_time(text: str, *, end: bool = False) -> datetime:
    """An ISO 8601 date or date-time; without a zone it is UTC.

    A bare date means the start of that day, or with `end` the start of the next one (so
    `until=2026-01-31` includes the whole 31st: `until` is exclusive).
    """
    try:
        # parse_datetime would read a bare date as its midnight; dates are told apart first.
        day = parse_date(text) if DATE_ONLY.match(text) else None
        moment = None if day is not None else parse_datetime(text)
    except ValueError:
        moment = day = None
    if moment is None and day is None:
        raise ValueError("must be a date (2026-01-31) or date and time (2026-01-31T12:00Z)")
    if moment is None:
        assert isinstance(day, date)
        moment = datetime.combine(day + timedelta(days=1) if end else day, time(), UTC)
    elif moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


def _until(text: str) -> datetime:
    return parse_time(text, end=True)


class _Reader:
    """Collects every field's error instead of stopping at the first."""

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.params = params
        self.errors: dict[str, str] = {}

    def read(self, name: str, parse: Callable[[str], T]) -> T | None:
        try:
            text = _text(self.params, name)
            return None if text is None else parse(text)
        except ValueError as exc:
            self.errors[name] = str(exc)
            return None

    def check(self) -> None:
        if self.errors:
            raise FilterError(self.errors)


def _time_range(reader: _Reader) -> tuple[datetime | None, datetime | None]:
    since = reader.read("since", parse_time)
    until = reader.read("until", _until)
    if since is not None and until is not None and until <= since:
        reader.errors["until"] = "must be after since"
    return since, until


def event_filters_from(params: Mapping[str, Any]) -> EventFilters:
    """Parse history filters (query string or JSON); raises FilterError."""
    reader = _Reader(params)
    since, until = _time_range(reader)
    filters = EventFilters(
        issuer=reader.read("issuer", _uuid),
        decision=reader.read("decision", _choice(tuple(Decision.values))),
        reason=reader.read("reason", _reason),
        subject=reader.read("subject", _pattern),
        repository=reader.read("repository", _pattern),
        type=reader.read("type", _choice(tuple(TokenType.values))),
        request_id=reader.read("requestId", _request_id),
        since=since,
        until=until,
    )
    reader.check()
    return filters


def token_filters_from(params: Mapping[str, Any]) -> TokenFilters:
    """Parse token filters (query string, JSON body or command options); raises FilterError."""
    reader = _Reader(params)
    since, until = _time_range(reader)
    filters = TokenFilters(
        type=reader.read("type", _choice(tuple(TokenType.values))),
        issuer=reader.read("issuer", _uuid),
        policy=reader.read("policy", _uuid),
        version=reader.read("version", _count),
        definition=reader.read("definition", _count),
        status=reader.read("status", _choice(TOKEN_STATUSES)),
        subject=reader.read("subject", _pattern),
        repository=reader.read("repository", _pattern),
        since=since,
        until=until,
    )
    if filters.definition is not None and (filters.policy is None or filters.version is None):
        reader.errors["definition"] = "needs policy and version (indexes change between versions)"
    reader.check()
    return filters


def cursor_from(params: Mapping[str, Any], *names: str) -> int | None:
    """The keyset cursor (an id: rows below it come next); raises FilterError."""
    for name in names:
        reader = _Reader(params)
        value = reader.read(name, _count)
        reader.check()
        if value is not None:
            return value
    return None


def limit_from(params: Mapping[str, Any], *, default: int, maximum: int) -> int:
    """The page size: `limit` within 1..maximum; raises FilterError."""
    reader = _Reader(params)
    value = reader.read("limit", _count)
    reader.check()
    if value is None:
        return default
    if not 1 <= value <= maximum:
        raise FilterError({"limit": f"must be from 1 to {maximum}"})
    return value


def iter_params(filters: EventFilters | TokenFilters) -> Iterator[tuple[str, str]]:
    """(name, value) pairs of the filters that are set, for hidden form fields."""
    yield from filters.as_params().items()
