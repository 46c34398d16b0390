"""Single-use `jti`s: a durable record in the database, claimed atomically.

One statement claims a `jti`: INSERT … ON CONFLICT on the (issuer, SHA-256 of the jti) unique
constraint. It commits on its own before the policy is evaluated and the token written, so two
racing exchanges of one token cannot both insert the row, and nothing held only in a cache (which
a restart or an eviction empties) decides whether a token was used. Deliberately no Redis fast
path: every claim needs the durable row anyway, so Redis could only add a round trip and a
failure mode. Issuers that are not single-use never reach this module.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime

from django.db import connection

from tokens.models import UsedJti

_sql: str | None = None


def jti_digest(jti: str) -> str:
    """The SHA-256 of a `jti` as stored (any length of jti fits the column)."""
    return hashlib.sha256(jti.encode("utf-8", "surrogatepass")).hexdigest()


def _statement() -> str:
    quote = connection.ops.quote_name
    meta = UsedJti._meta
    table = quote(meta.db_table)
    columns = {f.name: quote(f.column) for f in meta.concrete_fields}
    issuer, digest, expires = columns["issuer_id"], columns["jti_sha256"], columns["expires"]
    # A row whose `expires` has passed (not yet purged) is taken over: that token is expired, so
    # the same jti on a new token is a new use. Names come from the model, values are parameters.
    return (
        f"INSERT INTO {table} ({issuer}, {digest}, {expires}) VALUES (%s, %s, %s) "  # noqa: S608
        f"ON CONFLICT ({issuer}, {digest}) DO UPDATE SET {expires} = excluded.{expires} "
        f"WHERE {table}.{expires} < %s"
    )


def claim_jti(*, issuer_id: uuid.UUID, jti: str, expires: datetime, now: datetime) -> bool:
    """Record a `jti` until `expires`; False when it is already recorded and not expired.

    Raises the database's own errors when it is unreachable (the token endpoint answers 503
    `database_unavailable`): a replay is never allowed for want of a record.
    """
    global _sql
    if _sql is None:
        _sql = _statement()
    fields = {f.name: f for f in UsedJti._meta.concrete_fields}
    params = [
        fields["issuer_id"].get_db_prep_save(issuer_id, connection),
        jti_digest(jti),
        fields["expires"].get_db_prep_save(expires, connection),
        fields["expires"].get_db_prep_save(now, connection),
    ]
    with connection.cursor() as cursor:
        cursor.execute(_sql, params)
        return cursor.rowcount == 1
