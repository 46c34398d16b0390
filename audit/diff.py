"""Before/after diffs of configuration, with secrets replaced before anything is stored."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

SECRET = "[secret]"
# Field names whose values are never stored, whatever the caller passes.
_SECRET_NAME = re.compile(r"secret|password|token_hash|ciphertext|private|credential", re.I)
MAX_VALUE_CHARS = 2_000


def _safe(name: str, value: Any) -> Any:
    if value is None or value == "" or value == [] or value == {}:
        return value
    if _SECRET_NAME.search(name):
        return SECRET
    if isinstance(value, str) and len(value) > MAX_VALUE_CHARS:
        return value[:MAX_VALUE_CHARS] + "…"
    if isinstance(value, bool | int | float | str | list | dict):
        return value
    return str(value)  # dates, decimals, enums: their text


def diff(
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    *,
    secret_fields: frozenset[str] = frozenset(),
) -> dict[str, list[Any]]:
    """`{field: [before, after]}` for every field that differs; secrets as `[secret]`.

    A field named in `secret_fields`, or whose name says secret/password/…, never has its value
    stored: a change to it shows as `["[secret]", "[secret]"]` (or empty on either side).
    """
    before = before or {}
    after = after or {}
    changes: dict[str, list[Any]] = {}
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        if name in secret_fields:
            changes[name] = [SECRET if old else old, SECRET if new else new]
        else:
            changes[name] = [_safe(name, old), _safe(name, new)]
    return changes


def snapshot(instance: Any, fields: Iterable[str]) -> dict[str, Any]:
    """The named attributes of an object, for the `before`/`after` of an audit record.

    Related objects stay objects (they compare by primary key and are stored as their text).
    Name only what may be shown: `diff` hides secret-looking names, but a snapshot is the place
    to leave key material and hashes out in the first place.
    """
    return {name: getattr(instance, name) for name in fields}
