"""Rate-limited attempts, counted per (bucket, window) instead of one event each.

A refused-for-rate attempt costs the sender nothing, so it must not cost the history a row each:
the first of a window is recorded as an exchange event, every one (the first included) is
counted in one `RateLimitedWindow` row by one INSERT … ON CONFLICT DO UPDATE. Every attempt stays
visible, in aggregate.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from django.db import connection

from exchange.ratelimit import WINDOW_SECONDS
from tokens.models import RateLimitedWindow

_sql: str | None = None


def _statement() -> str:
    quote = connection.ops.quote_name
    table = quote(RateLimitedWindow._meta.db_table)
    columns = {f.name: quote(f.column) for f in RateLimitedWindow._meta.concrete_fields}
    names = [
        "bucket_sha256",
        "bucket_kind",
        "window_start",
        "organization_id",
        "first_request_id",
        "attempts",
    ]
    attempts = columns["attempts"]
    return (
        f"INSERT INTO {table} ({', '.join(columns[n] for n in names)}) "  # noqa: S608
        f"VALUES (%s, %s, %s, %s, %s, 1) "
        f"ON CONFLICT ({columns['bucket_sha256']}, {columns['window_start']}) "
        f"DO UPDATE SET {attempts} = {table}.{attempts} + 1 RETURNING {attempts}"
    )


def count_rate_limited(
    *, bucket: str, at: float, organization_id: int | None, request_id: str
) -> int:
    """Count one rate-limited attempt of `bucket` in the window holding `at`; the count so far."""
    global _sql
    if _sql is None:
        _sql = _statement()
    start = datetime.fromtimestamp(int(at // WINDOW_SECONDS) * WINDOW_SECONDS, tz=UTC)
    field = RateLimitedWindow._meta.get_field("window_start")
    params = [
        hashlib.sha256(bucket.encode("utf-8", "surrogatepass")).hexdigest(),
        bucket.split(":", 1)[0][:8],
        field.get_db_prep_save(start, connection),
        organization_id,
        request_id[:64],
    ]
    with connection.cursor() as cursor:
        cursor.execute(_sql, params)
        return int(cursor.fetchone()[0])
