"""How the OpenAPI schema describes `Authorization: token <access token>`."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiParameter


class AccessTokenScheme(OpenApiAuthenticationExtension):
    """Access tokens go in the Authorization header as `token <t>` (or `Bearer <t>`)."""

    target_class = "portal.tokens.authentication.AccessTokenAuthentication"
    name = "accessToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`token <access token>` (Pulumi's form) or `Bearer <access token>`.",
        }


ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Pulumi's error shape.",
    "properties": {"code": {"type": "integer"}, "message": {"type": "string"}},
    "required": ["code", "message"],
}
_ERRORS = {
    "400": "The request is malformed or fails validation.",
    "401": "No, an unknown, an expired or a revoked access token.",
    "403": "The token reaches the organization but its role is not enough.",
    "404": "No such object, or an organization the token does not reach.",
}
_WRITE_ERRORS = {"409": "Conflicts with the current state (a name taken, a stale revision)."}
_IF_MATCH_ERRORS = {"412": "`If-Match` names a version that is no longer current."}
_IF_MATCH_OPERATIONS = {"updateAuthPolicy", "updateEnvironmentYaml"}
_WRITES = {"post", "put", "patch", "delete"}


def document_errors(result: dict[str, Any], **_kwargs: Any) -> dict[str, Any]:
    """Add the `{"code","message"}` error answers every API operation can give to the schema.

    A drf-spectacular postprocessing hook: views raise errors as classes (`portal.errors`)
    rendered by one handler, so the statuses they may answer are the same for every operation.
    """
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components["Error"] = ERROR_SCHEMA
    reference = {"$ref": "#/components/schemas/Error"}
    for operations in result.get("paths", {}).values():
        for method, operation in operations.items():
            errors = dict(_ERRORS)
            if method in _WRITES:
                errors.update(_WRITE_ERRORS)
            if operation.get("operationId") in _IF_MATCH_OPERATIONS:
                errors.update(_IF_MATCH_ERRORS)
            responses = operation.setdefault("responses", {})
            for status, description in errors.items():
                content = {"application/json": {"schema": reference}}
                responses.setdefault(status, {"description": description, "content": content})
    return result


# The query parameters of `GET /api/orgs/{org}/oidc/exchanges` (parsed by tokens.filters).
EXCHANGE_FILTERS: list[OpenApiParameter] = [
    OpenApiParameter("issuer", str, description="An issuer id."),
    OpenApiParameter("decision", str, enum=["allow", "deny"]),
    OpenApiParameter("reason", str, description="A reason code, e.g. denied_by_policy."),
    OpenApiParameter("subject", str, description="A policy pattern matched against `sub`."),
    OpenApiParameter(
        "repository", str, description="A policy pattern matched against the repository."
    ),
    OpenApiParameter("type", str, description="The requested token type."),
    OpenApiParameter(
        "requestId",
        str,
        description=(
            "The exact request id of an attempt, as a refusal and `trustportal-login` show it."
        ),
    ),
    OpenApiParameter(
        "since", str, description="A date or date-time (UTC when no zone), inclusive."
    ),
    OpenApiParameter("until", str, description="A date or date-time, exclusive."),
    OpenApiParameter("before", int, description="The previous page's nextCursor."),
    OpenApiParameter("limit", int, description="1 to 500 (default 100)."),
]
