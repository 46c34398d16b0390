"""Append-only rows: inserted once, never changed or deleted through the ORM.

The exchange history and the configuration audit log are both kept this way; on PostgreSQL a
statement trigger of each table refuses UPDATE and DELETE from raw SQL too. The one way out is a
retention purge that calls `AppendOnlyQuerySet._delete_rows` deliberately.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar, TypeVar

from django.db import models
from django.db.models.base import ModelBase

M = TypeVar("M", bound=models.Model)


class AppendOnlyError(RuntimeError):
    """Something tried to change or delete an append-only row."""


class AppendOnlyQuerySet(models.QuerySet[M]):
    """Read and insert only: `update()` and `delete()` refuse (and with them `bulk_update`, the
    admin's bulk delete and any helper built on them)."""

    def update(self, **kwargs: Any) -> int:
        raise AppendOnlyError(f"{self.model._meta.verbose_name_plural} are append-only.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError(
            f"{self.model._meta.verbose_name_plural} are append-only: only a retention purge "
            "removes them."
        )

    def _delete_rows(self) -> int:
        """Delete these rows: for the retention purge alone."""
        deleted, _ = super().delete()
        return deleted


class AppendOnlyModel(models.Model):
    """An abstract model whose instances are saved once (always an INSERT) and never deleted."""

    append_only_note: ClassVar[str] = "a saved row never changes"

    class Meta:
        abstract = True

    def save(
        self,
        *,
        force_insert: bool | tuple[ModelBase, ...] = False,
        force_update: bool = False,
        using: str | None = None,
        update_fields: Iterable[str] | None = None,
    ) -> None:
        """Insert a new row; refuses to write over an existing one."""
        if not self._state.adding or force_update or update_fields is not None:
            raise AppendOnlyError(
                f"{self._meta.verbose_name_plural} are append-only: {self.append_only_note}."
            )
        # Always an INSERT: with a primary key set, a plain save would try an UPDATE first.
        super().save(force_insert=True, using=using)

    def delete(self, using: Any = None, keep_parents: bool = False) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError(
            f"{self._meta.verbose_name_plural} are append-only: only a retention purge removes "
            "them."
        )
