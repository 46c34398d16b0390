"""The environment language's syntax: positions, diagnostics, the definition's tree, property
paths and evaluated values. Pure data, no YAML and no evaluation (see `parser` and `evaluator`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

MAX_DEFINITION_BYTES = 256 * 1024
MAX_NODES = 10_000  # per definition, after YAML aliases are expanded
MAX_DEPTH = 64  # nesting of maps and lists
MAX_ENVIRONMENTS = 32  # distinct environments one evaluation may load
MAX_REFERENCE_DEPTH = 100  # references that lead to references…
MAX_WEIGHT = 100_000  # nodes in one evaluated value, aliases and references expanded
MAX_VALUE_DEPTH = 100  # nesting of one evaluated value, references included
MAX_STRING = 64 * 1024  # characters in one interpolated string

DEFAULT_PROJECT = "default"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
SECRET_MASK = "[secret]"
UNKNOWN_MASK = "[unknown]"
PATH_NAME = re.compile(r"[^.\[\]\"{}\s]+")  # what a reference may write bare
PLAIN_KEY = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")  # what a path is written with bare (Pulumi)


# --- positions and diagnostics ------------------------------------------------------------------
@dataclass(frozen=True)
class Pos:
    """A place in a definition: 1-based line and column (characters), 0-based byte offset."""

    line: int
    column: int
    byte: int

    def to_wire(self) -> dict[str, int]:
        return {"line": self.line, "column": self.column, "byte": self.byte}


@dataclass(frozen=True)
class Range:
    """A span in one environment's definition (`environment` is `project/name`)."""

    environment: str
    begin: Pos
    end: Pos

    def to_wire(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "begin": self.begin.to_wire(),
            "end": self.end.to_wire(),
        }


@dataclass(frozen=True)
class Diagnostic:
    """One problem, in Pulumi's shape: a summary, the property path and where it is."""

    summary: str
    path: str = ""
    range: Range | None = None

    def to_wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {"summary": self.summary}
        if self.path:
            body["path"] = self.path
        if self.range is not None:
            body["range"] = self.range.to_wire()
        return body

    def where(self) -> str:
        """`line:column` for people, or an empty string when the position is unknown."""
        if self.range is None:
            return ""
        return f"{self.range.begin.line}:{self.range.begin.column}"


# --- the definition's syntax tree ---------------------------------------------------------------
@dataclass(eq=False)
class Node:
    """A value of the definition before evaluation; `path` is like `values.app.ports[0]`."""

    range: Range
    path: str


@dataclass(eq=False)
class Literal(Node):
    """A plain scalar."""

    value: bool | int | float | str | None


@dataclass(frozen=True)
class Reference:
    """`${a.b[0]}`: the accessors, the text between the braces, and where it is."""

    accessors: tuple[str | int, ...]
    text: str
    range: Range


@dataclass(eq=False)
class Interpolation(Node):
    """A string with `${…}` references among literal parts."""

    parts: tuple[str | Reference, ...]


@dataclass(eq=False)
class MapNode(Node):
    """A mapping of property names to values."""

    entries: dict[str, Node]


@dataclass(eq=False)
class ListNode(Node):
    """A list of values."""

    items: list[Node]


@dataclass(eq=False)
class SecretNode(Node):
    """`fn::secret`: exactly one of `plaintext` (as written) or `ciphertext` (as stored)."""

    plaintext: str | None = None
    ciphertext: str | None = None


@dataclass(eq=False)
class OpenNode(Node):
    """`fn::open::<provider>: <arguments>`: a provider call made when the environment is opened."""

    provider: str
    arguments: Node
    kind: str = "open"  # or "rotate": `fn::rotate::<rotator>: {inputs, state}`


@dataclass(eq=False)
class CallNode(Node):
    """A built-in function such as `fn::join: [",", [a, b]]`; `name` is without `fn::`."""

    name: str
    arguments: Node


@dataclass(eq=False)
class Imported(Node):
    """An already evaluated value of an imported environment, merged under this one."""

    value: Value | None = None


@dataclass(frozen=True)
class Import:
    """One entry of `imports`, normalized to `project/env`."""

    name: str  # normalized `project/env`
    range: Range
    index: int = 0  # its place in `imports`, for diagnostics at `imports[i]`
    merge: bool = True  # `- env: {merge: false}` loads it (for references) without merging it


@dataclass(frozen=True)
class SecretSite:
    """Where a `fn::secret` argument is in the text: `[start, end)` character indexes."""

    start: int
    end: int
    plaintext: str | None
    ciphertext: str | None


@dataclass(frozen=True)
class Definition:
    """A parsed definition: imports, the `values` tree, its secrets and any syntax problems."""

    imports: tuple[Import, ...] = ()
    values: MapNode | None = None
    secrets: tuple[SecretSite, ...] = ()
    diagnostics: tuple[Diagnostic, ...] = ()


# --- paths --------------------------------------------------------------------------------------
def parse_path(text: str) -> tuple[str | int, ...]:
    """Accessors of a property path: `a.b[0]["c.d"]` → ("a", "b", 0, "c.d"); ValueError if bad."""
    accessors: list[str | int] = []
    i, n = 0, len(text)
    if not text.strip():
        raise ValueError("the path is empty")
    first = True
    while i < n:
        char = text[i]
        if char == "[":
            close = _closing_bracket(text, i)
            inner = text[i + 1 : close].strip()
            if inner.startswith('"'):
                try:
                    key = json.loads(inner)
                except ValueError as exc:
                    raise ValueError(f"bad quoted key {inner}") from exc
                if not isinstance(key, str):
                    raise ValueError(f"bad quoted key {inner}")
                accessors.append(key)
            elif inner.removeprefix("-").isdigit():
                if first:
                    raise ValueError(
                        "the first accessor must be a property name or key subscript, not a "
                        "numeric subscript"
                    )
                accessors.append(int(inner))
            else:
                raise ValueError(f"bad subscript [{inner}]: use a number or a quoted key")
            i = close + 1
        else:
            if not first:
                if char != ".":
                    raise ValueError(f"unexpected {char!r} at offset {i}")
                i += 1
            match = PATH_NAME.match(text, i)
            if match is None:
                raise ValueError(f"expected a property name at offset {i}")
            accessors.append(match.group())
            i = match.end()
        first = False
    return tuple(accessors)


