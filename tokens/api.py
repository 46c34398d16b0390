"""API views of the tokens app: who am I."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from tokens.models import TokenType
from tokens.principal import Principal
from trustportal.models import Organization
from trustportal.selectors import organizations_for_user


def _organizations(principal: Principal) -> list[Organization]:
    token = principal.token
    if token.organization is not None:
        return [token.organization]
    user = principal.user
    return list(organizations_for_user(user)) if user is not None else []


class CurrentUserApi(APIView):
    """`GET /api/user`: the identity behind the token, in the shape the pulumi CLI reads."""

    class OutputSerializer(serializers.Serializer[Any]):
        githubLogin = serializers.CharField()
        name = serializers.CharField()
        email = serializers.CharField()
        avatarUrl = serializers.CharField()
        organizations = inline_serializer(
            "UserOrganization",
            {"githubLogin": serializers.CharField(), "name": serializers.CharField()},
            many=True,
        )
        tokenInfo = inline_serializer(
            "TokenInfo",
            {
                "name": serializers.CharField(),
                "organization": serializers.CharField(),
                "team": serializers.CharField(),
            },
        )

    @extend_schema(responses=OutputSerializer, operation_id="getCurrentUser")
    def get(self, request: Request) -> Response:
        principal: Principal = request.user  # type: ignore[assignment]
        token = principal.token
        user = principal.user
        organization = token.organization
        if token.token_type == TokenType.PERSONAL and user is not None:
            name, email = user.get_full_name() or user.get_username(), user.email
        else:
            assert organization is not None
            name, email = f"{organization.display_name} ({token.token_type} token)", ""
        body = {
            "id": str(user.pk)
            if token.token_type == TokenType.PERSONAL and user
            else principal.login,
            "githubLogin": principal.login,
            "name": name,
            "email": email,
            "avatarUrl": "",
            "organizations": [
                {
                    "githubLogin": org.login,
                    "name": org.display_name,
                    "avatarUrl": "",
                    # Pulumi's roles are admin / member; auditors read as members there.
                    "role": "admin" if principal.role_in(org) == "admin" else "member",
                }
                for org in _organizations(principal)
            ],
            "identities": [],
            "hasMFA": False,
            "isOrgManaged": False,
            "isManagedByMultiOrg": False,
            "tokenInfo": {
                "name": token.name,
                "organization": organization.login if organization is not None else "",
                "team": token.team.name if token.team is not None else "",
            },
        }
        return Response(body)
