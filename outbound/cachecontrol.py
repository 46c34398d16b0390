"""Cache-Control parsing: how long an answer may be reused, by RFC 9111's rules."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["parse_cache_control_max_age"]

# Cache-Control delta-seconds saturate here (RFC 9111 §1.2.2).
_MAX_DELTA_SECONDS = 2_147_483_648


def parse_cache_control_max_age(headers: Mapping[str, str]) -> int | None:
    """Return the freshness lifetime from Cache-Control in seconds; ignores Expires/Age.

    ``no-store`` or ``no-cache`` give 0; a malformed ``max-age`` gives 0 (RFC 9111 says to
    treat invalid freshness as stale); repeated ``max-age`` takes the smallest; values are
    capped at 2**31. Returns None when there is no usable directive. Header lookup is
    case-insensitive so raw header mappings work too.
    """
    values = [value for name, value in headers.items() if name.lower() == "cache-control"]
    if not values:
        return None
    ages: list[int] = []
    for directive in ",".join(values).split(","):
        name, sep, argument = directive.strip().partition("=")
        name = name.strip().lower()
        if name in ("no-store", "no-cache"):
            return 0
        if name != "max-age":
            continue
        argument = argument.strip()
        if len(argument) >= 2 and argument[0] == argument[-1] == '"':
            argument = argument[1:-1]
        if not sep or not argument.isascii() or not argument.isdigit():
            ages.append(0)
            continue
        ages.append(min(int(argument), _MAX_DELTA_SECONDS))
    return min(ages) if ages else None
