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
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from environments import builtins, inputschema
from environments.inputschema import CallSchema, Schema
from environments.parser import parse
from environments.rotation import Rotated, Rotation
from environments.syntax import (
    DEFAULT_PROJECT,
    MAX_ENVIRONMENTS,
    MAX_REFERENCE_DEPTH,
    MAX_STRING,
    MAX_VALUE_DEPTH,
    MAX_WEIGHT,
    CallNode,
    Diagnostic,
    Import,
    Imported,
    Interpolation,
    ListNode,
    Literal,
    MapNode,
    Node,
    OpenNode,
    Pos,
    Range,
    Reference,
    SecretNode,
    Value,
    below,
    format_path,
    join_path,
    unknown_value,
)
from kernel.secretbox import DecryptFailed

_ERROR = Value(None)  # the result of anything that already produced a diagnostic


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


def _merge(base: Value | None, top: Value) -> Value:
    """`top` over `base`: maps merge key by key, anything else replaces."""
    if base is None or not isinstance(base.value, dict) or not isinstance(top.value, dict):
        return top
    merged = dict(base.value)
    for key, value in top.value.items():
        merged[key] = _merge(base.value.get(key), value)
    return Value.container(merged, top.range)


@dataclass(eq=False)
class Merged(Node):
    """A value of this environment over the imported one at the same path (merged once known).

    Also guards `fn::final`: overriding a final imported value is a diagnostic.
    """

    own: Node | None = None
    base: Value | None = None


