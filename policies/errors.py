"""Errors of policy changes."""

from __future__ import annotations

from typing import Any

from policies.validation import FieldError
from trustportal.errors import BadRequest


class PolicyInvalid(BadRequest):
    """The definitions cannot be saved; every problem is listed with where it is."""

    reason = "policy_invalid"

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{e.path}: {e.message}" for e in errors[:20]))

    def body(self, request_id: str) -> dict[str, Any]:
        return {
            "code": self.status,
            "message": self.message,
            "errors": [{"path": e.path, "message": e.message} for e in self.errors],
        }
