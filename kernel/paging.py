"""Keyset pages: newest first by id, without counting the rest (fast on millions of rows)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from django.db.models import Model, QuerySet

M = TypeVar("M", bound=Model)


@dataclass(frozen=True)
class Page(Generic[M]):
    """One keyset page: rows in id order (newest first) and the cursor of the next page."""

    rows: list[M]
    next_cursor: int | None


def keyset_page(rows: QuerySet[M], *, before: int | None, limit: int) -> Page[M]:
    """The `limit` rows with id below `before` (newest first), without counting the rest.

    One query for limit + 1 rows: the extra row only says whether a next page exists.
    """
    if before is not None:
        rows = rows.filter(pk__lt=before)
    found = list(rows.order_by("-pk")[: limit + 1])
    more = len(found) > limit
    found = found[:limit]
    return Page(rows=found, next_cursor=int(found[-1].pk) if more and found else None)
