"""How the OpenAPI schema describes `Authorization: token <access token>`."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class AccessTokenScheme(OpenApiAuthenticationExtension):
    """Access tokens go in the Authorization header as `token <t>` (or `Bearer <t>`)."""

    target_class = "tokens.authentication.AccessTokenAuthentication"
    name = "accessToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`token <access token>` (Pulumi's form) or `Bearer <access token>`.",
        }