def _closing_bracket(text: str, start: int) -> int:
    i = start + 1
    while i < len(text):
        if text[i] == '"':
            i = closing_quote(text, i)
        elif text[i] == "]":
            return i
        i += 1
    raise ValueError("a '[' is not closed")


def closing_quote(text: str, start: int) -> int:
    i = start + 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == '"':
            return i
        i += 1
    raise ValueError("a quoted key is not closed")


def format_path(accessors: Iterable[str | int]) -> str:
    """The inverse of `parse_path`, quoting keys that are not plain names."""
    out = ""
    for accessor in accessors:
        if isinstance(accessor, int):
            out += f"[{accessor}]"
        elif PLAIN_KEY.fullmatch(accessor):
            out += f".{accessor}" if out else accessor
        else:
            out += f"[{json.dumps(accessor)}]"
    return out


def normalize_import(name: str) -> str | None:
    """`project/env`, or `default/env` for a bare name; None when it is not a valid name."""
    parts = name.split("/")
    if len(parts) == 1:
        parts = [DEFAULT_PROJECT, parts[0]]
    if len(parts) != 2 or not all(valid_name(p) for p in parts):
        return None
    return "/".join(parts)


def valid_name(name: str) -> bool:
    """Whether a project or environment name is allowed: letters, digits, `_ . -`, not all dots."""
    return bool(NAME_PATTERN.match(name)) and name.strip(".") != ""


# --- evaluated values ---------------------------------------------------------------------------
@dataclass(eq=False)
class Value:
    """An evaluated value: a scalar, or a dict/list of Values; `secret` marks secret leaves."""

    value: Any
    secret: bool = False
    range: Range | None = None
    weight: int = 1  # values inside, counted as often as they appear
    depth: int = 1  # levels of maps and lists
    unknown: bool = False  # an fn::open result not computed (definition checks)
    final: bool = False  # `fn::final`: environments that import it may not override it

    @classmethod
    def container(cls, inner: dict[str, Value] | list[Value], where: Range | None) -> Value:
        """A map or list value, with its weight and depth computed from its children."""
        children = list(inner.values()) if isinstance(inner, dict) else inner
        return cls(
            inner,
            False,
            where,
            1 + sum(v.weight for v in children),
            1 + max((v.depth for v in children), default=0),
        )

    def lookup(self, accessors: Sequence[str | int]) -> Value | None:
        """The value at a path below this one, or None."""
        current: Value = self
        for accessor in accessors:
            inner = current.value
            found = child_of(inner, accessor)
            if found is None:
                return None
            current = found
        return current

    def plain(self, *, reveal: bool) -> Any:
        """The value as plain JSON data; secrets become `[secret]` unless `reveal`."""
        if self.unknown:
            return UNKNOWN_MASK
        if isinstance(self.value, dict):
            return {k: v.plain(reveal=reveal) for k, v in self.value.items()}
        if isinstance(self.value, list):
            return [v.plain(reveal=reveal) for v in self.value]
        if self.secret and not reveal:
            return SECRET_MASK
        return self.value

    def to_wire(self, *, reveal: bool) -> dict[str, Any]:
        """Pulumi's `Value` shape: `{"value", "secret", "trace": {"def": range}}`, recursively."""
        if isinstance(self.value, dict):
            inner: Any = {k: v.to_wire(reveal=reveal) for k, v in self.value.items()}
        elif isinstance(self.value, list):
            inner = [v.to_wire(reveal=reveal) for v in self.value]
        elif self.secret and not reveal:
            inner = SECRET_MASK
        else:
            inner = self.value
        trace: dict[str, Any] = {"def": self.range.to_wire()} if self.range is not None else {}
        if self.unknown:
            return {"value": None, "secret": self.secret, "unknown": True, "trace": trace}
        return {"value": inner, "secret": self.secret, "trace": trace}

    def has_unknown(self) -> bool:
        """Whether this value or anything inside it is an unknown placeholder."""
        if self.unknown:
            return True
        if isinstance(self.value, dict):
            return any(v.has_unknown() for v in self.value.values())
        if isinstance(self.value, list):
            return any(v.has_unknown() for v in self.value)
        return False


def unknown_value(where: Range | None) -> Value:
    """The placeholder of a provider call that is not made (and of what depends on it)."""
    return Value(None, True, where, unknown=True)


def child_of(inner: Any, accessor: str | int) -> Value | None:
    if isinstance(inner, dict) and isinstance(accessor, str):
        found: Value | None = inner.get(accessor)
        return found
    if isinstance(inner, list) and isinstance(accessor, int) and 0 <= accessor < len(inner):
        item: Value = inner[accessor]
        return item
    return None


def join_path(path: str, key: str) -> str:
    """`path.key`, or `path["odd key"]` when the key is not a plain name."""
    return f"{path}.{key}" if PLAIN_KEY.fullmatch(key) else f"{path}[{json.dumps(key)}]"


def below(path: str, accessors: tuple[str | int, ...]) -> str:
    """The path of a value below `path`: `path.key`, `path["odd key"]`, `path[0]`."""
    for accessor in accessors:
        path = f"{path}[{accessor}]" if isinstance(accessor, int) else join_path(path, accessor)
    return path
