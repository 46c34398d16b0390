"""Writing an attempt: the access token and its event together, or a refusal's event alone.

The rows are plain column values (`exchange/store.py` builds them from the pipeline's frozen
results), checked against the models' concrete fields once at import, and written without model
instances. On PostgreSQL an allowed exchange is one statement (data-modifying CTEs), atomic on its
own, that inserts only while the issuer is still enabled: it takes a share lock on the issuer row,
so a concurrent disable or delete (`issuers/retirement.py`, which locks the row before revoking)
either waits for the token, and revokes it, or commits first, and no token is written. Elsewhere
(SQLite) the same rows go through the ORM in one transaction after the same check.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import connection, transaction
from django.db.models import Field, JSONField, Model

from issuers.models import Issuer
from tokens.models import AccessToken, ExchangeEvent


class IssuerRetired(Exception):
    """The issuer was disabled or deleted between its lookup and the record."""


def _insert_fields(model: type[Model]) -> list[Field[Any, Any]]:
    """The concrete fields an INSERT writes: all but the auto-incremented primary key."""
    return [f for f in model._meta.concrete_fields if not f.primary_key]


def _defaults(fields: list[Field[Any, Any]]) -> dict[str, Any]:
    return {f.attname: f.get_default() for f in fields}


_TOKEN_FIELDS = _insert_fields(AccessToken)
_EVENT_FIELDS = [f for f in _insert_fields(ExchangeEvent) if f.attname != "token_id"]
_TOKEN_DEFAULTS = _defaults(_TOKEN_FIELDS)
_EVENT_DEFAULTS = _defaults(_EVENT_FIELDS)
_JSON = {f.attname for f in [*_TOKEN_FIELDS, *_EVENT_FIELDS] if isinstance(f, JSONField)}
_sql: str | None = None


def _complete(values: Mapping[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    unknown = set(values) - set(defaults)
    if unknown:
        raise ValueError(f"not columns of the table: {sorted(unknown)}")
    return {**defaults, **values}


def _params(row: dict[str, Any], fields: list[Field[Any, Any]]) -> list[Any]:
    # Only JSON needs adapting for psycopg; the rest are already the columns' Python types.
    return [
        f.get_db_prep_save(row[f.attname], connection) if f.attname in _JSON else row[f.attname]
        for f in fields
    ]


def _columns(fields: list[Field[Any, Any]]) -> str:
    return ", ".join(connection.ops.quote_name(f.column) for f in fields)


def _statement() -> str:
    quote = connection.ops.quote_name
    token_pk = quote(AccessToken._meta.pk.column)
    event_pk = quote(ExchangeEvent._meta.pk.column)
    token_column = quote(ExchangeEvent._meta.get_field("token").column)
    issuer_table = quote(Issuer._meta.db_table)
    marks = ", ".join(["%s"] * len(_TOKEN_FIELDS))
    event_marks = ", ".join(["%s"] * len(_EVENT_FIELDS))
    # Names come from the models' metadata, values are parameters: nothing from outside.
    return (
        f"WITH live AS (SELECT 1 FROM {issuer_table} "  # noqa: S608
        f"WHERE {quote(Issuer._meta.pk.column)} = %s AND {quote('enabled')} FOR SHARE), "
        f"new_token AS (INSERT INTO {quote(AccessToken._meta.db_table)} "
        f"({_columns(_TOKEN_FIELDS)}) SELECT {marks} WHERE EXISTS (SELECT 1 FROM live) "
        f"RETURNING {token_pk}) "
        f"INSERT INTO {quote(ExchangeEvent._meta.db_table)} "
        f"({_columns(_EVENT_FIELDS)}, {token_column}) "
        f"SELECT {event_marks}, new_token.{token_pk} FROM new_token "
        f"RETURNING {event_pk}, {token_column}"
    )


def record_allowed(token: Mapping[str, Any], event: Mapping[str, Any]) -> int:
    """Insert the token and its event (linked) atomically while the issuer is enabled.

    Returns the event's id; raises IssuerRetired (nothing written) when the token's issuer is no
    longer enabled. Does not check anything else: the caller decided.
    """
    global _sql
    token_row = _complete(token, _TOKEN_DEFAULTS)
    event_row = _complete(event, _EVENT_DEFAULTS)
    if connection.vendor != "postgresql":
        with transaction.atomic():
            live = Issuer.objects.select_for_update().filter(
                pk=token_row["issuer_id"], enabled=True
            )
            if not live.exists():
                raise IssuerRetired
            created = AccessToken.objects.create(**token_row)
            return int(ExchangeEvent.objects.create(**event_row, token=created).pk)
    if _sql is None:
        _sql = _statement()
    params = [
        token_row["issuer_id"],
        *_params(token_row, _TOKEN_FIELDS),
        *_params(event_row, _EVENT_FIELDS),
    ]
    with connection.cursor() as cursor:
        cursor.execute(_sql, params)
        row = cursor.fetchone()
    if row is None:
        raise IssuerRetired
    return int(row[0])


def record_refused(event: Mapping[str, Any]) -> int:
    """Insert a refused attempt's event; returns its id."""
    return int(ExchangeEvent.objects.create(**_complete(event, _EVENT_DEFAULTS)).pk)
