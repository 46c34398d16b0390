"""The floor: a bare WSGI app doing the irreducible work of an exchange, and nothing else.

Parses the JSON body, verifies the RS256 subject token with PyJWT against a key held in memory,
inserts one row with psycopg, answers JSON. No framework, no policy, no token generation.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import Any

import jwt
import psycopg

_KEY = open(os.environ["FLOOR_PUBLIC_KEY"]).read()  # noqa: SIM115 (read once at import)
_DSN = os.environ["FLOOR_DATABASE_URL"]
_connection: psycopg.Connection[Any] | None = None


def _db() -> psycopg.Connection[Any]:
    global _connection
    if _connection is None or _connection.closed:
        _connection = psycopg.connect(_DSN, autocommit=True)
    return _connection


def application(
    environ: dict[str, Any], start_response: Callable[[str, list[tuple[str, str]]], Any]
) -> Iterable[bytes]:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    try:
        data = json.loads(environ["wsgi.input"].read(length))
        claims = jwt.decode(
            data["subject_token"], _KEY, algorithms=["RS256"], audience=data["audience"]
        )
    except Exception:  # the floor answers 400 for anything malformed, like the real thing
        start_response("400 Bad Request", [("Content-Type", "application/json")])
        return [b'{"error":"invalid_request"}']
    _db().execute(
        "INSERT INTO floor_event (sub, created) VALUES (%s, now())", (claims.get("sub", ""),)
    )
    body = json.dumps({"access_token": "floor", "token_type": "token", "expires_in": 3600})
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body.encode()]
