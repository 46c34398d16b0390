"""Model fields shared by the apps."""

from __future__ import annotations

from typing import Any

from django.db import models

from kernel.strictjson import nesting_exceeds
from trustportal.jsonview import DATA_MAX_DEPTH, TOO_DEEP


class StoredJSONField(models.JSONField):
    """A JSONField for JSON stored as received (claims of refused tokens, their trace).

    A stored value nested deeper than `DATA_MAX_DEPTH` loads as the `TOO_DEEP` marker string
    instead of being decoded: `json.loads` would raise RecursionError and every page, export
    and API answer reading the row would fail. Writing is unchanged.
    """

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        if isinstance(value, str) and nesting_exceeds(value, DATA_MAX_DEPTH):
            return TOO_DEEP
        return super().from_db_value(value, expression, connection)
