"""Numbers in definitions: YAML 1.2 integer and float literals, held to what JSON carries.

Every value of an environment ends up in JSON (the open API, the pages, Pulumi's SDKs and
`pulumi env` in Go and TypeScript), so a number must be one every JSON reader holds: integers
within ±(2^53 - 1), the I-JSON range (RFC 7493) that JavaScript and float64 hold exactly, and
finite floats. Anything beyond is an `OutOfRange` the parser reports at the literal, when a
definition is checked or saved and again for anything already stored, instead of a value that
later breaks conversions (Python refuses to turn integers of more than 4300 digits into text).

It does not round, clamp or turn numbers into strings: writers quote what they mean as text.
YAML's `.inf` and `.nan` (no JSON form at all) stay text as written, as before.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

MAX_SAFE_INTEGER = 2**53 - 1
# A literal longer than this is out of range whatever its base; never converted (nor shown).
_MAX_DIGITS = 64
_SHOWN = 24

_INT_FORMS = ((re.compile(r"[-+]?[0-9]+"), 10), (re.compile(r"0x[0-9a-fA-F]+"), 16))
_OCTAL = re.compile(r"0o[0-7]+")
_FLOAT_FORM = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")


@dataclass(frozen=True)
class OutOfRange:
    """A number literal JSON consumers cannot hold; `message` is the diagnostic."""

    message: str


def _shown(text: str) -> str:
    """The literal for a message, shortened: a 5000-digit number is not repeated."""
    return text if len(text) <= _SHOWN else f"{text[:10]}…{text[-6:]} ({len(text)} characters)"


def _integer_out_of_range(text: str) -> OutOfRange:
    return OutOfRange(
        f"the integer {_shown(text)} is outside ±{MAX_SAFE_INTEGER} (2^53 - 1), the range JSON "
        "consumers hold exactly; quote it to keep it as a string"
    )


def integer(text: str) -> int | str | OutOfRange:
    """A YAML 1.2 integer literal as an int; text for YAML 1.1-only forms; OutOfRange if huge."""
    cleaned = text.strip()
    base = next((b for pattern, b in _INT_FORMS if pattern.fullmatch(cleaned)), None)
    if base is None and _OCTAL.fullmatch(cleaned):
        base, cleaned = 8, cleaned[2:]
    if base is None:
        return text  # YAML 1.1 forms (1_000, 0b1, 1:20) are strings in YAML 1.2
    if len(cleaned.lstrip("+-").lstrip("0")) > _MAX_DIGITS:
        return _integer_out_of_range(text.strip())
    number = int(cleaned, base)
    if abs(number) > MAX_SAFE_INTEGER:
        return _integer_out_of_range(text.strip())
    return number


def decimal(text: str) -> float | str | OutOfRange:
    """A YAML 1.2 float literal as a float; text for `.inf`, `.nan` and other forms."""
    cleaned = text.strip()
    if not _FLOAT_FORM.fullmatch(cleaned):
        return text  # .inf / .nan have no JSON form: keep them as written
    number = float(cleaned)
    if not math.isfinite(number):
        return OutOfRange(
            f"the number {_shown(cleaned)} is too large for a JSON number (it overflows a "
            "64-bit float); quote it to keep it as a string"
        )
    return number
