"""Errors of environment operations, rendered by the one handler in `portal.errors`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from environments.syntax import Diagnostic
from kernel.errors import BadRequest, Conflict


class DefinitionInvalid(BadRequest):
    """A definition that cannot be saved or opened: Pulumi's 400 body with `diagnostics`."""

    reason = "definition_invalid"

    def __init__(self, diagnostics: Sequence[Diagnostic], message: str | None = None) -> None:
        self.diagnostics = tuple(diagnostics)
        count = len(self.diagnostics)
        super().__init__(
            message or f"The environment definition has {count} problem{'s' if count != 1 else ''}."
        )

    def body(self, request_id: str) -> dict[str, Any]:
        return {
            "code": self.status,
            "message": self.message,
            "diagnostics": [d.to_wire() for d in self.diagnostics],
        }


class EnvironmentConflict(Conflict):
    """Already exists, or changed since the caller read it (409, as Pulumi answers)."""

    reason = "environment_conflict"


class EnvironmentInvalid(BadRequest):
    """A name, tag or other input the service refuses."""

    reason = "environment_invalid"
