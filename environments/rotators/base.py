"""The contract between a rotation and a rotator (`fn::rotate::<name>`).

A rotator declares what its inputs and its state look like (JSON Schema, see
`environments.inputschema`; `rotateOnly` in the inputs' schema names the inputs evaluated only
when rotating) and how to rotate: `(context, inputs, state) -> new state`. Opening an
environment gives the rotator's current state (secret); only a rotation calls `rotate`, and
the new state is written into the definition as the environment's next revision.

A rotator that reaches a service must do so through the provider-endpoint allow-list, as the
`fn::open` providers do (`environments.providers.endpoints`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from environments.inputschema import CallSchema, Schema, rotate_only


class RotatorError(Exception):
    """A rotator could not rotate; `message` is safe to show (never a secret)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class RotateContext:
    """Which environment is rotated, by whom, and when."""

    organization: str  # organization login
    project: str
    environment: str
    actor: str
    now: Callable[[], datetime]


RotateFunction = Callable[[RotateContext, Mapping[str, Any], Any], Any]


@dataclass(frozen=True)
class Rotator:
    """A rotator: its input and state schemas, and its `rotate` function."""

    rotate: RotateFunction
    inputs: Schema = True
    state: Schema = True

    @property
    def schema(self) -> CallSchema:
        return CallSchema(self.inputs, self.state, rotate_only(self.inputs))