def _overlay(own: Node | None, base: Value | None, where: Range) -> Node:
    """This environment's tree over the imported values, so references see both."""
    if own is None:
        return Imported(where, "values", base) if base is not None else MapNode(where, "values", {})
    if base is not None and (base.final or not isinstance(own, MapNode)):
        return Merged(own.range, own.path, own, base)
    if isinstance(own, MapNode) and base is not None and isinstance(base.value, dict):
        entries: dict[str, Node] = {
            key: Imported(value.range or where, join_path(own.path, key), value)
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
    kind: str = "open"  # "rotate": `fn::rotate::<rotator>`, arguments `{inputs, state}`

    def __repr__(self) -> str:  # the arguments may hold secrets
        return f"OpenCall({self.provider!r}, {self.environment!r}, {self.path!r})"


Opener = Callable[[OpenCall], Mapping[str, Any]]
# Provider (rotator) names, or names mapped to what their calls accept.
Registry = Collection[str] | Mapping[str, CallSchema]


@dataclass(frozen=True)
class Source:
    """One environment to evaluate: its name, its definition text and how to open its secrets.

    `open` runs `fn::open` providers; None leaves their values unknown (checks, previews).
    """

    name: str
    text: str
    decrypt: Callable[[str], str]
    open: Opener | None = None
    # What `${context.…}` reads besides the environment names: `pulumi.user`, `pulumi.organization`.
    context: Mapping[str, Any] | None = None


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
        self, root: Node, source: Source, session: _Session, stack: tuple[str, ...]
    ) -> None:
        self.root = root
        self.source = source
        self.decrypt = source.decrypt
        self.session = session
        self.stack = stack
        self.diagnostics = session.diagnostics
        self.memo: dict[int, Value] = {}
        self.active: list[int] = []
        self.context = _context_value(source)
        # Only the environment being rotated rotates: never the calls of an import.
        self.rotation = session.rotation if len(stack) == 1 else None

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
        if isinstance(node, CallNode):
            return self.call(node)
        if isinstance(node, Merged):
            return self.merged(node)
        return self.error("unsupported value", node.range, node.path)

    def call(self, node: CallNode) -> Value:
        arguments = self.value_of(node.arguments)
        if arguments is _ERROR:
            return _ERROR
        found = builtins.apply(node, arguments, self.report)
        return found if found is not None else _ERROR

    def report(self, summary: str, path: str) -> None:
        self.error(summary, None, path)

    def merged(self, node: Merged) -> Value:
        """This environment's value over the imported one: maps merge, a final value stays."""
        assert node.own is not None and node.base is not None
        if node.base.final:
            return self.error("cannot override final value", node.range, node.path)
        own = self.value_of(node.own)
        if own is _ERROR or own.unknown:
            return own
        return _merge(node.base, own)

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
        known = self.session.providers if node.kind == "open" else self.session.rotators
        if known is not None and node.provider not in known:
            what = "provider" if node.kind == "open" else "rotator"
            available = ", ".join(sorted(known)) or "none"
            return self.error(
                f'unknown {what} "{node.provider}" in fn::{node.kind}: available are {available}',
                node.range,
                node.path,
            )
        spec = known.get(node.provider) if isinstance(known, Mapping) else None
        if node.kind == "rotate":
            return self.rotate(node, spec or CallSchema())
        arguments = self.value_of(node.arguments)
        if arguments is _ERROR:
            return _ERROR
        if spec is not None and not self.conforms(spec.inputs, arguments, node.arguments.path):
            return _ERROR
        if self.source.open is None or arguments.has_unknown():
            return unknown_value(node.range)
        call = OpenCall(
            node.provider, arguments.plain(reveal=True), self.source.name, node.path, node.kind
        )
        try:
            return _from_outputs(self.source.open(call), node.range)
        except OpenFailed as exc:
            return self.error(f"fn::open::{node.provider}: {exc}", node.range, node.path)

    def conforms(self, schema: Schema, value: Value, path: str) -> bool:
        """Check a call's inputs (or a rotator's state) against its schema; diagnostics at the
        path of each value at fault."""
        problems = inputschema.check(schema, value)
        for problem in problems:
            self.error(problem.summary, problem.range, below(path, problem.accessors))
        return not problems

    def rotate(self, node: OpenNode, spec: CallSchema) -> Value:
        """`fn::rotate`: its state when opened; with a rotation that wants it, the new state.

        Rotate-only inputs are evaluated at check time and when rotating, never on open.
        """
        entries = node.arguments.entries if isinstance(node.arguments, MapNode) else {}
        rotation = self.rotation if self.rotation and self.rotation.wants(node.path) else None
        opening = self.source.open is not None and rotation is None
        skip = spec.rotate_only if opening else frozenset()
        inputs_node = entries.get("inputs")
        if isinstance(inputs_node, MapNode):
            parts = {k: self.value_of(v) for k, v in inputs_node.entries.items() if k not in skip}
            inputs = _ERROR if _ERROR in parts.values() else Value.container(parts, node.range)
        else:
            inputs = self.value_of(inputs_node) if inputs_node is not None else Value({})
        state_node = entries.get("state")
        state = self.value_of(state_node) if state_node is not None else Value(None)
        if inputs is _ERROR or state is _ERROR:
            return _ERROR
        at = node.arguments.path
        schema = spec.inputs
        if skip and isinstance(schema, Mapping):  # what was not evaluated is not required
            needed = [k for k in schema.get("required", ()) if k not in skip]
            schema = {**schema, "required": needed}
        checked = self.conforms(schema, inputs, join_path(at, "inputs"))
        if state.value is not None and not self.conforms(spec.state, state, join_path(at, "state")):
            checked = False
        if not checked:
            return _ERROR
        if rotation is not None:
            return self.rotated(node, rotation, inputs, state)
        if self.source.open is None or state.has_unknown():
            return unknown_value(node.range)
        current = state.plain(reveal=True)
        return _from_outputs(current if current is not None else {}, node.range)

    def rotated(self, node: OpenNode, rotation: Rotation, inputs: Value, state: Value) -> Value:
        if inputs.has_unknown() or state.has_unknown():
            summary = "the rotator's inputs depend on values that are not known while rotating"
            return self.error(summary, node.range, node.path)
        arguments = {"inputs": inputs.plain(reveal=True), "state": state.plain(reveal=True)}
        call = OpenCall(node.provider, arguments, self.source.name, node.path, "rotate")
        try:
            new_state = rotation.rotate(call)
            value = _from_outputs(new_state, node.range)
        except OpenFailed as exc:
            return self.error(f"fn::rotate::{node.provider}: {exc}", node.range, node.path)
        rotation.rotated.append(Rotated(node.path, node.arguments.path, value.plain(reveal=True)))
        return value

    def interpolate(self, node: Interpolation) -> Value:
        if len(node.parts) == 1 and isinstance(node.parts[0], Reference):
            found = self.resolve(node.parts[0], node)
            if found is _ERROR:
                return _ERROR
            if found.unknown:
                return unknown_value(node.range)
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
                return unknown_value(node.range)
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

    def start(self, reference: Reference, site: Node) -> tuple[Node | Value, int]:
        """Where a reference starts: `context`, `environments.<project>.<env>`, or `values`."""
        head = reference.accessors[0]
        if head == "context":
            return self.context, 1
        rooted = isinstance(self.root, MapNode) and head in self.root.entries
        if head == "environments" and not rooted:
            names = reference.accessors[1:3]
            if len(names) < 2 or not all(isinstance(n, str) for n in names):
                summary = "a reference to another environment is ${environments.<project>.<env>…}"
                return self.error(summary, reference.range, site.path), 0
            name = f"{names[0]}/{names[1]}"
            found = self.session.inline(name, self.stack, reference.range, site.path)
            return (found if found is not None else _ERROR), 3
        return self.root, 0

    def resolve(self, reference: Reference, site: Node) -> Value:
        current, skip = self.start(reference, site)
        if current is _ERROR:
            return _ERROR
        walked: list[str | int] = list(reference.accessors[:skip])
        for accessor in reference.accessors[skip:]:
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
                if isinstance(accessor, int) and 0 <= accessor < len(current.items):
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


