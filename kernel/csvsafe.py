"""CSV lines that spreadsheet programs cannot turn into formulas, written one at a time."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from typing import Any

# Spreadsheet programs run cells starting with these as formulas; exported values come from
# callers (claims, user agents, names).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> str:
    """A value as CSV cell text: JSON for lists and objects, a `'` before formula starts."""
    if value is None:
        return ""
    if isinstance(value, dict | list):
        text = json.dumps(value, separators=(",", ":"), sort_keys=True)
    else:
        text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_rows(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> Iterator[str]:
    """The header line, then one CSV line per row, each cell made safe by `cell`."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def line(values: Iterable[Any]) -> str:
        writer.writerow([cell(v) for v in values])
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    yield line(header)
    for row in rows:
        yield line(row)
