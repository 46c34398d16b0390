"""Stored JSON as bounded display text: any depth or size renders, never a RecursionError.

Claims of unverified tokens and evaluation traces are stored as received; pages that show
them must not trust their shape. This module only displays: it does not validate or repair.
"""

from __future__ import annotations

import json
from typing import Any

from kernel.strictjson import MAX_DEPTH as PARSE_MAX_DEPTH

MAX_DEPTH = 16  # containers below this depth are shown as […] / {…}
MAX_CHARS = 10_000  # the text is cut here, ending in "…"
ELLIPSIS = "…"


class _Text:
    """An output buffer that stops accepting text once its limit is reached."""

    def __init__(self, limit: int) -> None:
        self.parts: list[str] = []
        self.room = limit
        self.full = False

    def add(self, text: str) -> None:
        if self.full:
            return
        if len(text) > self.room:
            self.parts.append(text[: self.room])
            self.room = 0
            self.full = True
            return
        self.parts.append(text)
        self.room -= len(text)


def _scalar(value: Any) -> str:
    """One JSON scalar; text that is not valid Unicode (lone surrogates) shown escaped."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(value, ensure_ascii=True, default=str)
    return text


def _write(value: Any, depth: int, out: _Text, max_depth: int) -> None:
    if out.full:
        return
    if isinstance(value, dict):
        items: Any = value.items()
        opening, closing = "{", "}"
    elif isinstance(value, list | tuple):
        items = value
        opening, closing = "[", "]"
    else:
        out.add(_scalar(value))
        return
    if not value:
        out.add(opening + closing)
        return
    if depth >= max_depth:
        out.add(opening + ELLIPSIS + closing)
        return
    out.add(opening)
    for index, item in enumerate(items):
        if out.full:
            return
        if index:
            out.add(", ")
        if isinstance(value, dict):
            name, item = item
            out.add(_scalar(str(name)) + ": ")
        _write(item, depth + 1, out, max_depth)
    out.add(closing)


def bounded_json(value: Any, *, max_depth: int = MAX_DEPTH, max_chars: int = MAX_CHARS) -> str:
    """`value` as JSON text, nested no deeper than `max_depth` and at most `max_chars` long.

    Deeper containers read `[…]` or `{…}` and a cut text ends in "…", so the page says that
    something is left out. Recursion is bounded by `max_depth`, not by the value.
    """
    out = _Text(max_chars)
    _write(value, 0, out, max_depth)
    text = "".join(out.parts)
    return text + ELLIPSIS if out.full else text


def bounded_text(value: str, *, max_chars: int = MAX_CHARS) -> str:
    """A string cut at `max_chars`, ending in "…" when cut."""
    return value if len(value) <= max_chars else value[:max_chars] + ELLIPSIS


# Deeper than any real claim set; json.loads stays far from its limit.
DATA_MAX_DEPTH = PARSE_MAX_DEPTH
TOO_DEEP = "[nested deeper than 64 levels: left out]"