def _display_name(name: str) -> str:
    """An environment's name as `context` shows it: without the legacy `default/` project."""
    project, _, env = name.partition("/")
    return env if project == DEFAULT_PROJECT and env else name


def _context_value(source: Source) -> Value:
    data: dict[str, Any] = dict(source.context or {})
    data["currentEnvironment"] = {"name": _display_name(source.name)}
    # Each environment is evaluated as its own root first (imports too), as Pulumi does.
    data["rootEnvironment"] = {"name": _display_name(source.name)}
    return _plain_value(data)


def _plain_value(data: Any) -> Value:
    if isinstance(data, Mapping):
        return Value.container({str(k): _plain_value(v) for k, v in data.items()}, None)
    if isinstance(data, list | tuple):
        return Value.container([_plain_value(v) for v in data], None)
    return Value(data)


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
    providers: Registry | None = None
    rotators: Registry | None = None
    context: Mapping[str, Any] | None = None
    rotation: Rotation | None = None
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
            imported = self.imported(item, stack, f"imports[{item.index}]")
            if imported is not None and item.merge:
                base = _merge(base, imported)
        start = Range(source.name, Pos(1, 1, 0), Pos(1, 1, 0))
        root = _overlay(
            definition.values, base, definition.values.range if definition.values else start
        )
        if source.context is None and self.context is not None:
            source = replace(source, context=self.context)
        value = _Evaluator(root, source, self, stack).value_of(root)
        if len(self.diagnostics) > before or value is _ERROR:
            return None
        return value

    def inline(self, name: str, stack: tuple[str, ...], where: Range, path: str) -> Value | None:
        """`${environments.<project>.<env>…}`: that environment, loaded like an import."""
        return self.imported(Import(name, where), stack, path, wrap=False)

    def imported(
        self, item: Import, stack: tuple[str, ...], path: str, *, wrap: bool = True
    ) -> Value | None:
        if item.name in stack:
            cycle = " -> ".join((*stack[stack.index(item.name) :], item.name))
            self.diagnostics.append(Diagnostic(f"import cycle: {cycle}", path, item.range))
            return None
        if item.name in self.cache:
            return self.cache[item.name]
        if len(self.loaded) >= MAX_ENVIRONMENTS:
            summary = f"more than {MAX_ENVIRONMENTS} environments are imported"
            self.diagnostics.append(Diagnostic(summary, path, item.range))
            return None
        found = self.load(item.name)
        self.loaded.append(item.name)
        if isinstance(found, str):
            summary = f'cannot import "{item.name}": {found}'
            self.diagnostics.append(Diagnostic(summary, path, item.range))
            self.cache[item.name] = None
            return None
        value = self.environment(found, (*stack, item.name))
        if value is None and wrap:
            summary = f'the imported environment "{item.name}" has errors'
            self.diagnostics.append(Diagnostic(summary, path, item.range))
        self.cache[item.name] = value
        return value


def evaluate(
    source: Source,
    load: Loader,
    *,
    providers: Registry | None = None,
    rotators: Registry | None = None,
    rotation: Rotation | None = None,
) -> Evaluation:
    """Evaluate an environment and everything it imports; never raises for bad definitions.

    With `providers` (`rotators`), an `fn::open::<name>` (`fn::rotate::<name>`) whose name is
    not among them is a diagnostic; given as a mapping to `CallSchema`s, each call's inputs
    (and a rotator's state) are checked against its schema. `source.context` is what
    `${context.…}` reads, for the environment and everything it imports. With `rotation`, the
    root environment's `fn::rotate` calls it wants are rotated (`rotation.rotated` lists them).
    """
    session = _Session(load, providers, rotators, source.context, rotation=rotation)
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
