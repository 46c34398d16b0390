"""Policy patterns and claim paths (product spec §5): parsing, compiling, reading claims.

Pure module (no Django). A pattern is full-string and case-sensitive: `*` any run of characters
(also across `/` and `:`), `?` exactly one, `\\*` `\\?` `\\\\` literals, every other character
literal (a `.` never matches any character). A claim path is dot-separated with double quotes
for keys that hold dots. It does not evaluate definitions (that is `policies.matching`).
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final


class PolicyError(ValueError):
    """A policy definition, pattern or claim path that cannot be compiled."""

    def __init__(self, message: str, path: str = "") -> None:
        self.message = message
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)

    def at(self, path: str) -> PolicyError:
        """Return the same error (same class) located at `path`, for callers that know where."""
        return type(self)(self.message, path)


class PatternError(PolicyError):
    """A pattern with a bad escape or no characters."""


class ClaimPathError(PolicyError):
    """A claim path with an empty segment or unbalanced quotes."""


# --------------------------------------------------------------------------------------------
# Patterns


class Wildcard(enum.Enum):
    """The two wildcards of the pattern syntax."""

    ONE = "?"  # exactly one character
    ANY = "*"  # any run of characters, including none


PatternElement = str | Wildcard
_ESCAPABLE: Final = frozenset("*?\\")


def _parse_pattern(pattern: str) -> tuple[PatternElement, ...]:
    """Split a pattern into literal runs and wildcards; runs of `*` collapse into one."""
    if not pattern:
        raise PatternError("empty pattern (it could only ever match an empty value)")
    elements: list[PatternElement] = []
    literal: list[str] = []

    def flush() -> None:
        if literal:
            elements.append("".join(literal))
            literal.clear()

    chars = iter(pattern)
    for char in chars:
        if char == "\\":
            escaped = next(chars, None)
            if escaped is None:
                raise PatternError(
                    f"{pattern!r} ends with a lone backslash (write \\\\ for a literal backslash)"
                )
            if escaped not in _ESCAPABLE:
                raise PatternError(
                    f"{pattern!r} has an unknown escape \\{escaped} "
                    "(only \\*, \\? and \\\\ are escapes; every other character is literal as is)"
                )
            literal.append(escaped)
        elif char == "*":
            flush()
            # `**` means the same as `*`; collapsing keeps the compiled matcher small.
            if not elements or elements[-1] is not Wildcard.ANY:
                elements.append(Wildcard.ANY)
        elif char == "?":
            flush()
            elements.append(Wildcard.ONE)
        else:
            literal.append(char)
    flush()
    return tuple(elements)


def _element_regex(element: PatternElement) -> str:
    return "." if element is Wildcard.ONE else re.escape(str(element))


def _build_regex(elements: tuple[PatternElement, ...]) -> re.Pattern[str]:
    """Translate parsed elements into a regex that cannot backtrack catastrophically.

    The text between two `*` has a fixed length, so matching each such middle segment at its
    leftmost possible position is always safe (a later position only leaves less room for the
    rest). An atomic group `(?>.*?segment)` commits to that leftmost position, which bounds the
    work to O(len(value) * len(pattern)) instead of the exponential backtracking that a plain
    `.*a.*a.*b` translation exhibits on long values.
    """
    segments: list[list[PatternElement]] = [[]]
    for element in elements:
        if element is Wildcard.ANY:
            segments.append([])
        else:
            segments[-1].append(element)
    texts = ["".join(_element_regex(e) for e in segment) for segment in segments]
    if len(texts) == 1:
        regex = texts[0]
    else:
        head, *middle, tail = texts
        regex = head + "".join(f"(?>.*?{text})" for text in middle) + ".*" + tail
    return re.compile(regex, re.DOTALL)


@dataclass(frozen=True)
class Pattern:
    """A compiled pattern: full-string, case-sensitive, with `*` and `?` as the only wildcards."""

    source: str
    elements: tuple[PatternElement, ...]
    # None for a pattern without wildcards: plain string equality is all it needs.
    _regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    @property
    def is_literal(self) -> bool:
        """True when the pattern has no wildcard, i.e. matches exactly one value."""
        return all(isinstance(e, str) for e in self.elements)

    @property
    def literal_prefix(self) -> str:
        """The unescaped text every matching value starts with (up to the first wildcard)."""
        first = self.elements[0] if self.elements else ""
        return first if isinstance(first, str) else ""

    def matches(self, value: str) -> bool:
        """Whether the whole of `value` matches; no case folding, trimming or normalisation."""
        if self._regex is None:
            return value == self.literal_prefix
        return self._regex.fullmatch(value) is not None


def compile_pattern(pattern: str) -> Pattern:
    """Compile a policy pattern once; raises PatternError for an empty pattern or a bad escape.

    It deliberately does not treat `.` as a wildcard nor `?` as "zero or one" (Pulumi's documented
    meanings): a literal `.` in an organisation name must never match another character.
    """
    elements = _parse_pattern(pattern)
    is_literal = all(isinstance(e, str) for e in elements)
    return Pattern(pattern, elements, None if is_literal else _build_regex(elements))


# --------------------------------------------------------------------------------------------
# Claim paths and claim values


def parse_claim_path(path: str) -> tuple[str, ...]:
    """Split a claim path at dots, honouring double-quoted segments; raises ClaimPathError.

    `"kubernetes.io".serviceaccount.name` -> ("kubernetes.io", "serviceaccount", "name").
    A quoted segment must be a whole segment and cannot itself contain a double quote (no claim
    name seen in practice needs one, and supporting escapes would make paths harder to read).
    """
    if not path:
        raise ClaimPathError("empty claim path")
    segments: list[str] = []
    position = 0
    while True:
        if path.startswith('"', position):
            closing = path.find('"', position + 1)
            if closing < 0:
                raise ClaimPathError(f"{path!r} has an unbalanced double quote")
            segment = path[position + 1 : closing]
            position = closing + 1
            if position < len(path) and path[position] != ".":
                raise ClaimPathError(
                    f"{path!r}: a quoted segment must be followed by '.' or end the path"
                )
        else:
            end = path.find(".", position)
            end = len(path) if end < 0 else end
            segment = path[position:end]
            position = end
            if '"' in segment:
                raise ClaimPathError(
                    f"{path!r}: double quotes must enclose a whole segment, "
                    'e.g. "kubernetes.io".namespace'
                )
        if not segment:
            raise ClaimPathError(f"{path!r} has an empty segment")
        segments.append(segment)
        if position == len(path):
            return tuple(segments)
        position += 1  # skip the dot
        if position == len(path):
            raise ClaimPathError(f"{path!r} has an empty segment")


def _scalar_text(value: Any) -> str | None:
    """Render a scalar claim as the text patterns see; None for anything that must never match."""
    if isinstance(value, str):
        return value
    # bool is a subclass of int: test it first so True renders as "true", not "1".
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        # JSON does not distinguish 1047 from 1047.0; render whole numbers like integers.
        return str(int(value)) if value.is_integer() else repr(value)
    return None


def claim_values(claims: Mapping[str, Any], path: tuple[str, ...]) -> tuple[str, ...] | None:
    """Return the texts a rule compares for `path`; None when missing, null or an object.

    A list claim yields each scalar element (objects, nulls and nested lists inside it are
    skipped, so an empty tuple means "present but nothing comparable"). It deliberately does not
    index into lists nor stringify objects: those never match.
    """
    node: Any = claims
    for segment in path:
        # The dict test is a fast path: verified claims are JSON-decoded dicts, and an ABC
        # isinstance check costs several times more on every rule of every request.
        if not isinstance(node, dict) and not isinstance(node, Mapping):
            return None
        node = node.get(segment)
    if isinstance(node, (list, tuple)):
        return tuple(text for text in map(_scalar_text, node) if text is not None)
    text = _scalar_text(node)
    return None if text is None else (text,)
