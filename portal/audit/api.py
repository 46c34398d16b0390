"""`/api/orgs/{org}/auditlogs`: the configuration audit log in Pulumi's shape, and its export."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.formats import cef_lines, csv_lines, event_json
from audit.selectors import AuditFilters, audit_events, audit_page
from kernel.errors import BadRequest
from trustportal.access import Need, organization_for

PAGE_DEFAULT, PAGE_MAX = 100, 1_000
EXPORT_CHUNK = 2_000
EXPORTS = {"csv": "text/csv; charset=utf-8", "cef": "text/plain; charset=utf-8"}
MAX_FILTER_CHARS = 200


def _whole(params: Mapping[str, Any], name: str) -> int | None:
    value = params.get(name)
    if value in (None, ""):
        return None
    text = str(value)
    if not (text.isascii() and text.isdigit()) or len(text) > 12:
        raise BadRequest(f"{name} must be a whole number.")
    return int(text)


def _text(params: Mapping[str, Any], name: str) -> str:
    value = str(params.get(name) or "")
    if len(value) > MAX_FILTER_CHARS or "\x00" in value:
        raise BadRequest(f"{name} is not a usable filter.")
    return value


def _time(params: Mapping[str, Any], name: str) -> datetime | None:
    seconds = _whole(params, name)
    if seconds is None:
        return None
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise BadRequest(f"{name} is out of range.") from None


def filters_from(params: Mapping[str, Any]) -> AuditFilters:
    """Pulumi's `startTime` (records at or before it), `eventFilter`, `userFilter`; and ours."""
    return AuditFilters(
        before_time=_time(params, "startTime"),
        after_time=_time(params, "sinceTime"),
        event=_text(params, "eventFilter"),
        user=_text(params, "userFilter"),
        object_type=_text(params, "objectType"),
        object_id=_text(params, "objectId"),
        request_id=_text(params, "requestId"),
    )


class AuditUserSerializer(serializers.Serializer[Any]):
    name = serializers.CharField()
    githubLogin = serializers.CharField()
    avatarUrl = serializers.CharField()


class AuditEventSerializer(serializers.Serializer[Any]):
    timestamp = serializers.IntegerField()
    sourceIP = serializers.CharField()
    event = serializers.CharField()
    description = serializers.CharField()
    user = AuditUserSerializer()
    tokenID = serializers.CharField()
    tokenName = serializers.CharField()
    reqOrgAdmin = serializers.BooleanField()
    authFailure = serializers.BooleanField()
    id = serializers.CharField()
    time = serializers.CharField()
    actorKind = serializers.CharField()
    tokenLineage = serializers.ListField(child=serializers.CharField())
    objectType = serializers.CharField()
    objectId = serializers.CharField()
    object = serializers.CharField()
    changes = serializers.DictField()
    userAgent = serializers.CharField()
    requestId = serializers.CharField()


class AuditLogSerializer(serializers.Serializer[Any]):
    auditLogEvents = AuditEventSerializer(many=True)
    continuationToken = serializers.CharField(allow_null=True)


FILTER_PARAMETERS = [
    OpenApiParameter("startTime", OpenApiTypes.INT, description="records at or before (Unix s)"),
    OpenApiParameter("sinceTime", OpenApiTypes.INT, description="records at or after (Unix s)"),
    OpenApiParameter("eventFilter", OpenApiTypes.STR),
    OpenApiParameter("userFilter", OpenApiTypes.STR),
    OpenApiParameter("objectType", OpenApiTypes.STR),
    OpenApiParameter("objectId", OpenApiTypes.STR),
    OpenApiParameter("requestId", OpenApiTypes.STR),
]


class AuditLogApi(APIView):
    """Newest first; `continuationToken` from the previous page continues; `pageSize` ≤ 1,000."""

    @extend_schema(
        responses=AuditLogSerializer,
        operation_id="listAuditLogEvents",
        parameters=[
            *FILTER_PARAMETERS,
            OpenApiParameter("continuationToken", OpenApiTypes.STR),
            OpenApiParameter("pageSize", OpenApiTypes.INT),
        ],
    )
    def get(self, request: Request, org: str) -> Response:
        organization = organization_for(request, org, Need.READ_CONFIGURATION)
        params = request.query_params
        filters = filters_from(params)
        before = _whole(params, "continuationToken")
        size = _whole(params, "pageSize")
        limit = PAGE_DEFAULT if size is None else size
        if not 1 <= limit <= PAGE_MAX:
            raise BadRequest(f"pageSize must be between 1 and {PAGE_MAX}.")
        page = audit_page(organization, filters, before=before, limit=limit)
        return Response(
            {
                "auditLogEvents": [event_json(r) for r in page.rows],
                "continuationToken": str(page.next_cursor) if page.next_cursor else None,
            }
        )


class AuditLogExportApi(APIView):
    """`?format=csv|cef`: every matching record, newest first, streamed."""

    @extend_schema(
        responses={(200, "text/csv"): str, (200, "text/plain"): str},
        operation_id="exportAuditLogEvents",
        parameters=[*FILTER_PARAMETERS, OpenApiParameter("format", OpenApiTypes.STR)],
    )
    def get(self, request: Request, org: str) -> StreamingHttpResponse:
        organization = organization_for(request, org, Need.READ_CONFIGURATION)
        params = request.query_params
        fmt = _text(params, "format") or "csv"
        if fmt not in EXPORTS:
            raise BadRequest("format must be csv or cef.")
        rows = audit_events(organization, filters_from(params)).order_by("-pk")
        records = rows.iterator(chunk_size=EXPORT_CHUNK)
        lines = csv_lines(records) if fmt == "csv" else cef_lines(records)
        response = StreamingHttpResponse(
            (line.encode() for line in lines), content_type=EXPORTS[fmt]
        )
        extension = "csv" if fmt == "csv" else "cef"
        response["Content-Disposition"] = (
            f'attachment; filename="auditlog-{organization.login}.{extension}"'
        )
        response["Cache-Control"] = "no-store"
        return response
