"""Issuer API (Pulumi paths and shapes): list, register, get, patch, delete, thumbprints."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from issuers import selectors, services
from issuers.models import Issuer
from kernel.errors import NotFound
from kernel.wire import iso_time, json_object
from policies.registration import issuer_register
from tokens import retirement
from tokens.principal import principal_of
from trustportal.access import Need, organization_for

# How many access tokens a DELETE (or a PATCH with revokeTokens) revoked.
REVOKED_HEADER = "X-Revoked-Tokens"


def issuer_json(issuer: Issuer, *, detail: bool = False) -> dict[str, Any]:
    """The Pulumi issuer shape plus our own fields (audiences, algorithms, health, keys)."""
    body: dict[str, Any] = {
        "id": str(issuer.pk),
        "name": issuer.name,
        "url": issuer.url,
        "issuer": issuer.issuer,
        # Pinned by an admin (enforced); observed: served at the last fetch (only shown).
        "thumbprints": list(issuer.thumbprints),
        "observedThumbprints": list(issuer.observed_thumbprints),
        "jwks": issuer.static_jwks,
        "maxExpiration": issuer.max_expiration,
        "created": iso_time(issuer.created),
        "modified": iso_time(issuer.modified),
        "lastUsed": iso_time(issuer.last_used),
        "audiences": list(issuer.audiences),
        "algorithms": list(issuer.algorithms),
        "singleUse": issuer.single_use,
        "enabled": issuer.enabled,
        "health": {
            "lastFetch": iso_time(issuer.last_fetch_at),
            "lastSuccess": iso_time(issuer.last_success_at),
            "lastError": issuer.last_error or None,
            "nextRefresh": iso_time(issuer.next_refresh_at),
            "certificateExpires": iso_time(issuer.cert_not_after),
            "warnings": [
                {"code": w.code, "message": w.message}
                for w in selectors.issuer_warnings(issuer, timezone.now())
            ],
        },
    }
    if detail:
        body["keys"] = [
            {
                "kid": k.kid,
                "kty": k.kty,
                "alg": k.alg or None,
                "size": k.size,
                "firstSeen": iso_time(k.first_seen),
                "lastSeen": iso_time(k.last_seen),
                "removed": iso_time(k.removed_at),
            }
            for k in selectors.issuer_keys(issuer)
        ]
        # What deleting the issuer (or disabling it with revokeTokens) would revoke now.
        body["activeTokens"] = retirement.issuer_token_count(issuer).total
    return body


def _issuer(request: Request, org: str, issuer_id: str, need: Need) -> Issuer:
    organization = organization_for(request, org, need)
    issuer = selectors.issuer_of(organization, issuer_id)
    if issuer is None:
        raise NotFound(f"Issuer '{issuer_id}' not found.")
    return issuer


class IssuerRegistrationSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(required=False)
    url = serializers.CharField()
    thumbprints = serializers.ListField(child=serializers.CharField(), required=False)
    jwks = serializers.DictField(required=False, allow_null=True)
    maxExpiration = serializers.IntegerField(required=False)
    audiences = serializers.ListField(child=serializers.CharField(), required=False)
    algorithms = serializers.ListField(child=serializers.CharField(), required=False)
    singleUse = serializers.BooleanField(required=False)


class IssuerSerializer(serializers.Serializer[Any]):
    id = serializers.CharField()
    name = serializers.CharField()
    url = serializers.CharField()
    issuer = serializers.CharField()
    thumbprints = serializers.ListField(child=serializers.CharField())
    observedThumbprints = serializers.ListField(child=serializers.CharField())
    jwks = serializers.DictField(allow_null=True)
    maxExpiration = serializers.IntegerField()
    created = serializers.CharField()
    modified = serializers.CharField()
    lastUsed = serializers.CharField(allow_null=True)
    audiences = serializers.ListField(child=serializers.CharField())
    algorithms = serializers.ListField(child=serializers.CharField())
    singleUse = serializers.BooleanField()
    enabled = serializers.BooleanField()
    health = serializers.DictField()
    activeTokens = serializers.IntegerField(
        required=False, help_text="detail only: the active tokens deleting the issuer revokes"
    )


class IssuerUpdateSerializer(IssuerRegistrationSerializer):
    enabled = serializers.BooleanField(required=False)
    revokeTokens = serializers.BooleanField(
        required=False, help_text="with enabled: false, also revoke the tokens it minted"
    )


class IssuerListSerializer(serializers.Serializer[Any]):
    oidcIssuers = IssuerSerializer(many=True)


class IssuerListApi(APIView):
    """`GET|POST /api/orgs/{org}/oidc/issuers`."""

    @extend_schema(responses=IssuerListSerializer, operation_id="listOidcIssuers")
    def get(self, request: Request, org: str) -> Response:
        organization = organization_for(request, org, Need.READ_CONFIGURATION)
        return Response(
            {"oidcIssuers": [issuer_json(i) for i in selectors.issuers_of(organization)]}
        )

    @extend_schema(
        request=IssuerRegistrationSerializer,
        responses={201: IssuerSerializer},
        operation_id="registerOidcIssuer",
    )
    def post(self, request: Request, org: str) -> Response:
        organization = organization_for(request, org, Need.ADMIN)
        data = json_object(request)
        issuer = issuer_register(
            organization=organization,
            url=data.get("url"),
            name=data.get("name"),
            thumbprints=data.get("thumbprints"),
            jwks=data.get("jwks"),
            max_expiration=data.get("maxExpiration"),
            audiences=data.get("audiences"),
            algorithms=data.get("algorithms"),
            single_use=data.get("singleUse") is True,
            outbound=services.web_outbound(organization),
        )
        return Response(issuer_json(issuer, detail=True), status=201)


class IssuerDetailApi(APIView):
    """`GET|PATCH|DELETE /api/orgs/{org}/oidc/issuers/{issuerId}`."""

    @extend_schema(responses=IssuerSerializer, operation_id="getOidcIssuer")
    def get(self, request: Request, org: str, issuer_id: str) -> Response:
        issuer = _issuer(request, org, issuer_id, Need.READ_CONFIGURATION)
        return Response(issuer_json(issuer, detail=True))

    @extend_schema(
        request=IssuerUpdateSerializer,
        responses=IssuerSerializer,
        operation_id="updateOidcIssuer",
    )
    def patch(self, request: Request, org: str, issuer_id: str) -> Response:
        """Pulumi's update; ours: `enabled`, and `revokeTokens: true` with `enabled: false`
        revokes the tokens the issuer minted in the same transaction (count in
        `X-Revoked-Tokens`)."""
        issuer = _issuer(request, org, issuer_id, Need.ADMIN)
        data = json_object(request)
        revoke = retirement.clean_revoke_option(data)
        issuer, revoked = retirement.issuer_update_revoking(
            issuer=issuer,
            data=data,
            revoke=revoke,
            outbound=services.web_outbound(issuer.organization),
            by=principal_of(request).user,
        )
        return Response(issuer_json(issuer, detail=True), headers={REVOKED_HEADER: str(revoked)})

    @extend_schema(responses={204: None}, operation_id="deleteOidcIssuer")
    def delete(self, request: Request, org: str, issuer_id: str) -> Response:
        """Delete the issuer and revoke every token it minted (and the tokens created with
        them) in one transaction: 204 as Pulumi answers, the count in `X-Revoked-Tokens`.
        `GET` shows the count beforehand (`activeTokens`)."""
        issuer = _issuer(request, org, issuer_id, Need.ADMIN)
        revoked = retirement.issuer_delete(issuer=issuer, by=principal_of(request).user)
        return Response(status=204, headers={REVOKED_HEADER: str(revoked)})


class RegenerateThumbprintsApi(APIView):
    """`POST /api/orgs/{org}/oidc/issuers/{issuerId}/regenerate-thumbprints`."""

    @extend_schema(request=None, responses=IssuerSerializer, operation_id="regenerateThumbprints")
    def post(self, request: Request, org: str, issuer_id: str) -> Response:
        issuer = _issuer(request, org, issuer_id, Need.ADMIN)
        issuer = services.issuer_regenerate_thumbprints(
            issuer=issuer, outbound=services.web_outbound(issuer.organization)
        )
        return Response(issuer_json(issuer, detail=True))
