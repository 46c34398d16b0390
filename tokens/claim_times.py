"""The JWT time claims (seconds since 1970, RFC 7519 §2 NumericDate) as UTC dates for pages."""

from __future__ import annotations

from datetime import UTC, datetime

TIME_CLAIMS = frozenset({"exp", "iat", "nbf", "auth_time"})
# Year 1 to 9999: what a datetime holds; anything else stays a bare number on the page.
_EARLIEST, _LATEST = -62_135_596_800, 253_402_300_799


def claim_time(value: object) -> datetime | None:
    """The UTC time a NumericDate claim value names, or None when it is not a usable number."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return None
    if not _EARLIEST <= value <= _LATEST:
        return None
    try:
        return datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None
