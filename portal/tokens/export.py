"""Exchange events exported over HTTP: CSV or JSON lines, streamed without loading the set.

`streaming_export` walks the filtered queryset with `.iterator(chunk_size=…)` (a server-side
cursor on PostgreSQL) and yields one encoded line at a time, so a million-row export holds one
chunk in memory, never the whole set. The lines are `tokens.export`'s.
"""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import StreamingHttpResponse

from tokens.export import csv_lines, jsonl_lines
from tokens.models import ExchangeEvent

EXPORT_CHUNK = 2_000
EXPORT_FORMATS = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}


def streaming_export(
    events: QuerySet[ExchangeEvent], *, fmt: str, filename: str
) -> StreamingHttpResponse:
    """Stream `events` as CSV or JSON lines (`fmt`), chunk by chunk."""
    rows = events.iterator(chunk_size=EXPORT_CHUNK)
    lines = csv_lines(rows) if fmt == "csv" else jsonl_lines(rows)
    response = StreamingHttpResponse(
        (line.encode() for line in lines), content_type=EXPORT_FORMATS[fmt]
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}.{fmt}"'
    response["Cache-Control"] = "no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response
