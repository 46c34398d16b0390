"""How `/api/openapi.json` describes `POST /api/oauth/token` (a plain Django view, not DRF).

A drf-spectacular postprocessing hook adds the operation: the request in both content types the
clients send (JSON from `pulumi/auth-actions`, form-encoded from `pulumi login --oidc-token`), the
granted token, and every answer the endpoint gives, each in RFC 6749 §5.2's error shape.
"""

from __future__ import annotations

from typing import Any

from exchange.request import GRANT_TYPE, REQUESTED_PREFIX, SUBJECT_TOKEN_TYPES, TOKEN_TYPES

PATH = "/api/oauth/token"

_REQUEST: dict[str, Any] = {
    "type": "object",
    "description": "An RFC 8693 token exchange request.",
    "properties": {
        "grant_type": {"type": "string", "enum": [GRANT_TYPE]},
        "audience": {
            "type": "string",
            "description": "`urn:pulumi:org:<organization>`: the organization to act in.",
        },
        "subject_token": {"type": "string", "description": "The CI platform's OIDC ID token."},
        "subject_token_type": {"type": "string", "enum": sorted(SUBJECT_TOKEN_TYPES)},
        "requested_token_type": {
            "type": "string",
            "enum": [REQUESTED_PREFIX + kind for kind in TOKEN_TYPES],
        },
        "scope": {
            "type": "string",
            "description": "`admin` for an organization token, `team:<name>`, `user:<login>` "
            "or `runner:<name>` for the others.",
        },
        "expiration": {
            "type": "integer",
            "minimum": 1,
            "description": "Seconds; capped by the issuer's maximum.",
        },
    },
    "required": ["grant_type", "audience", "subject_token", "subject_token_type"],
}
_TOKEN: dict[str, Any] = {
    "type": "object",
    "properties": {
        "access_token": {"type": "string"},
        "issued_token_type": {"type": "string"},
        "token_type": {"type": "string", "enum": ["token"]},
        "expires_in": {"type": "integer"},
        "scope": {"type": "string"},
    },
    "required": ["access_token", "issued_token_type", "token_type", "expires_in", "scope"],
}
_ERROR: dict[str, Any] = {
    "type": "object",
    "description": "RFC 6749 §5.2, with the stable reason code and the request id.",
    "properties": {
        "error": {
            "type": "string",
            "enum": [
                "invalid_request",
                "unsupported_grant_type",
                "invalid_target",
                "invalid_scope",
                "temporarily_unavailable",
            ],
        },
        "error_description": {"type": "string"},
        "reason": {"type": "string", "description": "e.g. `denied_by_policy`, `token_expired`."},
        "request_id": {"type": "string"},
    },
    "required": ["error", "error_description", "reason", "request_id"],
}
_NO_STORE = {"Cache-Control": {"schema": {"type": "string", "enum": ["no-store"]}}}
_ERRORS = {
    "400": "Refused: a malformed request (`invalid_request`, `unsupported_grant_type`, "
    "`invalid_target`), a subject token that is not valid or not trusted here "
    "(`invalid_request`, reason `untrusted_token`, `token_expired`, …), a policy that denies or "
    "grants nothing (`invalid_request` / `invalid_scope`), or a replayed single-use token.",
    "429": "Too many attempts from this address or subject; see `Retry-After`.",
    "503": "The database is unavailable (`temporarily_unavailable`); retry later.",
}


def _response(description: str, schema: str, *, retry: bool = False) -> dict[str, Any]:
    headers = dict(_NO_STORE)
    if retry:
        headers["Retry-After"] = {"schema": {"type": "integer"}}
    return {
        "description": description,
        "headers": headers,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


def document_token_endpoint(result: dict[str, Any], **_kwargs: Any) -> dict[str, Any]:
    """Add `POST /api/oauth/token` to the schema (run after the API-wide error hook)."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas["TokenExchangeRequest"] = _REQUEST
    schemas["TokenExchangeResponse"] = _TOKEN
    schemas["OAuthError"] = _ERROR
    body = {"schema": {"$ref": "#/components/schemas/TokenExchangeRequest"}}
    responses = {"200": _response("The access token.", "TokenExchangeResponse")}
    for status, description in _ERRORS.items():
        responses[status] = _response(description, "OAuthError", retry=status == "429")
    result.setdefault("paths", {})[PATH] = {
        "post": {
            "operationId": "exchangeToken",
            "summary": "Exchange a CI OIDC ID token for an access token (RFC 8693).",
            "tags": ["oauth"],
            "security": [{}],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": body,
                    "application/x-www-form-urlencoded": body,
                },
            },
            "responses": responses,
        }
    }
    return result
