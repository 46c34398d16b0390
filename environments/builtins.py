"""The built-in functions of the language, as Pulumi ESC defines them, over evaluated values.

`fn::join`, `fn::split`, `fn::concat`, `fn::toJSON`, `fn::fromJSON`, `fn::toBase64`,
`fn::fromBase64`, `fn::toString` and `fn::final`. A result is secret when any input is secret
(every leaf, for lists and maps), and unknown when any input is unknown (definition checks).
Wrong types are diagnostics at the argument's path (`expected string, got number`).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Any

from environments.syntax import MAX_STRING, CallNode, ListNode, Node, Value, unknown_value

Report = Callable[[str, str], None]  # (summary, path)


class BuiltinError(Exception):
    """A built-in refused its argument; already reported."""


def _kind(value: Value) -> str:
    inner = value.value
    if inner is None:
        return "null"
    if isinstance(inner, bool):
        return "boolean"
    if isinstance(inner, int | float):
        return "number"
    if isinstance(inner, str):
        return "string"
    return "array" if isinstance(inner, list) else "object"


def _secret(value: Value) -> bool:
    """Whether the value or anything inside it is secret."""
    if value.secret:
        return True
    if isinstance(value.value, dict):
        return any(_secret(v) for v in value.value.values())
    if isinstance(value.value, list):
        return any(_secret(v) for v in value.value)
    return False


def _item_path(arguments: Node, index: int) -> str:
    if isinstance(arguments, ListNode) and index < len(arguments.items):
        return arguments.items[index].path
    return f"{arguments.path}[{index}]"


def _expect(value: Value, kind: str, path: str, report: Report) -> Any:
    if _kind(value) != kind:
        report(f"expected {kind}, got {_kind(value)}", path)
        raise BuiltinError
    return value.value


def _plain(value: Value) -> Any:
    return value.plain(reveal=True)


def _from_plain(data: Any, secret: bool, node: CallNode) -> Value:
    if isinstance(data, dict):
        entries = {str(k): _from_plain(v, secret, node) for k, v in data.items()}
        return Value.container(entries, node.range)
    if isinstance(data, list):
        return Value.container([_from_plain(v, secret, node) for v in data], node.range)
    return Value(data, secret, node.range)


def to_string(data: Any) -> str:
    """Pulumi's `fn::toString`: text as is, scalars as written, lists and maps as `"k"="v",…`."""
    if data is None:
        return ""
    if isinstance(data, bool):
        return "true" if data else "false"
    if isinstance(data, int | float):
        return json.dumps(data)
    if isinstance(data, str):
        return data
    if isinstance(data, list):
        return ",".join(json.dumps(to_string(v), ensure_ascii=False) for v in data)
    return ",".join(
        f"{json.dumps(k, ensure_ascii=False)}={json.dumps(to_string(data[k]), ensure_ascii=False)}"
        for k in sorted(data)
    )


def _join(args: Value, node: CallNode, report: Report) -> Value:
    delimiter_value, items_value = args.value
    delimiter = _expect(delimiter_value, "string", _item_path(node.arguments, 0), report)
    items = _expect(items_value, "array", _item_path(node.arguments, 1), report)
    inner = node.arguments.items[1] if isinstance(node.arguments, ListNode) else None
    texts = []
    for i, item in enumerate(items):
        texts.append(_expect(item, "string", _item_path(inner or node.arguments, i), report))
    return Value(delimiter.join(texts), _secret(args), node.range)


def _split(args: Value, node: CallNode, report: Report) -> Value:
    delimiter = _expect(args.value[0], "string", _item_path(node.arguments, 0), report)
    text = _expect(args.value[1], "string", _item_path(node.arguments, 1), report)
    parts = list(text) if delimiter == "" else text.split(delimiter)
    return _from_plain(parts, _secret(args), node)


def _concat(args: Value, node: CallNode, report: Report) -> Value:
    out: list[Value] = []
    failed = False
    for i, item in enumerate(_expect(args, "array", node.arguments.path, report)):
        try:
            out.extend(_expect(item, "array", _item_path(node.arguments, i), report))
        except BuiltinError:
            failed = True
    if failed:
        raise BuiltinError
    return Value.container(out, node.range)


def _text_function(name: str, args: Value, node: CallNode, report: Report) -> Value:
    secret = _secret(args)
    if name == "toJSON":
        text = json.dumps(_plain(args), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return Value(text, secret, node.range)
    if name == "toString":
        return Value(to_string(_plain(args)), secret, node.range)
    source = _expect(args, "string", node.arguments.path, report)
    if name == "toBase64":
        return Value(base64.b64encode(source.encode()).decode(), secret, node.range)
    if name == "fromBase64":
        try:
            return Value(base64.b64decode(source, validate=True).decode(), secret, node.range)
        except (binascii.Error, UnicodeDecodeError):
            report("the argument to fn::fromBase64 is not base64 of UTF-8 text", node.path)
            raise BuiltinError from None
    try:
        data = json.loads(source)
    except ValueError:
        report("the argument to fn::fromJSON is not JSON", node.arguments.path)
        raise BuiltinError from None
    return _from_plain(data, secret, node)


def apply(node: CallNode, args: Value, report: Report) -> Value | None:
    """The call's value, or None after reporting why it has none."""
    if args.has_unknown():
        return unknown_value(node.range)
    try:
        if node.name == "final":
            return Value(args.value, args.secret, args.range, args.weight, args.depth, final=True)
        if node.name == "join":
            result = _join(args, node, report)
        elif node.name == "split":
            result = _split(args, node, report)
        elif node.name == "concat":
            result = _concat(args, node, report)
        else:
            result = _text_function(node.name, args, node, report)
    except BuiltinError:
        return None
    if isinstance(result.value, str) and len(result.value) > MAX_STRING:
        report(f"the result of fn::{node.name} is longer than {MAX_STRING} characters", node.path)
        return None
    return result
