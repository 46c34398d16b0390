"""Environment definitions: parse YAML with positions, resolve imports and `${…}`, track secrets.

Pure: no Django, no database, no keys. Callers hand in a `load` function for imports and, per
environment, a `decrypt` function, so this module never learns where definitions or keys live.

The language (docs/environments.md):

    imports:                       # other environments of the same organization, in order
      - project/env                # a bare `env` means `default/env` (Pulumi's rule)
    values:                        # any YAML: maps, lists, strings, numbers, booleans, null
      app: {name: web, replicas: 2}
      url: https://${app.name}.example.com     # interpolation; `$${` is a literal `${`
      copy: ${app}                 # a string that is exactly one reference keeps the type
      password:
        fn::secret: hunter2        # stored as {fn::secret: {ciphertext: …}}
      aws:
        fn::open::aws-login: {…}   # a provider, called on open; its outputs are secret

Imported environments merge in order (maps deeply, everything else replaced), then `values`
merges on top; references resolve against that merged result. Secrets stay secret through
interpolation. Everything wrong is a `Diagnostic` with a line and column, never an exception.

`fn::open::<provider>` calls go through the `open` function of each `Source` (the caller's
registry of providers, the portal's ID tokens, outbound HTTP). Without one (definition checks,
previews) a call is not made: its value is an *unknown* placeholder, and so is everything that
refers to it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode
from yaml.nodes import Node as YamlNode

from environments import numbers
from kernel.secretbox import DecryptFailed

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
OPEN_PREFIX = "fn::open::"
PROVIDER_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}\Z")

# libyaml when PyYAML was built with it: the same node graph and marks (character indexes),
# without the pure-Python scanner's quadratic cost on deeply nested flow collections.
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_STR = "tag:yaml.org,2002:str"
_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_MERGE = "tag:yaml.org,2002:merge"
_PATH_NAME = re.compile(r"[^.\[\]\"{}\s]+")
# YAML escapes can produce lone UTF-16 surrogates, which no UTF-8 output or database accepts.
_SURROGATE = re.compile("[\ud800-\udfff]")


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


class _Lines:
    """Turns PyYAML marks (0-based line, column and character index) into `Pos`."""

    _BREAKS = re.compile("\r\n|[\r\n\x85\u2028\u2029]")

    def __init__(self, text: str) -> None:
        self.text = text
        # Byte offset of the start of each line, counting line breaks as PyYAML does.
        self.line_bytes = [0]
        last, total = 0, 0
        for match in self._BREAKS.finditer(text):
            total += len(text[last : match.end()].encode("utf-8", "surrogatepass"))
            last = match.end()
            self.line_bytes.append(total)

    def pos(self, line: int, column: int, index: int) -> Pos:
        start = index - column
        prefix = self.text[max(start, 0) : index]
        base = self.line_bytes[line] if line < len(self.line_bytes) else self.line_bytes[-1]
        return Pos(line + 1, column + 1, base + len(prefix.encode("utf-8", "surrogatepass")))

    def at_index(self, index: int) -> Pos:
        """The position of a character index (for errors that carry only an index)."""
        index = max(0, min(index, len(self.text)))
        before = self.text[:index]
        breaks = list(self._BREAKS.finditer(before))
        line = len(breaks)
        column = index - (breaks[-1].end() if breaks else 0)
        return self.pos(line, column, index)


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


@dataclass(eq=False)
class Imported(Node):
    """An already evaluated value of an imported environment, merged under this one."""

    value: Value | None = None


@dataclass(frozen=True)
class Import:
    """One entry of `imports`, normalized to `project/env`."""

    name: str  # normalized `project/env`
    range: Range


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
            elif inner.isdigit():
                accessors.append(int(inner))
            else:
                raise ValueError(f"bad subscript [{inner}]: use a number or a quoted key")
            i = close + 1
        else:
            if not first:
                if char != ".":
                    raise ValueError(f"unexpected {char!r} at offset {i}")
                i += 1
            match = _PATH_NAME.match(text, i)
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
            i = _closing_quote(text, i)
        elif text[i] == "]":
            return i
        i += 1
    raise ValueError("a '[' is not closed")


def _closing_quote(text: str, start: int) -> int:
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
        elif _PATH_NAME.fullmatch(accessor):
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


# --- parsing ------------------------------------------------------------------------------------
class _Parser:
    """One pass over PyYAML's node graph, keeping every position."""

    def __init__(self, text: str, environment: str) -> None:
        self.text = text
        self.environment = environment
        self.lines = _Lines(text)
        self.diagnostics: list[Diagnostic] = []
        self.secrets: list[SecretSite] = []
        self.secret_nodes: set[int] = set()
        self.nodes = 0
        self.too_big = False

    # positions
    def range_of(self, node: YamlNode) -> Range:
        start, end = node.start_mark, node.end_mark
        return Range(
            self.environment,
            self.lines.pos(start.line, start.column, start.index),
            self.lines.pos(end.line, end.column, end.index),
        )

    def point(self, index: int) -> Range:
        pos = self.lines.at_index(index)
        return Range(self.environment, pos, pos)

    def error(self, summary: str, where: Range | None, path: str = "") -> None:
        self.diagnostics.append(Diagnostic(summary, path, where))

    # the document
    def parse(self) -> Definition:
        if len(self.text.encode("utf-8", "surrogatepass")) > MAX_DEFINITION_BYTES:
            self.error(f"the definition is larger than {MAX_DEFINITION_BYTES // 1024} KiB", None)
            return self.result(None, ())
        try:
            root = yaml.compose(self.text, Loader=_LOADER)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            problem = exc.problem or "invalid YAML"
            summary = f"{problem} ({exc.context})" if exc.context else problem
            where = self.point(mark.index) if mark is not None else None
            self.error(f"invalid YAML: {summary}", where)
            return self.result(None, ())
        except yaml.reader.ReaderError as exc:
            code = exc.character if isinstance(exc.character, int) else ord(exc.character)
            self.error(
                f"invalid YAML: character U+{code:04X} is not allowed", self.point(exc.position)
            )
            return self.result(None, ())
        except (yaml.YAMLError, UnicodeEncodeError):  # a lone surrogate is not UTF-8
            self.error("invalid YAML", None)
            return self.result(None, ())
        except RecursionError:
            self.error("the definition nests too deeply", None)
            return self.result(None, ())
        if root is None or (isinstance(root, ScalarNode) and root.tag == _NULL):
            return self.result(None, ())
        if not isinstance(root, MappingNode):
            self.error(
                "the definition must be a mapping with `imports` and `values`",
                self.range_of(root),
            )
            return self.result(None, ())
        values: MapNode | None = None
        imports: tuple[Import, ...] = ()
        for key, value in self.pairs(root, ""):
            if key == "imports":
                imports = self.imports(value)
            elif key == "values":
                if isinstance(value, ScalarNode) and value.tag == _NULL:
                    continue
                if not isinstance(value, MappingNode):
                    self.error("`values` must be a mapping", self.range_of(value), "values")
                    continue
                parsed = self.value(value, "values", 0)
                if isinstance(parsed, MapNode):
                    values = parsed
                elif parsed is not None:
                    self.error(
                        "`values` must be a mapping, not a function", self.range_of(value), "values"
                    )
            else:
                self.error(
                    f'unknown top-level key "{key}": a definition has `imports` and `values`',
                    self.range_of(value),
                    key,
                )
        return self.result(values, imports)

    def result(self, values: MapNode | None, imports: tuple[Import, ...]) -> Definition:
        return Definition(
            imports=imports,
            values=values,
            secrets=tuple(self.secrets),
            diagnostics=tuple(self.diagnostics),
        )

    def pairs(self, node: MappingNode, path: str) -> list[tuple[str, YamlNode]]:
        """The mapping's entries with string keys; refuses merge keys, odd and duplicate keys."""
        seen: set[str] = set()
        out: list[tuple[str, YamlNode]] = []
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self.error("keys must be strings", self.range_of(key_node), path)
                continue
            if key_node.tag == _MERGE:
                self.error("YAML merge keys (<<) are not supported", self.range_of(key_node), path)
                continue
            key = key_node.value
            if _SURROGATE.search(key):
                self.error(
                    "a lone UTF-16 surrogate escape is not valid text",
                    self.range_of(key_node),
                    path,
                )
                continue
            if key in seen:
                self.error(f'duplicate key "{key}"', self.range_of(key_node), path)
                continue
            seen.add(key)
            out.append((key, value_node))
        return out

    def imports(self, node: YamlNode) -> tuple[Import, ...]:
        if isinstance(node, ScalarNode) and node.tag == _NULL:
            return ()
        if not isinstance(node, SequenceNode):
            self.error("`imports` must be a list of environment names", self.range_of(node))
            return ()
        found: list[Import] = []
        for index, item in enumerate(node.value):
            path = f"imports[{index}]"
            if not isinstance(item, ScalarNode) or item.tag != _STR:
                self.error(
                    "an import is an environment name such as `project/env`",
                    self.range_of(item),
                    path,
                )
                continue
            name = normalize_import(item.value.strip())
            if name is None:
                self.error(
                    f'"{item.value}" is not an environment name (`project/env`)',
                    self.range_of(item),
                    path,
                )
                continue
            found.append(Import(name, self.range_of(item)))
        return tuple(found)

    # values
    def value(self, node: YamlNode, path: str, depth: int) -> Node | None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            if not self.too_big:
                self.too_big = True
                self.error(
                    f"the definition has more than {MAX_NODES} values (YAML aliases count each "
                    "time they are used)",
                    self.range_of(node),
                    path,
                )
            return None
        if depth > MAX_DEPTH:
            self.error(f"values nest deeper than {MAX_DEPTH} levels", self.range_of(node), path)
            return None
        where = self.range_of(node)
        if isinstance(node, ScalarNode):
            return self.scalar(node, path)
        if isinstance(node, SequenceNode):
            items = [
                self.value(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(node.value)
            ]
            return ListNode(where, path, [item for item in items if item is not None])
        if isinstance(node, MappingNode):
            pairs = self.pairs(node, path)
            functions = [key for key, _ in pairs if key.startswith("fn::")]
            if functions:
                if len(pairs) != 1:
                    self.error(f'"{functions[0]}" must be the only key of its mapping', where, path)
                    return None
                name, argument = pairs[0]
                if name == "fn::secret":
                    return self.secret(argument, path, where)
                if name.startswith(OPEN_PREFIX):
                    return self.open(name, argument, path, where, depth)
                self.error(
                    f'unsupported function "{name}": only fn::secret and fn::open::<provider> '
                    "are available",
                    where,
                    path,
                )
                return None
            entries: dict[str, Node] = {}
            for key, child in pairs:
                parsed = self.value(child, _join(path, key), depth + 1)
                if parsed is not None:
                    entries[key] = parsed
            return MapNode(where, path, entries)
        self.error("unsupported YAML node", where, path)
        return None

    def scalar(self, node: ScalarNode, path: str) -> Node | None:
        where = self.range_of(node)
        tag, text = node.tag, node.value
        if _SURROGATE.search(text):
            self.error("a lone UTF-16 surrogate escape is not valid text", where, path)
            return None
        if tag == _STR:
            if "${" not in text:
                return Literal(where, path, text)
            return self.interpolation(node, path)
        if tag == _NULL:
            return Literal(where, path, None)
        if tag == _BOOL:
            # YAML 1.2 (what Pulumi's Go parser speaks): only true/false are booleans.
            lowered = text.lower()
            return Literal(where, path, lowered == "true" if lowered in ("true", "false") else text)
        if tag in (_INT, _FLOAT):
            number = numbers.integer(text) if tag == _INT else numbers.decimal(text)
            if isinstance(number, numbers.OutOfRange):
                self.error(number.message, where, path)
                return None
            return Literal(where, path, number)
        if tag == _TIMESTAMP:
            return Literal(where, path, text)
        self.error(f"unsupported YAML tag {tag}", where, path)
        return None

    def interpolation(self, node: ScalarNode, path: str) -> Node | None:
        text = node.value
        offset = self.inline_offset(node)
        parts: list[str | Reference] = []
        literal: list[str] = []
        i = 0
        while i < len(text):
            if text.startswith("$${", i):
                literal.append("${")
                i += 3
                continue
            if not text.startswith("${", i):
                literal.append(text[i])
                i += 1
                continue
            end = _interpolation_end(text, i + 2)
            if end < 0:
                self.error('"${" is not closed by "}"', self.span(node, offset, i, len(text)), path)
                return None
            inner = text[i + 2 : end]
            where = self.span(node, offset, i, end + 1)
            try:
                accessors = parse_path(inner.strip())
            except ValueError as exc:
                self.error(f'invalid reference "${{{inner}}}": {exc}', where, path)
                return None
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(Reference(accessors, inner.strip(), where))
            i = end + 1
        if literal:
            parts.append("".join(literal))
        if not any(isinstance(part, Reference) for part in parts):
            return Literal(self.range_of(node), path, "".join(str(p) for p in parts))
        return Interpolation(self.range_of(node), path, tuple(parts))

    def inline_offset(self, node: ScalarNode) -> int | None:
        """Where the value starts inside the node's source text, when characters map 1:1."""
        raw = self.text[node.start_mark.index : node.end_mark.index]
        if "\n" in raw or "\r" in raw:
            return None
        if not node.style and raw == node.value:  # plain: None (PyYAML) or "" (libyaml)
            return 0
        if node.style in ("'", '"') and raw == f"{node.style}{node.value}{node.style}":
            return 1
        return None

    def span(self, node: ScalarNode, offset: int | None, start: int, end: int) -> Range:
        """The range of `value[start:end]`, or the whole scalar when it cannot be mapped."""
        if offset is None:
            return self.range_of(node)
        mark = node.start_mark
        begin, finish = mark.index + offset + start, mark.index + offset + end
        return Range(
            self.environment,
            self.lines.pos(mark.line, mark.column + offset + start, begin),
            self.lines.pos(mark.line, mark.column + offset + end, finish),
        )

    def open(
        self, name: str, argument: YamlNode, path: str, where: Range, depth: int
    ) -> Node | None:
        """`fn::open::<provider>: <arguments>`; the arguments are an ordinary value."""
        provider = name[len(OPEN_PREFIX) :]
        if not PROVIDER_NAME.match(provider):
            self.error(
                f'"{name[:100]}" does not name a provider: use fn::open::<name> with lowercase '
                "letters, digits and '-'",
                where,
                path,
            )
            return None
        arguments = self.value(argument, _join(path, name), depth + 1)
        if arguments is None:
            return None
        return OpenNode(where, path, provider, arguments)

    def secret(self, argument: YamlNode, path: str, where: Range) -> Node | None:
        if id(argument) in self.secret_nodes:
            self.error("a secret may not be reused through a YAML alias", where, path)
            return None
        self.secret_nodes.add(id(argument))
        start, end = argument.start_mark.index, argument.end_mark.index
        if self.text[start:end].startswith(("&", "!")):
            self.error("YAML anchors and tags are not allowed on a secret", where, path)
            return None
        if isinstance(argument, ScalarNode) and argument.tag != _NULL:
            plaintext = argument.value
            if _SURROGATE.search(plaintext):
                self.error("a lone UTF-16 surrogate escape is not valid text", where, path)
                return None
            self.secrets.append(SecretSite(start, end, plaintext, None))
            return SecretNode(where, path, plaintext=plaintext)
        if isinstance(argument, MappingNode):
            pairs = self.pairs(argument, path)
            if len(pairs) == 1 and pairs[0][0] == "ciphertext":
                value = pairs[0][1]
                if isinstance(value, ScalarNode) and value.tag == _STR and value.value:
                    self.secrets.append(SecretSite(start, end, None, value.value))
                    return SecretNode(where, path, ciphertext=value.value)
        self.error(
            "fn::secret takes a string (or {ciphertext: …} as the portal stores it)", where, path
        )
        return None


def _join(path: str, key: str) -> str:
    """`path.key`, or `path["odd key"]` when the key is not a plain name."""
    return f"{path}.{key}" if _PATH_NAME.fullmatch(key) else f"{path}[{json.dumps(key)}]"


def _interpolation_end(text: str, start: int) -> int:
    """Index of the `}` closing an interpolation that starts at `start`, or -1."""
    i = start
    while i < len(text):
        if text[i] == '"':
            try:
                i = _closing_quote(text, i)
            except ValueError:
                return -1
        elif text[i] == "}":
            return i
        i += 1
    return -1


def parse(text: str, environment: str) -> Definition:
    """Parse a definition; problems come back as diagnostics with positions, never raised."""
    return _Parser(text, environment).parse()


# --- sealing secrets ----------------------------------------------------------------------------
def seal(
    text: str, environment: str, encrypt: Callable[[str], str]
) -> tuple[str, tuple[Diagnostic, ...]]:
    """Replace every `fn::secret: <plaintext>` with `fn::secret: {ciphertext: …}` in the text.

    Edits only the secrets' own spans, so comments and formatting survive; then re-parses the
    result and refuses (with a diagnostic) if its shape changed. Does not check ciphertexts that
    are already there: evaluation does, with the environment's key and context.
    """
    definition = parse(text, environment)
    if definition.diagnostics:
        return text, definition.diagnostics
    edits = [
        (site.start, site.end, "{ciphertext: " + encrypt(site.plaintext) + "}")
        for site in definition.secrets
        if site.plaintext is not None
    ]
    if not edits:
        return text, ()
    sealed = _splice(text, edits)
    again = parse(sealed, environment)
    if (
        again.diagnostics
        or any(site.plaintext is not None for site in again.secrets)
        or _shape(again.values) != _shape(definition.values)
    ):
        return text, (
            Diagnostic(
                "the secrets of this definition could not be stored in place; write each "
                "fn::secret value on its own line as a plain or quoted string",
            ),
        )
    return sealed, ()


def unseal(text: str, environment: str, decrypt: Callable[[str], str]) -> str:
    """The definition with each `{ciphertext: …}` replaced by its plaintext as a quoted string.

    For the admin-only decrypt endpoint. `decrypt` raises on a ciphertext it cannot open; this
    function does not catch it, so a definition is never returned half-decrypted.
    """
    definition = parse(text, environment)
    edits = [
        (site.start, site.end, json.dumps(decrypt(site.ciphertext), ensure_ascii=False))
        for site in definition.secrets
        if site.ciphertext is not None
    ]
    return _splice(text, edits)


def _splice(text: str, edits: Sequence[tuple[int, int, str]]) -> str:
    """Apply non-overlapping replacements, keeping the line breaks that ended each span."""
    out = text
    for start, end, replacement in sorted(set(edits), reverse=True):
        span = out[start:end]
        trailing = span[len(span.rstrip()) :]
        out = out[:start] + replacement + trailing + out[end:]
    return out


def _shape(node: Node | None) -> Any:
    """A comparable summary of a tree, with every secret reduced to a marker."""
    if node is None:
        return None
    if isinstance(node, MapNode):
        return {key: _shape(child) for key, child in node.entries.items()}
    if isinstance(node, ListNode):
        return [_shape(item) for item in node.items]
    if isinstance(node, SecretNode):
        return ("secret",)
    if isinstance(node, OpenNode):
        return ("open", node.provider, _shape(node.arguments))
    if isinstance(node, Interpolation):
        return tuple(p if isinstance(p, str) else ("ref", p.accessors) for p in node.parts)
    if isinstance(node, Literal):
        return (type(node.value).__name__, node.value)
    return repr(node)


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
            found = _child(inner, accessor)
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


def _unknown(where: Range | None) -> Value:
    """The placeholder of a provider call that is not made (and of what depends on it)."""
    return Value(None, True, where, unknown=True)


def _from_outputs(data: Any, where: Range | None, depth: int = 0) -> Value:
    """A provider's outputs as a value whose every leaf is secret."""
    if depth > MAX_VALUE_DEPTH:
        raise OpenFailed("the provider returned values nested too deeply")
    if isinstance(data, Mapping):
        return Value.container(
            {str(k): _from_outputs(v, where, depth + 1) for k, v in data.items()}, where
        )
    if isinstance(data, list | tuple):
        return Value.container([_from_outputs(v, where, depth + 1) for v in data], where)
    if data is None or isinstance(data, bool | int | float | str):
        return Value(data, True, where)
    return Value(str(data), True, where)


def _child(inner: Any, accessor: str | int) -> Value | None:
    if isinstance(inner, dict) and isinstance(accessor, str):
        found: Value | None = inner.get(accessor)
        return found
    if isinstance(inner, list) and isinstance(accessor, int) and accessor < len(inner):
        item: Value = inner[accessor]
        return item
    return None


_ERROR = Value(None)  # the result of anything that already produced a diagnostic


def _merge(base: Value | None, top: Value) -> Value:
    """`top` over `base`: maps merge key by key, anything else replaces."""
    if base is None or not isinstance(base.value, dict) or not isinstance(top.value, dict):
        return top
    merged = dict(base.value)
    for key, value in top.value.items():
        merged[key] = _merge(base.value.get(key), value)
    return Value.container(merged, top.range)


def _overlay(own: Node | None, base: Value | None, where: Range) -> Node:
    """This environment's tree over the imported values, so references see both."""
    if own is None:
        return Imported(where, "values", base) if base is not None else MapNode(where, "values", {})
    if isinstance(own, MapNode) and base is not None and isinstance(base.value, dict):
        entries: dict[str, Node] = {
            key: Imported(value.range or where, _join(own.path, key), value)
            for key, value in base.value.items()
        }
        for key, child in own.entries.items():
            entries[key] = _overlay(child, base.value.get(key), child.range)
        return MapNode(own.range, own.path, entries)
    return own


class OpenFailed(Exception):
    """Raised by an `open` function; the message is safe to show (never a credential)."""


@dataclass(frozen=True)
class OpenCall:
    """One `fn::open` call as the `open` function receives it (arguments resolved, secrets
    revealed)."""

    provider: str
    arguments: Any
    environment: str  # `project/name` of the definition that holds the call
    path: str  # e.g. `values.aws.login`

    def __repr__(self) -> str:  # the arguments may hold secrets
        return f"OpenCall({self.provider!r}, {self.environment!r}, {self.path!r})"


Opener = Callable[[OpenCall], Mapping[str, Any]]


@dataclass(frozen=True)
class Source:
    """One environment to evaluate: its name, its definition text and how to open its secrets.

    `open` runs `fn::open` providers; None leaves their values unknown (checks, previews).
    """

    name: str
    text: str
    decrypt: Callable[[str], str]
    open: Opener | None = None


class Loader(Protocol):
    """What `evaluate` calls for each imported environment."""

    def __call__(self, name: str) -> Source | str:
        """The imported environment's source, or why it cannot be imported."""


@dataclass(frozen=True)
class Evaluation:
    """The evaluated `values` (None when there are errors) and every diagnostic."""

    value: Value | None
    diagnostics: tuple[Diagnostic, ...]
    loaded: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.diagnostics and self.value is not None

    @property
    def properties(self) -> dict[str, Value]:
        if self.value is None or not isinstance(self.value.value, dict):
            return {}
        return dict(self.value.value)


class _Evaluator:
    """References and secrets inside one environment, over the merged tree."""

    def __init__(
        self,
        root: Node,
        source: Source,
        diagnostics: list[Diagnostic],
        providers: Collection[str] | None = None,
    ) -> None:
        self.root = root
        self.source = source
        self.decrypt = source.decrypt
        self.providers = providers
        self.diagnostics = diagnostics
        self.memo: dict[int, Value] = {}
        self.active: list[int] = []

    def error(self, summary: str, where: Range | None, path: str) -> Value:
        diagnostic = Diagnostic(summary, path, where)
        if diagnostic not in self.diagnostics:
            self.diagnostics.append(diagnostic)
        return _ERROR

    def value_of(self, node: Node, via: Reference | None = None, site: Node | None = None) -> Value:
        """`node` evaluated once (memoized); `via`/`site` say which reference asked, for errors."""
        key = id(node)
        if key in self.memo:
            return self.memo[key]
        if key in self.active:
            where = via.range if via is not None else node.range
            text = f'"${{{via.text}}}"' if via is not None else "this value"
            path = site.path if site is not None else node.path
            return self.error(f"cyclic reference: {text} leads back to itself", where, path)
        if len(self.active) >= MAX_REFERENCE_DEPTH:
            return self.error("references nest too deeply", node.range, node.path)
        self.active.append(key)
        try:
            result = self.compute(node)
        finally:
            self.active.pop()
        if result is not _ERROR and result.weight > MAX_WEIGHT:
            result = self.error(
                f"this value expands to more than {MAX_WEIGHT} values", node.range, node.path
            )
        elif result is not _ERROR and result.depth > MAX_VALUE_DEPTH:
            result = self.error(
                f"this value nests deeper than {MAX_VALUE_DEPTH} levels", node.range, node.path
            )
        self.memo[key] = result
        return result

    def compute(self, node: Node) -> Value:
        if isinstance(node, Imported):
            return node.value if node.value is not None else _ERROR
        if isinstance(node, Literal):
            return Value(node.value, False, node.range)
        if isinstance(node, SecretNode):
            return self.secret(node)
        if isinstance(node, OpenNode):
            return self.open(node)
        if isinstance(node, MapNode):
            entries = {key: self.value_of(child) for key, child in node.entries.items()}
            if any(v is _ERROR for v in entries.values()):
                return _ERROR
            return Value.container(entries, node.range)
        if isinstance(node, ListNode):
            items = [self.value_of(item) for item in node.items]
            if any(v is _ERROR for v in items):
                return _ERROR
            return Value.container(items, node.range)
        if isinstance(node, Interpolation):
            return self.interpolate(node)
        return self.error("unsupported value", node.range, node.path)

    def secret(self, node: SecretNode) -> Value:
        if node.plaintext is not None:
            return Value(node.plaintext, True, node.range)
        assert node.ciphertext is not None
        try:
            plaintext = self.decrypt(node.ciphertext)
        except DecryptFailed as exc:
            return self.error(f"cannot decrypt this secret: {exc}", node.range, node.path)
        return Value(plaintext, True, node.range)

    def open(self, node: OpenNode) -> Value:
        """Call the provider with the evaluated arguments, or leave the value unknown."""
        if self.providers is not None and node.provider not in self.providers:
            known = ", ".join(sorted(self.providers))
            return self.error(
                f'unknown provider "{node.provider}" in fn::open: available are {known}',
                node.range,
                node.path,
            )
        arguments = self.value_of(node.arguments)
        if arguments is _ERROR:
            return _ERROR
        if self.source.open is None or arguments.has_unknown():
            return _unknown(node.range)
        call = OpenCall(
            node.provider, arguments.plain(reveal=True), self.source.name, node.path
        )
        try:
            return _from_outputs(self.source.open(call), node.range)
        except OpenFailed as exc:
            return self.error(f"fn::open::{node.provider}: {exc}", node.range, node.path)

    def interpolate(self, node: Interpolation) -> Value:
        if len(node.parts) == 1 and isinstance(node.parts[0], Reference):
            found = self.resolve(node.parts[0], node)
            if found is _ERROR:
                return _ERROR
            if found.unknown:
                return _unknown(node.range)
            return Value(found.value, found.secret, node.range, found.weight, found.depth)
        pieces: list[str] = []
        secret = False
        for part in node.parts:
            if isinstance(part, str):
                pieces.append(part)
                continue
            found = self.resolve(part, node)
            if found is _ERROR:
                return _ERROR
            if found.unknown:
                return _unknown(node.range)
            if isinstance(found.value, dict | list):
                kind = "map" if isinstance(found.value, dict) else "list"
                return self.error(
                    f'"${{{part.text}}}" is a {kind}: only a whole string can be a map or list',
                    part.range,
                    node.path,
                )
            pieces.append(_text(found.value))
            secret = secret or found.secret
            if sum(len(p) for p in pieces) > MAX_STRING:
                return self.error(
                    f"the interpolated string is longer than {MAX_STRING} characters",
                    node.range,
                    node.path,
                )
        return Value("".join(pieces), secret, node.range)

    def resolve(self, reference: Reference, site: Node) -> Value:
        current: Node | Value = self.root
        walked: list[str | int] = []
        for accessor in reference.accessors:
            if isinstance(current, Node) and not isinstance(current, MapNode | ListNode):
                current = self.value_of(current, reference, site)
                if current is _ERROR:
                    return _ERROR
            if isinstance(current, Value) and current.unknown:
                return current  # a property of a value not known yet is not known either
            following: Node | Value | None = None
            if isinstance(current, MapNode):
                following = current.entries.get(accessor) if isinstance(accessor, str) else None
            elif isinstance(current, ListNode):
                if isinstance(accessor, int) and accessor < len(current.items):
                    following = current.items[accessor]
            elif isinstance(current, Value):
                following = current.lookup([accessor])
            walked.append(accessor)
            if following is None:
                return self.error(
                    f'unknown property "{format_path(walked)}"', reference.range, site.path
                )
            current = following
        if isinstance(current, Node):
            return self.value_of(current, reference, site)
        return current


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return json.dumps(value)
    return str(value)


@dataclass
class _Session:
    """One evaluation: the import graph, loaded environments and all diagnostics."""

    load: Loader
    providers: Collection[str] | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    cache: dict[str, Value | None] = field(default_factory=dict)
    loaded: list[str] = field(default_factory=list)

    def environment(self, source: Source, stack: tuple[str, ...]) -> Value | None:
        before = len(self.diagnostics)
        definition = parse(source.text, source.name)
        self.diagnostics.extend(definition.diagnostics)
        if definition.diagnostics:
            return None
        base: Value | None = None
        for item in definition.imports:
            imported = self.imported(item, stack)
            if imported is not None:
                base = _merge(base, imported)
        start = Range(source.name, Pos(1, 1, 0), Pos(1, 1, 0))
        root = _overlay(
            definition.values, base, definition.values.range if definition.values else start
        )
        evaluator = _Evaluator(root, source, self.diagnostics, self.providers)
        value = evaluator.value_of(root)
        if len(self.diagnostics) > before or value is _ERROR:
            return None
        return value

    def imported(self, item: Import, stack: tuple[str, ...]) -> Value | None:
        if item.name in stack:
            cycle = " -> ".join((*stack[stack.index(item.name) :], item.name))
            self.diagnostics.append(Diagnostic(f"import cycle: {cycle}", "imports", item.range))
            return None
        if item.name in self.cache:
            return self.cache[item.name]
        if len(self.loaded) >= MAX_ENVIRONMENTS:
            self.diagnostics.append(
                Diagnostic(
                    f"more than {MAX_ENVIRONMENTS} environments are imported",
                    "imports",
                    item.range,
                )
            )
            return None
        found = self.load(item.name)
        self.loaded.append(item.name)
        if isinstance(found, str):
            self.diagnostics.append(
                Diagnostic(f'cannot import "{item.name}": {found}', "imports", item.range)
            )
            self.cache[item.name] = None
            return None
        value = self.environment(found, (*stack, item.name))
        if value is None:
            self.diagnostics.append(
                Diagnostic(
                    f'the imported environment "{item.name}" has errors',
                    "imports",
                    item.range,
                )
            )
        self.cache[item.name] = value
        return value


def evaluate(
    source: Source, load: Loader, *, providers: Collection[str] | None = None
) -> Evaluation:
    """Evaluate an environment and everything it imports; never raises for bad definitions.

    With `providers`, an `fn::open::<name>` whose name is not among them is a diagnostic.
    """
    session = _Session(load, providers)
    value = session.environment(source, (source.name,))
    diagnostics = tuple(session.diagnostics)
    return Evaluation(
        value=value if not diagnostics else None,
        diagnostics=diagnostics,
        loaded=tuple(session.loaded),
    )


def no_imports(name: str) -> str:
    """A loader for definitions evaluated on their own (tests, previews without imports)."""
    return "environment not found"
