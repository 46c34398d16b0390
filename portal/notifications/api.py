"""`/api/orgs/{org}/hooks…`: organization webhooks in Pulumi's shape, pings and deliveries."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from kernel.errors import NotFound
from kernel.wire import json_object
from notifications import services
from notifications.models import Delivery, Webhook
from trustportal.access import Need, organization_for
from trustportal.models import Organization

DELIVERY_PAGE = 100


def webhook_json(webhook: Webhook) -> dict[str, Any]:
    return {
        "organizationName": webhook.organization.login,
        "name": webhook.name,
        "displayName": webhook.display_name,
        "payloadUrl": webhook.payload_url,
        "email": webhook.email,
        "channel": webhook.channel,
        "active": webhook.active,
        "format": webhook.format,
        "filters": list(webhook.filters),
        "hasSecret": bool(webhook.secret_ciphertext),
    }


def delivery_json(row: Delivery) -> dict[str, Any]:
    return {
        "id": str(row.pk),
        "kind": row.kind,
        "payload": row.payload,
        "timestamp": int(row.created.timestamp()),
        "duration": row.duration_ms,
        "requestUrl": row.request_url,
        "requestHeaders": "",
        "responseCode": row.response_code or 0,
        "responseHeaders": "",
        "responseBody": row.response_body,
        "attempt": row.attempt,
        "status": row.status,
        "error": row.error,
        "nextAttemptAt": int(row.next_attempt_at.timestamp()) if row.next_attempt_at else None,
    }


class WebhookSerializer(serializers.Serializer[Any]):
    organizationName = serializers.CharField()
    name = serializers.CharField()
    displayName = serializers.CharField()
    payloadUrl = serializers.CharField()
    email = serializers.CharField()
    channel = serializers.CharField()
    active = serializers.BooleanField()
    format = serializers.CharField()
    filters = serializers.ListField(child=serializers.CharField())
    hasSecret = serializers.BooleanField()


class DeliverySerializer(serializers.Serializer[Any]):
    id = serializers.CharField()
    kind = serializers.CharField()
    payload = serializers.CharField()
    timestamp = serializers.IntegerField()
    duration = serializers.IntegerField()
    requestUrl = serializers.CharField()
    requestHeaders = serializers.CharField()
    responseCode = serializers.IntegerField()
    responseHeaders = serializers.CharField()
    responseBody = serializers.CharField()
    attempt = serializers.IntegerField()
    status = serializers.CharField()
    error = serializers.CharField()
    nextAttemptAt = serializers.IntegerField(allow_null=True)


def _webhook(organization: Organization, name: str) -> Webhook:
    webhook = (
        Webhook.objects.select_related("organization")
        .filter(organization=organization, name=name)
        .first()
    )
    if webhook is None:
        raise NotFound(f"Webhook '{name}' not found.")
    return webhook


class WebhookListApi(APIView):
    @extend_schema(responses=WebhookSerializer(many=True), operation_id="listOrganizationWebhooks")
    def get(self, request: Request, org: str) -> Response:
        organization = organization_for(request, org, Need.READ_CONFIGURATION)
        rows = Webhook.objects.select_related("organization").filter(organization=organization)
        return Response([webhook_json(w) for w in rows.order_by("name")])

    @extend_schema(
        request=OpenApiTypes.OBJECT,
        responses={201: WebhookSerializer},
        operation_id="createOrganizationWebhook",
    )
    def post(self, request: Request, org: str) -> Response:
        organization = organization_for(request, org, Need.ADMIN)
        webhook = services.webhook_create(organization=organization, values=json_object(request))
        return Response(webhook_json(webhook), status=201)


class WebhookApi(APIView):
    @extend_schema(responses=WebhookSerializer, operation_id="getOrganizationWebhook")
    def get(self, request: Request, org: str, name: str) -> Response:
        organization = organization_for(request, org, Need.READ_CONFIGURATION)
        return Response(webhook_json(_webhook(organization, name)))

    @extend_schema(
        request=OpenApiTypes.OBJECT,
        responses=WebhookSerializer,
        operation_id="updateOrganizationWebhook",
    )
    def patch(self, request: Request, org: str, name: str) -> Response:
        organization = organization_for(request, org, Need.ADMIN)
        webhook = services.webhook_update(
            webhook=_webhook(organization, name), values=json_object(request)
        )
        return Response(webhook_json(webhook))

    @extend_schema(responses={204: None}, operation_id="deleteOrganizationWebhook")
    def delete(self, request: Request, org: str, name: str) -> Response:
        organization = organization_for(request, org, Need.ADMIN)
        services.webhook_delete(webhook=_webhook(organization, name))
        return Response(status=204)


class WebhookPingApi(APIView):
    @extend_schema(
        request=None, responses=DeliverySerializer, operation_id="pingOrganizationWebhook"
    )
    def post(self, request: Request, org: str, name: str) -> Response:
        organization = organization_for(request, org, Need.ADMIN)
        row = services.deliver(
            webhook=_webhook(organization, name),
            kind="ping",
            audit_event=None,
            attempt=1,
            policy=services.webhook_policy(),
        )
        return Response(delivery_json(row))


class WebhookDeliveriesApi(APIView):
    @extend_schema(
        responses=DeliverySerializer(many=True), operation_id="listOrganizationWebhookDeliveries"
    )
    def get(self, request: Request, org: str, name: str) -> Response:
        organization = organization_for(request, org, Need.READ_CONFIGURATION)
        webhook = _webhook(organization, name)
        rows = webhook.deliveries.order_by("-pk")[:DELIVERY_PAGE]
        return Response([delivery_json(r) for r in rows])
