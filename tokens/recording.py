"""Writing an allowed exchange: the access token and its event, together or not at all.

On PostgreSQL both rows go in one statement (a data-modifying CTE), which is atomic on its own:
one round trip instead of BEGIN, two INSERTs and COMMIT. Elsewhere (SQLite) the same rows are
saved by the ORM inside one transaction. Either way the values come from the same model
instances, prepared by the models' own fields, so the two paths cannot disagree on what is stored.
"""

from __future__ import annotations

from typing import Any

from django.db import connection, transaction
from django.db.models import Field, Model

from tokens.models import AccessToken, ExchangeEvent


def _insert_fields(model: type[Model]) -> list[Field[Any, Any]]:
    """The concrete fields an INSERT writes: all but the auto-incremented primary key."""
    return [f for f in model._meta.concrete_fields if not f.primary_key]


def _values(instance: Model, fields: list[Field[Any, Any]]) -> list[Any]:
    return [f.get_db_prep_save(f.pre_save(instance, add=True), connection) for f in fields]


def _columns(fields: list[Field[Any, Any]]) -> str:
    return ", ".join(connection.ops.quote_name(f.column) for f in fields)


_TOKEN_FIELDS = _insert_fields(AccessToken)
_EVENT_FIELDS = [f for f in _insert_fields(ExchangeEvent) if f.attname != "token_id"]
_sql: str | None = None


def _statement() -> str:
    quote = connection.ops.quote_name
    token_pk = quote(AccessToken._meta.pk.column)
    event_pk = quote(ExchangeEvent._meta.pk.column)
    token_column = quote(ExchangeEvent._meta.get_field("token").column)
    # Names come from the models' metadata, values are parameters: nothing from outside.
    return (
        f"WITH new_token AS (INSERT INTO {quote(AccessToken._meta.db_table)} "  # noqa: S608
        f"({_columns(_TOKEN_FIELDS)}) VALUES ({', '.join(['%s'] * len(_TOKEN_FIELDS))}) "
        f"RETURNING {token_pk}) "
        f"INSERT INTO {quote(ExchangeEvent._meta.db_table)} "
        f"({_columns(_EVENT_FIELDS)}, {token_column}) "
        f"VALUES ({', '.join(['%s'] * len(_EVENT_FIELDS))}, (SELECT {token_pk} FROM new_token)) "
        f"RETURNING {event_pk}, {token_column}"
    )


def record_allowed(token: AccessToken, event: ExchangeEvent) -> int:
    """Insert the token and its event (linked) atomically; returns the event's id.

    Sets the primary keys on both instances. Does not check anything: the caller decided.
    """
    global _sql
    if connection.vendor != "postgresql":
        with transaction.atomic():
            token.save(force_insert=True)
            event.token = token
            event.save(force_insert=True)
        return int(event.pk)
    if _sql is None:
        _sql = _statement()
    with connection.cursor() as cursor:
        cursor.execute(_sql, [*_values(token, _TOKEN_FIELDS), *_values(event, _EVENT_FIELDS)])
        event_id, token_id = cursor.fetchone()
    token.pk = token_id
    token._state.adding = False
    event.token = token
    event.pk = event_id
    event._state.adding = False
    return int(event_id)
