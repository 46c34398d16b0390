"""Rotating `fn::rotate` calls: which calls a rotation wants, and writing their new state.

Pure, like the evaluator: `Rotation` is handed to `evaluator.evaluate`, which calls `rotate` for
each `fn::rotate` of the root environment that the rotation wants (every one, or those at the
given property paths) and lists what it rotated in `rotated`. `write_states` then puts each new
state into the definition's text in place of the call's `state` (added when absent), every
string in it as `fn::secret` (sealed by the save that follows), so comments and formatting of
the rest of the definition survive. The environment's next revision is that text.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from environments.syntax import parse_path

_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class RotationInvalid(ValueError):
    """A path to rotate that is not a property path, or a state that cannot be written."""


@dataclass(frozen=True)
class Rotated:
    """One rotated call: its value's path, the path of the call's mapping, its new state."""

    path: str  # e.g. `values.db.password`
    call_path: str  # e.g. `values.db.password["fn::rotate::swap"]`
    state: Any


@dataclass
class Rotation:
    """What a rotation asks of the evaluator. `rotate` gets an `OpenCall` of kind `rotate` with
    `{inputs, state}` (rotate-only inputs included) and returns the new state, or raises
    `evaluator.OpenFailed`."""

    rotate: Callable[[Any], Any]
    paths: frozenset[tuple[str | int, ...]] | None = None  # None: every call
    rotated: list[Rotated] = field(default_factory=list)

    @classmethod
    def of(cls, rotate: Callable[[Any], Any], paths: Collection[str] | None) -> Rotation:
        """Paths as Pulumi's rotate request writes them (`a.b[0]`, relative to `values`)."""
        if paths is None:
            return cls(rotate)
        wanted: set[tuple[str | int, ...]] = set()
        for text in paths:
            if not isinstance(text, str):
                raise RotationInvalid("each path is a string such as db.password")
            try:
                wanted.add(parse_path(text))
            except ValueError as exc:
                raise RotationInvalid(f"{text[:100]!r} is not a property path: {exc}") from exc
        return cls(rotate, frozenset(wanted))

    def wants(self, path: str) -> bool:
        """Whether the call whose value is at `path` (`values.…`) is to be rotated."""
        if self.paths is None:
            return True
        try:
            accessors = parse_path(path)
        except ValueError:
            return False
        return accessors[:1] == ("values",) and accessors[1:] in self.paths


def _secret_state(state: Any, depth: int = 0) -> Any:
    """The state as written: strings as `fn::secret`, containers kept, other scalars as they are;
    a null property is left out (absent and null read the same to a rotator)."""
    if depth > 64:
        raise RotationInvalid("the rotated state is nested too deeply")
    if isinstance(state, dict):
        return {str(k): _secret_state(v, depth + 1) for k, v in state.items() if v is not None}
    if isinstance(state, list | tuple):
        return [_secret_state(v, depth + 1) for v in state]
    if isinstance(state, str):
        return {"fn::secret": state}
    return state


def _find(root: Node, accessors: Sequence[str | int]) -> Node | None:
    current: Node | None = root
    for accessor in accessors:
        if isinstance(current, MappingNode) and isinstance(accessor, str):
            current = next(
                (v for k, v in current.value if isinstance(k, ScalarNode) and k.value == accessor),
                None,
            )
        elif isinstance(current, SequenceNode) and isinstance(accessor, int):
            items = current.value
            current = items[accessor] if 0 <= accessor < len(items) else None
        else:
            return None
    return current


def _end(node: Node) -> int:
    """Where a node's own text ends (a block collection's end mark is the next token's start)."""
    if isinstance(node, MappingNode) and not node.flow_style and node.value:
        return _end(node.value[-1][1])
    if isinstance(node, SequenceNode) and not node.flow_style and node.value:
        return _end(node.value[-1])
    return int(node.end_mark.index)


def write_states(text: str, rotated: Sequence[Rotated]) -> str:
    """The definition with each rotated call's `state` replaced by (or given) its new state."""
    root = yaml.compose(text, Loader=_LOADER)
    edits: list[tuple[int, int, str]] = []
    for item in rotated:
        call = _find(root, parse_path(item.call_path)) if root is not None else None
        if not isinstance(call, MappingNode):
            raise RotationInvalid(f"the call at {item.call_path} is no longer in the definition")
        flow = json.dumps(_secret_state(item.state), ensure_ascii=False, separators=(", ", ": "))
        state = next(
            (v for k, v in call.value if isinstance(k, ScalarNode) and k.value == "state"), None
        )
        if state is not None:
            start = state.start_mark.index
            space = " " if text[start - 1 : start] == ":" else ""
            edits.append((start, _end(state), space + flow))
        elif call.value:
            first = call.value[0][0]
            where = first.start_mark.index
            gap = ", " if call.flow_style else "\n" + " " * first.start_mark.column
            edits.append((where, where, f"state: {flow}{gap}"))
        else:
            raise RotationInvalid(f"the call at {item.call_path} has no inputs")
    for start, end, replacement in sorted(edits, reverse=True):
        text = text[:start] + replacement + text[end:]
    return text
