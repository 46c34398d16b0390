"""The §5 pattern language in SQL: one translation for every history and token filter.

`matches_pattern(expression, pattern)` is a boolean expression for `QuerySet.filter()` that is
true exactly when `policies.patterns.compile_pattern(source).matches(value)` would be:
full-string, case-sensitive, `*` any run, `?` one character, every other character literal.

- PostgreSQL: `LIKE … ESCAPE '\\'` (case-sensitive there), plus the same test on the first
  `INDEXED_PREFIX` characters so the planner can use the `text_pattern_ops` expression indexes
  of migration 0004 for the pattern's literal prefix.
- SQLite: `GLOB` (case-sensitive, unlike SQLite's LIKE), with `[*]`, `[?]` and `[[]` escapes.

It deliberately does not post-filter in Python: a page of 50 rows must come from one query.
"""

from __future__ import annotations

from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Expression, F, Lookup, Q
from django.db.models.sql.compiler import SQLCompiler

from policies.patterns import Pattern, Wildcard
from tokens.models import INDEXED_PREFIX

_LIKE_SPECIAL = str.maketrans({"\\": "\\\\", "%": "\\%", "_": "\\_"})
_GLOB_SPECIAL = str.maketrans({"*": "[*]", "?": "[?]", "[": "[[]"})


def like_text(pattern: Pattern) -> str:
    """The pattern as a SQL LIKE pattern whose escape character is a backslash."""
    return "".join(
        "%"
        if element is Wildcard.ANY
        else "_"
        if element is Wildcard.ONE
        else str(element).translate(_LIKE_SPECIAL)
        for element in pattern.elements
    )


def glob_text(pattern: Pattern) -> str:
    """The pattern as an SQLite GLOB pattern (literal `*`, `?`, `[` in brackets)."""
    return "".join(
        "*"
        if element is Wildcard.ANY
        else "?"
        if element is Wildcard.ONE
        else str(element).translate(_GLOB_SPECIAL)
        for element in pattern.elements
    )


class MatchesPattern(Lookup[str]):
    """`lhs` matches a compiled §5 pattern (see the module docstring for the SQL per database)."""

    lookup_name = "matches_pattern"
    prepare_rhs = False

    def __init__(self, lhs: Any, pattern: Pattern) -> None:
        self.pattern = pattern
        super().__init__(lhs, pattern.source)

    def get_prep_lookup(self) -> Any:
        return self.rhs

    def as_sql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper
    ) -> tuple[str, list[Any]]:
        lhs, params = self.process_lhs(compiler, connection)
        if self.pattern.is_literal:
            return f"{lhs} = %s", [*params, self.pattern.literal_prefix]
        return f"{lhs} LIKE %s ESCAPE '\\'", [*params, like_text(self.pattern)]

    def as_sqlite(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper
    ) -> tuple[str, list[Any]]:
        lhs, params = self.process_lhs(compiler, connection)
        if self.pattern.is_literal:
            return f"{lhs} = %s", [*params, self.pattern.literal_prefix]
        return f"{lhs} GLOB %s", [*params, glob_text(self.pattern)]

    def as_postgresql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper
    ) -> tuple[str, list[Any]]:
        lhs, params = self.process_lhs(compiler, connection)
        whole, whole_params = self.as_sql(compiler, connection)
        prefix = self.pattern.literal_prefix
        if not prefix:
            return whole, whole_params
        indexed = f"LEFT({lhs}, {INDEXED_PREFIX})"
        if self.pattern.is_literal or len(prefix) >= INDEXED_PREFIX:
            head = f"{indexed} = %s"
            head_param = prefix[:INDEXED_PREFIX]
        else:
            head = f"{indexed} LIKE %s ESCAPE '\\'"
            head_param = prefix.translate(_LIKE_SPECIAL) + "%"
        return f"({head} AND {whole})", [*params, head_param, *whole_params]


def matches_pattern(target: str | Expression, pattern: Pattern) -> Q:
    """A filter: the field (or expression) `target` matches `pattern` exactly."""
    lhs = F(target) if isinstance(target, str) else target
    return Q(MatchesPattern(lhs, pattern))
