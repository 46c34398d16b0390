"""Strict JSON for untrusted input: one object, no duplicate names, storable text only.

Used for request bodies and for the header and claims of subject tokens. Refuses what lenient
parsers accept and later code trips over: duplicate member names (parsers disagree which wins),
NaN/Infinity, numbers too large for a float (`1e999` would become Infinity, which no JSON column
stores), lone surrogates (not UTF-8, cannot be stored) and NUL (PostgreSQL text refuses it).
"""

from __future__ import annotations

import json
import math
from typing import Any


def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object from (name, value) pairs; ValueError when a name repeats."""
    names = [name for name, _ in pairs]
    if len(names) != len(set(names)):
        raise ValueError("duplicate member names")
    return dict(pairs)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    """A JSON number with a fraction or exponent as a float; ValueError when it overflows."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:20]} is out of range")
    return value


def check_text(value: Any) -> None:
    """Refuse strings that cannot be stored: lone surrogates (not UTF-8) and NUL characters."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise ValueError("a string contains NUL")
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise ValueError("a string is not valid Unicode") from exc
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


# Deeper than any real body or claim set; far from what exhausts json.loads' stack, however
# many frames the caller already has.
MAX_DEPTH = 64


def loads_object(text: str, *, check_strings: bool = True) -> dict[str, Any]:
    """Parse a JSON object strictly; ValueError on anything else.

    Nesting deeper than MAX_DEPTH is refused before parsing (scanned, not recursed into). With
    `check_strings=False` the caller checks the strings itself (field by field).
    """
    if nesting_exceeds(text, MAX_DEPTH):
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    value = json.loads(
        text,
        object_pairs_hook=no_duplicates,
        parse_constant=_no_constants,
        parse_float=_finite_float,
    )
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    if check_strings:
        check_text(value)
    return value


def nesting_exceeds(text: str, limit: int) -> bool:
    """Whether JSON `text` nests arrays/objects deeper than `limit` (scanned, not parsed).

    Lets a reader refuse to `json.loads` what would exhaust the stack. Brackets inside strings
    do not count. Cheap for ordinary documents: with no more brackets than `limit` in all,
    nothing is scanned.
    """
    if text.count("[") + text.count("{") <= limit:
        return False
    depth, in_string, escaped = 0, False, False
    for character in text:
        if in_string:
            if escaped:
                escaped = False
            elif character == "\\":
                escaped = True
            elif character == '"':
                in_string = False
        elif character == '"':
            in_string = True
        elif character in "[{":
            depth += 1
            if depth > limit:
                return True
        elif character in "]}":
            depth -= 1
    return False
