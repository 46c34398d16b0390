"""Go-style durations (`1h`, `2h0m0s`, `90s`, `1.5h`) as the ESC API and `fn::open` take them."""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
MAX_TEXT = 64


def parse_duration(text: str) -> timedelta:
    """A Go duration (`1h`, `2h0m0s`, `90s`, `1.5h`) or plain seconds; ValueError otherwise."""
    text = text.strip()
    if len(text) > MAX_TEXT:
        raise ValueError(text[:MAX_TEXT])
    if text.isdigit():
        return timedelta(seconds=int(text))
    total, position = 0.0, 0
    while position < len(text):
        match = _DURATION.match(text, position)
        if match is None:
            raise ValueError(text)
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if total <= 0:
        raise ValueError(text)
    return timedelta(seconds=total)
