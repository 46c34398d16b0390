"""Parsing `fn::…` calls: built-in functions, `fn::open` and `fn::rotate` in both of their forms.

A mixin of the parser (`environments.parser`): it shapes the call's node and reports, at load
time, the mistakes that need no evaluation (a missing `provider`, a `fn::join` that is not a
two-valued list). What the arguments evaluate to is checked by the evaluator.
"""

from __future__ import annotations

import re

from yaml.nodes import MappingNode, ScalarNode, SequenceNode
from yaml.nodes import Node as YamlNode

from environments.syntax import CallNode, Diagnostic, MapNode, Node, OpenNode, Range, join_path

OPEN_PREFIX = "fn::open::"
ROTATE_PREFIX = "fn::rotate::"
PROVIDER_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}\Z")
# Built-ins by name (without `fn::`) and the shape their argument must have as written.
PAIRS = frozenset({"join", "split"})  # a two-valued list
LISTS = frozenset({"concat"})  # a list
BUILTINS = frozenset(
    {"concat", "final", "fromBase64", "fromJSON", "join", "split", "toBase64", "toJSON", "toString"}
)


class FunctionParser:
    """What `_Parser` does with a mapping whose only key is `fn::…`."""

    diagnostics: list[Diagnostic]

    def value(self, node: YamlNode, path: str, depth: int) -> Node | None:
        raise NotImplementedError

    def secret(self, argument: YamlNode, path: str, where: Range) -> Node | None:
        raise NotImplementedError

    def range_of(self, node: YamlNode) -> Range:
        raise NotImplementedError

    def pairs(self, node: MappingNode, path: str) -> list[tuple[str, YamlNode]]:
        raise NotImplementedError

    def error(self, summary: str, where: Range | None, path: str = "") -> None:
        raise NotImplementedError

    def function(
        self, name: str, argument: YamlNode, path: str, where: Range, depth: int
    ) -> Node | None:
        if name == "fn::secret":
            return self.secret(argument, path, where)
        if name in ("fn::open", "fn::rotate"):
            return self.long_call(name, argument, path, where, depth)
        for prefix, kind in ((OPEN_PREFIX, "open"), (ROTATE_PREFIX, "rotate")):
            if name.startswith(prefix):
                return self.short_call(name, prefix, kind, argument, path, where, depth)
        builtin = name[len("fn::") :]
        if builtin in BUILTINS:
            return self.builtin(builtin, argument, path, where, depth)
        self.error(
            f'unsupported function "{name[:100]}": the functions are fn::secret, '
            "fn::open::<provider>, fn::rotate::<rotator> and fn::"
            + ", fn::".join(sorted(BUILTINS)),
            where,
            path,
        )
        return None

    def builtin(
        self, name: str, argument: YamlNode, path: str, where: Range, depth: int
    ) -> Node | None:
        at = join_path(path, f"fn::{name}")
        if name in PAIRS and not (isinstance(argument, SequenceNode) and len(argument.value) == 2):
            self.error(f"the argument to fn::{name} must be a two-valued list", where, at)
            return None
        if name in LISTS and not isinstance(argument, SequenceNode):
            self.error(f"the argument to fn::{name} must be an array of arrays", where, at)
            return None
        arguments = self.value(argument, at, depth + 1)
        if arguments is None:
            return None
        return CallNode(where, path, name, arguments)

    def short_call(
        self,
        name: str,
        prefix: str,
        kind: str,
        argument: YamlNode,
        path: str,
        where: Range,
        depth: int,
    ) -> Node | None:
        """`fn::open::<provider>: <inputs>` or `fn::rotate::<rotator>: {inputs, state}`."""
        provider = name[len(prefix) :]
        if not PROVIDER_NAME.match(provider):
            self.error(
                f'"{name[:100]}" does not name a provider: use {prefix}<name> with lowercase '
                "letters, digits and '-'",
                where,
                path,
            )
            return None
        at = join_path(path, name)
        if kind == "rotate" and not self.has_inputs(argument, at):
            self.error("missing provider inputs ('inputs')", where, at)
            return None
        arguments = self.value(argument, at, depth + 1)
        if arguments is None:
            return None
        return OpenNode(where, path, provider, arguments, kind)

    def has_inputs(self, argument: YamlNode, path: str) -> bool:
        return isinstance(argument, MappingNode) and any(
            key == "inputs" for key, _ in self.pairs(argument, path)
        )

    def long_call(
        self, name: str, argument: YamlNode, path: str, where: Range, depth: int
    ) -> Node | None:
        """`fn::open: {provider, inputs}` or `fn::rotate: {provider, inputs, state}`."""
        at = join_path(path, name)
        kind = name[len("fn::") :]
        key = "provider"  # Pulumi names the rotator `provider` too
        entries = dict(self.pairs(argument, at)) if isinstance(argument, MappingNode) else {}
        provider = entries.pop(key, None)
        inputs = entries.get("inputs")
        if provider is None:
            self.error(f"missing provider name ('{key}')", where, at)
        elif not isinstance(provider, ScalarNode) or "${" in provider.value:
            self.error("provider name must be a string literal", where, join_path(at, key))
            provider = None
        if inputs is None:
            self.error("missing provider inputs ('inputs')", where, at)
        if provider is None or inputs is None:
            return None
        arguments: Node | None
        if kind == "open":
            arguments = self.value(inputs, join_path(at, "inputs"), depth + 1)
        else:
            parsed = {k: self.value(v, join_path(at, k), depth + 1) for k, v in entries.items()}
            if any(v is None for v in parsed.values()):
                return None
            arguments = MapNode(where, at, {k: v for k, v in parsed.items() if v is not None})
        if arguments is None:
            return None
        return OpenNode(where, path, provider.value, arguments, kind)
