"""Pulumi's test providers' schemas and test rotators (`swap`, `echo`), for the test suite only.

From the README of `shared/vectors/esc-eval`: their harness registers them; so do the tests here
(the evaluator suite, and the rotate endpoint through the `test_rotators` fixture). They never
belong in the product.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from environments.inputschema import CallSchema
from environments.rotators.base import RotateContext, Rotator, RotatorError


def _record(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": sorted(properties)}


STRING = {"type": "string"}
NUMBER = {"type": "number"}
BOOLEAN = {"type": "boolean"}

SCHEMA_PROVIDER_INPUTS: dict[str, Any] = {
    "type": "object",
    "$defs": {"defRecord": _record(baz={"type": "string", "const": "qux"})},
    "properties": {
        "null": {"type": "null"},
        "boolean": BOOLEAN,
        "false": {"type": "boolean", "const": False},
        "true": {"type": "boolean", "const": True},
        "number": NUMBER,
        "pi": {"type": "number", "const": 3.14},
        "string": STRING,
        "hello": {"type": "string", "const": "hello"},
        "array": {"type": "array", "items": True},
        "tuple": {
            "type": "array",
            "prefixItems": [
                {"type": "string", "const": "hello"},
                {"type": "string", "const": "world"},
            ],
        },
        "map": {"type": "object", "additionalProperties": True},
        "record": _record(foo=STRING),
        "anyOf": {"anyOf": [STRING, NUMBER]},
        "oneOf": {"oneOf": [STRING, NUMBER]},
        "ref": {"$ref": "#/$defs/defRecord"},
        "const-array": {"type": "array", "const": ["hello", 42]},
        "const-object": {"type": "object", "const": {"hello": "world"}},
        "enum": {"type": "string", "enum": ["foo", "bar"]},
        "never": False,
        "always": True,
        "double": {"type": "array", "prefixItems": [STRING, NUMBER]},
        "triple": {"type": "array", "prefixItems": [STRING, NUMBER, BOOLEAN]},
        "dependentReq": {
            "type": "object",
            "properties": {"foo": STRING, "bar": NUMBER},
            "dependentRequired": {"foo": ["bar"]},
        },
        "multiple": {"type": "number", "multipleOf": 2},
        "minimum": {"type": "number", "minimum": 1},
        "exclusiveMinimum": {"type": "number", "exclusiveMinimum": 1},
        "maximum": {"type": "number", "maximum": 1},
        "exclusiveMaximum": {"type": "number", "exclusiveMaximum": 1},
        "minLength": {"type": "string", "minLength": 1},
        "maxLength": {"type": "string", "maxLength": 1},
        "pattern": {"type": "string", "pattern": "^foo[0-9]+$"},
        "minItems": {"type": "array", "minItems": 3},
        "maxItems": {"type": "array", "maxItems": 2},
        "minProperties": {"type": "object", "minProperties": 1},
        "maxProperties": {"type": "object", "maxProperties": 1},
    },
}

PROVIDERS: dict[str, CallSchema] = {
    "test": CallSchema(),
    "secret-wrapper": CallSchema(),
    "bench": CallSchema(),
    "error": CallSchema(inputs=_record(why=STRING)),
    "schema": CallSchema(inputs=SCHEMA_PROVIDER_INPUTS),
}


def _swap(context: RotateContext, inputs: Mapping[str, Any], state: Any) -> Any:
    """`swap`: its state `{a, b}`; rotating swaps them."""
    if not isinstance(state, Mapping):
        raise RotatorError("swap needs a state {a, b}")
    return {"a": state.get("b"), "b": state.get("a")}


def _echo(context: RotateContext, inputs: Mapping[str, Any], state: Any) -> Any:
    """`echo`: rotating moves `current` to `previous` and input `next` to `current`."""
    if "next" not in inputs:
        raise RotatorError("rotate-only inputs were not evaluated during rotation")
    current = state.get("current") if isinstance(state, Mapping) else None
    return {"current": inputs["next"], "previous": current}


SWAP = Rotator(_swap, inputs=True, state=_record(a=STRING, b=STRING))
ECHO = Rotator(
    _echo,
    inputs={**_record(next=STRING), "rotateOnly": ["next"]},
    state={
        "type": "object",
        "properties": {"current": STRING, "previous": STRING},
        "required": ["current"],
    },
)
ROTATORS = {"swap": SWAP, "echo": ECHO}
REGISTRY = {name: ("tests.environments.esc_rotators", name.upper()) for name in ROTATORS}
