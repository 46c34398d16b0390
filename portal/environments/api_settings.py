"""`/api/orgs/{org}/environments/settings` and `…/roles`: the organization's environment access.

Org admins change them (`Need.ADMIN`); admins and auditors read them. The settings are the
default permission of members and standard organization tokens and whether members may create
environments; a role is a `roleID` (what trust policies mint organization tokens with) and its
scopes over environments.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from environments import access, grants
from environments.models import EnvironmentRole, EnvironmentSettings
from kernel.errors import NotFound
from kernel.wire import json_object
from trustportal.access import Need, organization_for


def settings_json(settings: EnvironmentSettings) -> dict[str, Any]:
    return {
        "defaultPermission": settings.default_permission,
        "membersCanCreate": settings.members_can_create,
    }


def role_json(role: EnvironmentRole) -> dict[str, Any]:
    return {
        "roleID": role.role_id,
        "name": role.name,
        "scopes": [
            {k: v for k, v in (("scope", s), ("project", p), ("environment", e)) if v}
            for s, p, e in grants.role_scope_rows(role)
        ],
    }


class EnvironmentSettingsApi(APIView):
    @extend_schema(request=None, responses=OpenApiTypes.OBJECT, operation_id="getEnvSettings")
    def get(self, request: Request, org: str) -> Response:
        organization = organization_for(request, org, Need.READ_CONFIGURATION)
        return Response(settings_json(access.settings_of(organization)))

    @extend_schema(
        request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT, operation_id="setEnvSettings"
    )
    def patch(self, request: Request, org: str) -> Response:
        organization = organization_for(request, org, Need.ADMIN)
        body = json_object(request)
        settings = grants.environment_settings_update(
            organization=organization,
            default_permission=body.get("defaultPermission"),
            members_can_create=body.get("membersCanCreate"),
        )
        return Response(settings_json(settings))


class EnvironmentRoleListApi(APIView):
    @extend_schema(request=None, responses=OpenApiTypes.OBJECT, operation_id="listEnvRoles")
    def get(self, request: Request, org: str) -> Response:
        organization = organization_for(request, org, Need.READ_CONFIGURATION)
        roles = EnvironmentRole.objects.filter(organization=organization).prefetch_related(
            "scopes"
        )
        return Response({"roles": [role_json(role) for role in roles]})

    @extend_schema(
        request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT, operation_id="createEnvRole"
    )
    def post(self, request: Request, org: str) -> Response:
        organization = organization_for(request, org, Need.ADMIN)
        body = json_object(request)
        role = grants.environment_role_save(
            organization=organization,
            role_id=body.get("roleID"),
            name=body.get("name"),
            scopes=body.get("scopes"),
        )
        return Response(role_json(role), status=201)


class EnvironmentRoleApi(APIView):
    def _role(self, request: Request, org: str, role_id: str, need: Need) -> EnvironmentRole:
        organization = organization_for(request, org, need)
        role = EnvironmentRole.objects.filter(organization=organization, role_id=role_id).first()
        if role is None:
            raise NotFound(f"Role '{role_id}' not found.")
        return role

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT, operation_id="getEnvRole")
    def get(self, request: Request, org: str, role_id: str) -> Response:
        return Response(role_json(self._role(request, org, role_id, Need.READ_CONFIGURATION)))

    @extend_schema(
        request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT, operation_id="updateEnvRole"
    )
    def put(self, request: Request, org: str, role_id: str) -> Response:
        role = self._role(request, org, role_id, Need.ADMIN)
        body = json_object(request)
        saved = grants.environment_role_save(
            organization=role.organization,
            role_id=role.role_id,
            name=body.get("name", role.name),
            scopes=body.get("scopes"),
        )
        return Response(role_json(saved))

    @extend_schema(request=None, responses={204: None}, operation_id="deleteEnvRole")
    def delete(self, request: Request, org: str, role_id: str) -> Response:
        grants.environment_role_delete(role=self._role(request, org, role_id, Need.ADMIN))
        return Response(status=204)
