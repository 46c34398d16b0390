"""Policy API (Pulumi paths and shapes) plus our simulate, replay, versions and rollback."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from exchange import simulation
from kernel.errors import BadRequest, NotFound
from kernel.wire import iso_time, json_object
from policies import selectors, services
from policies.models import AuthPolicy
from policies.validation import LintWarning
from tokens.principal import principal_of
from trustportal.access import Need, organization_for


def policy_json(policy: AuthPolicy, warnings: list[LintWarning] | None = None) -> dict[str, Any]:
    if warnings is None:
        warnings = services.policy_lint(policy=policy, definitions=policy.definitions)
    return {
        "id": str(policy.pk),
        "version": policy.version,
        "created": iso_time(policy.created),
        "modified": iso_time(policy.modified),
        "policies": policy.definitions,
        "issuerId": str(policy.issuer_id),
        "warnings": [{"path": w.path, "code": w.code, "message": w.message} for w in warnings],
    }


def _policy(request: Request, org: str, policy_id: str, need: Need) -> AuthPolicy:
    organization = organization_for(request, org, need)
    policy = selectors.policy_of(organization, policy_id)
    if policy is None:
        raise NotFound(f"Policy '{policy_id}' not found.")
    return policy


def _if_match(request: Request) -> int | None:
    raw = request.headers.get("If-Match", "").strip().strip('"').removeprefix("W/").strip('"')
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit()):
        raise BadRequest("If-Match must be the policy version you last read.")
    return int(raw)


def _actor(request: Request) -> dict[str, Any]:
    principal = principal_of(request)
    token = principal.token
    return {"by": principal.user, "by_token": f"{token.prefix}… ({token.name or token.token_type})"}


class PolicySerializer(serializers.Serializer[Any]):
    id = serializers.CharField()
    version = serializers.IntegerField()
    created = serializers.CharField()
    modified = serializers.CharField()
    policies = serializers.ListField(child=serializers.DictField())
    issuerId = serializers.CharField()
    warnings = serializers.ListField(child=serializers.DictField())


class PolicyUpdateSerializer(serializers.Serializer[Any]):
    policies = serializers.ListField(child=serializers.DictField())


class SimulateSerializer(serializers.Serializer[Any]):
    claims = serializers.DictField(required=False, help_text="the claims to evaluate, or")
    token = serializers.CharField(required=False, help_text="a JWT whose claims to evaluate")
    verifySignature = serializers.BooleanField(required=False)
    tokenType = serializers.CharField(required=False)
    scope = serializers.CharField(required=False)
    policies = serializers.ListField(
        child=serializers.DictField(), required=False, help_text="a draft instead of the policy"
    )


class ReplaySerializer(serializers.Serializer[Any]):
    policies = serializers.ListField(child=serializers.DictField())
    limit = serializers.IntegerField(required=False, help_text="the last N exchanges")


class PolicyForIssuerApi(APIView):
    """`GET /api/orgs/{org}/auth/policies/oidcissuers/{issuerId}`."""

    @extend_schema(responses=PolicySerializer, operation_id="getAuthPolicy")
    def get(self, request: Request, org: str, issuer_id: str) -> Response:
        organization = organization_for(request, org, Need.READ_CONFIGURATION)
        policy = selectors.policy_for_issuer(organization, issuer_id)
        if policy is None:
            raise NotFound(f"Issuer '{issuer_id}' not found.")
        return Response(policy_json(policy))


class PolicyApi(APIView):
    """`PATCH /api/orgs/{org}/auth/policies/{policyId}` (`If-Match: <version>` → 412 if stale)."""

    @extend_schema(
        request=PolicyUpdateSerializer, responses=PolicySerializer, operation_id="updateAuthPolicy"
    )
    def patch(self, request: Request, org: str, policy_id: str) -> Response:
        policy = _policy(request, org, policy_id, Need.ADMIN)
        body = json_object(request)
        if "policies" not in body:
            raise BadRequest('The body needs "policies": the full ordered list of definitions.')
        policy, warnings = services.policy_update(
            policy=policy,
            definitions=body["policies"],
            expected_version=_if_match(request),
            **_actor(request),
        )
        return Response(policy_json(policy, warnings))


class SimulateApi(APIView):
    """`POST …/auth/policies/{policyId}/simulate`: claims or a token, current or draft policy."""

    @extend_schema(
        request=SimulateSerializer, responses=OpenApiTypes.OBJECT, operation_id="simulateAuthPolicy"
    )
    def post(self, request: Request, org: str, policy_id: str) -> Response:
        policy = _policy(request, org, policy_id, Need.READ_CONFIGURATION)
        body = json_object(request)
        result = simulation.simulate(
            policy=policy,
            claims=body.get("claims"),
            token=body.get("token"),
            check_signature=body.get("verifySignature") is True,
            token_type=body.get("tokenType", "organization"),
            scope=body.get("scope"),
            draft=body.get("policies"),
            now=timezone.now(),
        )
        return Response(result)


class ReplayApi(APIView):
    """`POST …/auth/policies/{policyId}/replay`: a draft against the last N real exchanges."""

    @extend_schema(
        request=ReplaySerializer, responses=OpenApiTypes.OBJECT, operation_id="replayAuthPolicy"
    )
    def post(self, request: Request, org: str, policy_id: str) -> Response:
        policy = _policy(request, org, policy_id, Need.READ_CONFIGURATION)
        body = json_object(request)
        if "policies" not in body:
            raise BadRequest('The body needs "policies": the draft definitions to replay.')
        return Response(
            simulation.replay(
                policy=policy,
                draft=body["policies"],
                limit=body.get("limit", simulation.REPLAY_DEFAULT),
            )
        )


class VersionListApi(APIView):
    """`GET …/auth/policies/{policyId}/versions`: every version, newest first."""

    @extend_schema(responses=OpenApiTypes.OBJECT, operation_id="listAuthPolicyVersions")
    def get(self, request: Request, org: str, policy_id: str) -> Response:
        policy = _policy(request, org, policy_id, Need.READ_CONFIGURATION)
        return Response(
            {
                "versions": [
                    {
                        "version": v.version,
                        "created": iso_time(v.created),
                        "createdBy": v.created_by.get_username() if v.created_by else "",
                        "createdByToken": v.created_by_token,
                        "note": v.note,
                        "policies": v.definitions,
                    }
                    for v in selectors.policy_versions(policy)
                ]
            }
        )


class RollbackApi(APIView):
    """`POST …/auth/policies/{policyId}/versions/{version}/rollback`: save it as a new version."""

    @extend_schema(request=None, responses=PolicySerializer, operation_id="rollbackAuthPolicy")
    def post(self, request: Request, org: str, policy_id: str, version: int) -> Response:
        policy = _policy(request, org, policy_id, Need.ADMIN)
        policy, warnings = services.policy_rollback(
            policy=policy, version=version, **_actor(request)
        )
        return Response(policy_json(policy, warnings))
