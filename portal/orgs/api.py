"""API views for organizations and teams (Pulumi paths)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from trustportal.access import Need, organization_for
from trustportal.models import Team


class OrganizationApi(APIView):
    """`GET /api/orgs/{org}`: the organization, for any token that reaches it."""

    class OrganizationSerializer(serializers.Serializer[Any]):
        githubLogin = serializers.CharField()
        name = serializers.CharField()

    @extend_schema(responses=OrganizationSerializer, operation_id="getOrganization")
    def get(self, request: Request, org: str) -> Response:
        organization = organization_for(request, org, Need.ANY)
        return Response({"githubLogin": organization.login, "name": organization.display_name})


class TeamSerializer(serializers.Serializer[Any]):
    name = serializers.CharField()
    displayName = serializers.CharField()
    kind = serializers.CharField()


class TeamListApi(APIView):
    """`GET /api/orgs/{org}/teams`: the organization's teams."""

    class TeamListSerializer(serializers.Serializer[Any]):
        teams = TeamSerializer(many=True)

    @extend_schema(responses=TeamListSerializer, operation_id="listTeams")
    def get(self, request: Request, org: str) -> Response:
        organization = organization_for(request, org, Need.ANY)
        teams = Team.objects.filter(organization=organization).order_by("name")
        return Response(
            {
                "teams": [
                    {"name": t.name, "displayName": t.display_name or t.name, "kind": "pulumi"}
                    for t in teams
                ]
            }
        )
