"""Small helpers every JSON API shares: timestamps as clients expect them, object bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rest_framework.request import Request

from kernel.errors import BadRequest


def iso_time(value: datetime | None) -> str | None:
    """An aware datetime as RFC 3339 with `Z` for UTC (`2026-01-02T03:04:05Z`); None stays None."""
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def json_object(request: Request) -> dict[str, Any]:
    """The request's body, which must be a JSON object (a 400 otherwise)."""
    if not isinstance(request.data, dict):
        raise BadRequest("The body must be a JSON object.")
    return dict(request.data)
