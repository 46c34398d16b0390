"""YAML → the definition's syntax tree, keeping every line and column; sealing secrets in place.

Everything wrong is a `Diagnostic` with a line and column, never an exception.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode
from yaml.nodes import Node as YamlNode

from environments import numbers
from environments.parser_functions import FunctionParser
from environments.syntax import (
    MAX_DEFINITION_BYTES,
    MAX_DEPTH,
    MAX_NODES,
    Definition,
    Diagnostic,
    Import,
    Interpolation,
    ListNode,
    Literal,
    MapNode,
    Node,
    Pos,
    Range,
    Reference,
    SecretNode,
    SecretSite,
    closing_quote,
    join_path,
    normalize_import,
    parse_path,
)

RESERVED_KEYS = ("imports", "context")  # not allowed at the top of `values` (Pulumi's rule)

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
# YAML escapes can produce lone UTF-16 surrogates, which no UTF-8 output or database accepts.
_SURROGATE = re.compile("[\ud800-\udfff]")


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


# --- parsing ------------------------------------------------------------------------------------
class _Parser(FunctionParser):
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
                values = self.top_values(value)
            else:
                self.error(
                    f'unknown top-level key "{key}": a definition has `imports` and `values`',
                    self.range_of(value),
                    key,
                )
        return self.result(values, imports)

    def top_values(self, node: MappingNode) -> MapNode | None:
        """`values`: a mapping whose keys are not reserved, and not a function call."""
        refused = False
        for key_node, _ in node.value:
            key = key_node.value if isinstance(key_node, ScalarNode) else None
            if isinstance(key, str) and key.startswith("fn::"):
                self.error(
                    f'builtin function call "{key}" not allowed at the top level',
                    self.range_of(key_node),
                    join_path("values", key),
                )
                return None
            if key in RESERVED_KEYS:
                self.error(
                    f'"{key}" is a reserved key', self.range_of(key_node), join_path("values", key)
                )
                refused = True
        if refused:
            return None
        parsed = self.value(node, "values", 0)
        return parsed if isinstance(parsed, MapNode) else None

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
                where = self.range_of(key_node)
                self.error(f'duplicate key "{key}"', where, join_path(path, key) if path else key)
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
            merge = True
            if isinstance(item, MappingNode) and len(item.value) == 1:
                item, merge = self.import_options(item, path)
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
            found.append(Import(name, self.range_of(item), index, merge))
        return tuple(found)

    def import_options(self, item: MappingNode, path: str) -> tuple[YamlNode, bool]:
        """`- project/env: {merge: false}`: the name's node and whether to merge it."""
        name, options = item.value[0]
        merge = True
        if isinstance(options, MappingNode):
            for key, value in self.pairs(options, path):
                if key == "merge" and isinstance(value, ScalarNode) and value.tag == _BOOL:
                    merge = value.value.lower() == "true"
                else:
                    self.error(f'unknown import option "{key}"', self.range_of(value), path)
        elif not (isinstance(options, ScalarNode) and options.tag == _NULL):
            where = self.range_of(options)
            self.error("import options are a mapping such as {merge: false}", where, path)
        return name, merge

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
                return self.function(pairs[0][0], pairs[0][1], path, where, depth)
            entries: dict[str, Node] = {}
            for key, child in pairs:
                if "${" in key:
                    self.error("object keys must be strings", where, join_path(path, key))
                    continue
                parsed = self.value(child, join_path(path, key), depth + 1)
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
            "fn::secret takes a string (or {ciphertext: …} as the portal stores it)",
            where,
            join_path(path, "fn::secret"),
        )
        return None


def _interpolation_end(text: str, start: int) -> int:
    """Index of the `}` closing an interpolation that starts at `start`, or -1."""
    i = start
    while i < len(text):
        if text[i] == '"':
            try:
                i = closing_quote(text, i)
            except ValueError:
                return -1
        elif text[i] == "}":
            return i
        i += 1
    return -1


def parse(text: str, environment: str) -> Definition:
    """Parse a definition; problems come back as diagnostics with positions, never raised."""
    return _Parser(text, environment).parse()
