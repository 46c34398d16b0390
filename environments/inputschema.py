"""The input schemas of `fn::open` providers and `fn::rotate` rotators, and checking values
against them.

A schema is declarative JSON Schema (a plain mapping, or `True`/`False`), the subset Pulumi ESC's
providers use: `type` (one name or a list), `const`, `enum`, `properties`, `required`,
`additionalProperties`, `dependentRequired`, `minProperties`/`maxProperties`, `prefixItems`,
`items`, `minItems`/`maxItems`, `minLength`/`maxLength`, `pattern`, `minimum`, `maximum`,
`exclusiveMinimum`, `exclusiveMaximum`, `multipleOf`, `anyOf`, `oneOf` and `$ref` to
`#/$defs/<name>`. `rotateOnly` (Pulumi's extension) names inputs evaluated only when rotating.

Pure: `check` walks an evaluated `Value` and returns every problem with the accessors of the
value at fault (below the call's arguments) and its range. Unknown values (an `fn::open` not
called, at check time) are skipped: what is known is checked at check/save time, everything
at open.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from environments.syntax import Range, Value

Schema = Mapping[str, Any] | bool

MAX_PATTERN = 500


@dataclass(frozen=True)
class CallSchema:
    """What a provider (`inputs`) or a rotator (`inputs`, `state`, `rotate_only`) accepts."""

    inputs: Schema = True
    state: Schema = True
    rotate_only: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Problem:
    """A value that does not match its schema: where (below the arguments) and why."""

    accessors: tuple[str | int, ...]
    summary: str
    range: Range | None


def rotate_only(schema: Schema) -> frozenset[str]:
    """The inputs a schema marks `rotateOnly`."""
    if isinstance(schema, Mapping):
        names = schema.get("rotateOnly") or ()
        return frozenset(n for n in names if isinstance(n, str))
    return frozenset()


def check(schema: Schema, value: Value) -> list[Problem]:
    """Every problem of `value` against `schema` (empty when it matches or is unknown)."""
    problems: list[Problem] = []
    _Checker(schema, problems).check(schema, value, ())
    return problems


def kind_of(data: Any) -> str:
    """The JSON Schema type name of a plain value."""
    if data is None:
        return "null"
    if isinstance(data, bool):
        return "boolean"
    if isinstance(data, int | float):
        return "number"
    if isinstance(data, str):
        return "string"
    if isinstance(data, dict):
        return "object"
    return "array"


def _type_matches(wanted: str, data: Any) -> bool:
    if wanted == "integer":
        return isinstance(data, int) and not isinstance(data, bool)
    return kind_of(data) == wanted


def _show(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), sort_keys=True)


def _number(text: float) -> str:
    return str(int(text)) if isinstance(text, float) and text.is_integer() else str(text)


class _Checker:
    def __init__(self, root: Schema, problems: list[Problem]) -> None:
        self.root = root
        self.problems = problems
        self.depth = 0

    def add(self, at: tuple[str | int, ...], summary: str, value: Value) -> None:
        self.problems.append(Problem(at, summary, value.range))

    def resolve(self, schema: Schema) -> Schema:
        """Follow `$ref: #/$defs/<name>` (a few levels, never in a loop)."""
        for _ in range(8):
            if not isinstance(schema, Mapping) or "$ref" not in schema:
                return schema
            ref = str(schema["$ref"])
            defs = self.root.get("$defs", {}) if isinstance(self.root, Mapping) else {}
            name = ref.removeprefix("#/$defs/")
            if ref == name or name not in defs:
                return True  # an unresolvable reference checks nothing rather than everything
            schema = defs[name]
        return True

    def check(self, schema: Schema, value: Value, at: tuple[str | int, ...]) -> None:
        if value.unknown:
            return
        schema = self.resolve(schema)
        if schema is True or (isinstance(schema, Mapping) and not schema):
            return
        if schema is False or not isinstance(schema, Mapping):
            self.add(at, "no value is allowed here", value)
            return
        self.depth += 1
        try:
            if self.depth <= 64:
                self.check_mapping(schema, value, at)
        finally:
            self.depth -= 1

    def check_mapping(
        self, schema: Mapping[str, Any], value: Value, at: tuple[str | int, ...]
    ) -> None:
        data = value.plain(reveal=True)
        wanted = schema.get("type")
        kinds = [wanted] if isinstance(wanted, str) and wanted else wanted or []
        if kinds and not any(_type_matches(k, data) for k in kinds):
            self.add(at, f"expected {' or '.join(kinds)}, got {kind_of(data)}", value)
            return
        if "const" in schema and not value.has_unknown() and data != schema["const"]:
            self.add(at, f"expected {_show(schema['const'])}", value)
        if "enum" in schema and not value.has_unknown() and data not in list(schema["enum"]):
            self.add(at, f"expected one of {_show(list(schema['enum']))}", value)
        for keyword in ("anyOf", "oneOf"):
            if keyword in schema:
                self.alternatives(keyword, schema[keyword], value, at)
        inner = value.value
        if isinstance(inner, dict):
            self.object(schema, inner, value, at)
        elif isinstance(inner, list):
            self.array(schema, inner, value, at)
        elif isinstance(inner, str):
            self.string(schema, inner, value, at)
        elif isinstance(inner, int | float) and not isinstance(inner, bool):
            self.number(schema, inner, value, at)

    def alternatives(
        self, keyword: str, options: Sequence[Schema], value: Value, at: tuple[str | int, ...]
    ) -> None:
        found: list[list[Problem]] = []
        for option in options:
            problems: list[Problem] = []
            _Checker(self.root, problems).check(option, value, at)
            found.append(problems)
        matches = sum(1 for problems in found if not problems)
        if keyword == "anyOf" and matches == 0:
            for problems in found:
                self.problems.extend(problems)
            self.add(at, "at least one subschema must match", value)
        elif keyword == "oneOf" and matches != 1:
            for problems in found:
                self.problems.extend(problems)
            self.add(at, "exactly one subschema must match", value)

    def object(
        self,
        schema: Mapping[str, Any],
        entries: dict[str, Value],
        value: Value,
        at: tuple[str | int, ...],
    ) -> None:
        required = [k for k in schema.get("required", ()) if k not in entries]
        if required:
            self.add(at, f"missing required properties: {', '.join(required)}", value)
        for key, needs in (schema.get("dependentRequired") or {}).items():
            missing = [n for n in needs if key in entries and n not in entries]
            if missing:
                self.add(at, f"missing required properties: {', '.join(missing)}", value)
        count = len(entries)
        if "minProperties" in schema and count < schema["minProperties"]:
            self.add(
                at,
                f"expected an object with at least {schema['minProperties']} properties",
                value,
            )
        if "maxProperties" in schema and count > schema["maxProperties"]:
            self.add(
                at, f"expected an object with at most {schema['maxProperties']} properties", value
            )
        properties = schema.get("properties") or {}
        extra = schema.get("additionalProperties", True)
        for key, child in entries.items():
            if key in properties:
                self.check(properties[key], child, (*at, key))
            elif extra is False:
                known = ", ".join(sorted(properties)) or "none"
                self.add((*at, key), f'unknown property "{key}" (known: {known})', child)
            else:
                self.check(extra, child, (*at, key))

    def array(
        self, schema: Mapping[str, Any], items: list[Value], value: Value, at: tuple[str | int, ...]
    ) -> None:
        if "minItems" in schema and len(items) < schema["minItems"]:
            self.add(at, f"expected an array with at least {schema['minItems']} items", value)
        if "maxItems" in schema and len(items) > schema["maxItems"]:
            self.add(at, f"expected an array with at most {schema['maxItems']} items", value)
        prefix = list(schema.get("prefixItems") or ())
        rest = schema.get("items", True)
        for index, item in enumerate(items):
            self.check(prefix[index] if index < len(prefix) else rest, item, (*at, index))

    def string(
        self, schema: Mapping[str, Any], text: str, value: Value, at: tuple[str | int, ...]
    ) -> None:
        if "minLength" in schema and len(text) < schema["minLength"]:
            self.add(at, f"expected a string of at least length {schema['minLength']}", value)
        if "maxLength" in schema and len(text) > schema["maxLength"]:
            self.add(at, f"expected a string of at most length {schema['maxLength']}", value)
        pattern = schema.get("pattern")
        fits = isinstance(pattern, str) and len(pattern) <= MAX_PATTERN
        if fits and re.search(str(pattern), text) is None:
            self.add(at, f'string must match the pattern "{pattern}"', value)

    def number(
        self, schema: Mapping[str, Any], number: float, value: Value, at: tuple[str | int, ...]
    ) -> None:
        bounds = (
            ("minimum", lambda n, b: n >= b, "greater than or equal to"),
            ("exclusiveMinimum", lambda n, b: n > b, "greater than"),
            ("maximum", lambda n, b: n <= b, "less than or equal to"),
            ("exclusiveMaximum", lambda n, b: n < b, "less than"),
        )
        for keyword, holds, words in bounds:
            if keyword in schema and not holds(number, schema[keyword]):
                self.add(at, f"expected a number {words} {_number(schema[keyword])}", value)
        step = schema.get("multipleOf")
        if isinstance(step, int | float) and step > 0:
            ratio = number / step
            if not math.isfinite(ratio) or not math.isclose(ratio, round(ratio), abs_tol=1e-9):
                self.add(at, f"expected a multiple of {_number(step)}", value)
