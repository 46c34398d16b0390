"""API views of the tokens app: who am I, the exchange history, access tokens."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from kernel.errors import BadRequest, Forbidden, NotFound
from kernel.wire import iso_time, json_object
from portal.tokens.export import EXPORT_FORMATS, streaming_export
from portal.tokens.schema import EXCHANGE_FILTERS
from tokens import services
from tokens.errors import TokenInvalid
from tokens.export import event_json
from tokens.filters import (
    FilterError,
    cursor_from,
    event_filters_from,
    limit_from,
    token_filters_from,
)
from tokens.models import AccessToken, Permission, TokenType
from tokens.principal import Principal, principal_of
from tokens.selectors import (
    event_for_token,
    event_of,
    events_matching,
    events_page,
    keyset_page,
    last_used,
    personal_tokens_of,
    revocation_preview,
    token_of,
    token_status,
    tokens_matching,
)
from trustportal.access import Need, organization_for
from trustportal.models import Organization, User
from trustportal.selectors import organizations_for_user

T = TypeVar("T")


def _organizations(principal: Principal) -> list[Organization]:
    token = principal.token
    if token.organization is not None:
        return [token.organization]
    user = principal.user
    return list(organizations_for_user(user)) if user is not None else []


class CurrentUserSerializer(serializers.Serializer[Any]):
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


class CurrentUserApi(APIView):
    """`GET /api/user`: the identity behind the token, in the shape the pulumi CLI reads."""

    @extend_schema(responses=CurrentUserSerializer, operation_id="getCurrentUser")
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


# --- shared -------------------------------------------------------------------------------------
def _unix(value: datetime | None) -> int:
    """Pulumi's token times: Unix seconds, 0 for never."""
    return int(value.timestamp()) if value is not None else 0


def _params(request: Request) -> dict[str, str]:
    return request.query_params.dict()



def _parsed(parse: Callable[[Mapping[str, Any]], T], params: Mapping[str, Any]) -> T:
    try:
        return parse(params)
    except FilterError as exc:
        raise BadRequest(str(exc)) from None


def _expiry(value: Any) -> datetime | None:
    """Pulumi's `expires`: Unix seconds, 0 or absent for never."""
    if value in (None, 0, "0", ""):
        return None
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
        raise TokenInvalid("expires must be Unix seconds (0 for never).", "expires")
    try:
        return datetime.fromtimestamp(int(value), tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise TokenInvalid("expires is out of range.", "expires") from None


def token_json(
    token: AccessToken, *, now: datetime, used: datetime | None = None
) -> dict[str, Any]:
    """Pulumi's AccessToken shape (`lastUsed`/`expires` in Unix seconds, 0 = never) plus ours.

    `used` is the last use counting the usage buffer (`selectors.last_used`), when known."""
    return {
        "id": str(token.pk),
        "name": token.name,
        "description": token.description,
        "created": iso_time(token.created),
        "lastUsed": _unix(used or token.last_used),
        "expires": _unix(token.expires),
        "admin": token.token_type == TokenType.ORGANIZATION
        and token.permission == Permission.ADMIN,
        "createdBy": token.created_by.get_username() if token.created_by is not None else "",
        "type": token.token_type,
        "prefix": token.prefix,
        "permission": token.permission or None,
        "team": token.team.name if token.team is not None else None,
        "runner": token.runner.name if token.runner is not None else None,
        "user": token.user.get_username() if token.user is not None else None,
        "status": token_status(token, now),
        "revoked": (
            {
                "at": iso_time(token.revoked_at),
                "by": token.revoked_by.get_username() if token.revoked_by is not None else None,
                "reason": token.revoked_reason,
            }
            if token.revoked_at is not None
            else None
        ),
        "issuerId": str(token.issuer_id) if token.issuer_id else None,
        "policyId": str(token.policy_id) if token.policy_id else None,
        "policyVersion": token.policy_version,
        "subject": token.subject or None,
        "parentId": str(token.parent_id) if token.parent_id else None,
    }


TOKEN_RELATED = ("team", "runner", "user", "created_by", "revoked_by")


class TokenSerializer(serializers.Serializer[Any]):
    id = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    created = serializers.CharField()
    lastUsed = serializers.IntegerField()
    expires = serializers.IntegerField()
    admin = serializers.BooleanField()
    createdBy = serializers.CharField()
    type = serializers.CharField()
    prefix = serializers.CharField()
    status = serializers.CharField()
    subject = serializers.CharField(allow_null=True)
    parentId = serializers.CharField(allow_null=True, help_text="the token that created it")


class TokenListSerializer(serializers.Serializer[Any]):
    tokens = TokenSerializer(many=True)
    continuationToken = serializers.CharField(allow_null=True)


class CreateOrgTokenSerializer(serializers.Serializer[Any]):
    name = serializers.CharField()
    description = serializers.CharField(required=False)
    expires = serializers.IntegerField(required=False, help_text="Unix seconds; 0: never")
    admin = serializers.BooleanField(required=False)
    type = serializers.ChoiceField(choices=["organization", "team", "runner"], required=False)
    team = serializers.CharField(required=False)
    runner = serializers.CharField(required=False)


class CreatePersonalTokenSerializer(serializers.Serializer[Any]):
    description = serializers.CharField(required=False)
    expires = serializers.IntegerField(required=False, help_text="Unix seconds; 0: never")


class RevokeByFilterSerializer(serializers.Serializer[Any]):
    issuer = serializers.UUIDField(required=False)
    policy = serializers.UUIDField(required=False)
    version = serializers.IntegerField(required=False)
    definition = serializers.IntegerField(required=False)
    subject = serializers.CharField(required=False, help_text="pattern")
    repository = serializers.CharField(required=False, help_text="pattern")
    type = serializers.CharField(required=False)
    since = serializers.CharField(required=False)
    until = serializers.CharField(required=False)
    reason = serializers.CharField(required=False)
    dryRun = serializers.BooleanField(required=False)
    upto = serializers.CharField(required=False, help_text="the dry run's upto")


class RevokeResultSerializer(serializers.Serializer[Any]):
    count = serializers.IntegerField()
    dryRun = serializers.BooleanField()
    upto = serializers.CharField(allow_null=True)


class CreatedTokenSerializer(serializers.Serializer[Any]):
    id = serializers.CharField()
    tokenValue = serializers.CharField()


def _created(token: AccessToken, plaintext: str) -> Response:
    return Response(
        {"id": str(token.pk), "tokenValue": plaintext},
        status=201,
        headers={"Cache-Control": "no-store"},
    )


def _token_page(request: Request, tokens: QuerySet[AccessToken], now: datetime) -> Response:
    params = _params(request)
    if "maxResults" in params and "limit" not in params:
        params["limit"] = params["maxResults"]
    before = _parsed(lambda p: cursor_from(p, "before", "continuationToken"), params)
    limit = _parsed(lambda p: limit_from(p, default=100, maximum=500), params)
    page = keyset_page(tokens.select_related(*TOKEN_RELATED), before=before, limit=limit)
    used = last_used(page.rows)
    return Response(
        {
            "tokens": [token_json(t, now=now, used=used[t.pk]) for t in page.rows],
            "continuationToken": str(page.next_cursor) if page.next_cursor else None,
        }
    )


# --- exchange history ---------------------------------------------------------------------------
class ExchangeSerializer(serializers.Serializer[Any]):
    id = serializers.CharField()
    created = serializers.CharField()
    requestId = serializers.CharField()
    decision = serializers.ChoiceField(choices=["allow", "deny"])
    reason = serializers.CharField()
    error = serializers.CharField(allow_null=True)
    issuerId = serializers.CharField(allow_null=True)
    sub = serializers.CharField()
    repository = serializers.CharField(allow_null=True)
    requestedTokenType = serializers.CharField(allow_null=True)
    policyId = serializers.CharField(allow_null=True)
    policyVersion = serializers.IntegerField(allow_null=True)
    tokenId = serializers.CharField(allow_null=True)
    claims = serializers.DictField()
    trace = serializers.ListField(child=serializers.DictField(), required=False)


class ExchangeListSerializer(serializers.Serializer[Any]):
    exchanges = ExchangeSerializer(many=True)
    nextCursor = serializers.CharField(allow_null=True)


class ExchangeListApi(APIView):
    """`GET /api/orgs/{org}/oidc/exchanges`: the history, filtered, newest first, by cursor.

    Filters as on the history page (`issuer`, `decision`, `reason`, `subject`, `repository`,
    `type`, `requestId`, `since`, `until`); `before=<nextCursor>` continues; `limit` 1..500
    (default 100).
    """

    @extend_schema(
        responses=ExchangeListSerializer,
        parameters=EXCHANGE_FILTERS,
        operation_id="listOidcExchanges",
    )
    def get(self, request: Request, org: str) -> Response:
        organization = organization_for(request, org, Need.READ_CONFIGURATION)
        params = _params(request)
        filters = _parsed(event_filters_from, params)
        before = _parsed(lambda p: cursor_from(p, "before"), params)
        limit = _parsed(lambda p: limit_from(p, default=100, maximum=500), params)
        page = events_page(organization=organization, filters=filters, before=before, limit=limit)
        return Response(
            {
                "exchanges": [event_json(e, trace=False) for e in page.rows],
                "nextCursor": str(page.next_cursor) if page.next_cursor else None,
            }
        )


class ExchangeDetailApi(APIView):
    """`GET /api/orgs/{org}/oidc/exchanges/{id}`: one attempt with its claims and trace."""

    @extend_schema(responses=ExchangeSerializer, operation_id="getOidcExchange")
    def get(self, request: Request, org: str, event_id: str) -> Response:
        organization = organization_for(request, org, Need.READ_CONFIGURATION)
        event = event_of(organization, event_id)
        if event is None:
            raise NotFound(f"Exchange '{event_id}' not found.")
        return Response(event_json(event))


class ExchangeExportApi(APIView):
    """`GET /api/orgs/{org}/oidc/exchanges/export.csv|.jsonl`: the filtered history, streamed."""

    @extend_schema(
        responses={(200, "application/x-ndjson"): str}, operation_id="exportOidcExchanges"
    )
    def get(self, request: Request, org: str, fmt: str) -> StreamingHttpResponse:
        organization = organization_for(request, org, Need.READ_CONFIGURATION)
        if fmt not in EXPORT_FORMATS:
            raise NotFound("Export as .csv or .jsonl.")
        filters = _parsed(event_filters_from, _params(request))
        events = events_matching(organization=organization, filters=filters)
        return streaming_export(events, fmt=fmt, filename=f"exchanges-{organization.login}")


# --- organization tokens ------------------------------------------------------------------------
class OrgTokenListApi(APIView):
    """`GET|POST /api/orgs/{org}/tokens`: list (admins, auditors) and create (admins)."""

    @extend_schema(responses=TokenListSerializer, operation_id="listOrgTokens")
    def get(self, request: Request, org: str) -> Response:
        organization = organization_for(request, org, Need.READ_CONFIGURATION)
        now = timezone.now()
        filters = _parsed(token_filters_from, _params(request))
        tokens = tokens_matching(organization=organization, filters=filters, now=now)
        return _token_page(request, tokens, now)

    @extend_schema(
        request=CreateOrgTokenSerializer,
        responses={201: CreatedTokenSerializer},
        operation_id="createOrgToken",
    )
    def post(self, request: Request, org: str) -> Response:
        """Create a long-lived token (Pulumi body `name`, `description`, `expires`, `admin`).

        Ours: `type` organization (default) / team / runner with `team` or `runner`. The new
        token is linked to the calling token (`parentId`) and expires no later than it: an
        `expires` beyond the caller's expiry, or 0 (never) from a caller that expires, is
        clamped to the caller's expiry, as the exchange clamps lifetimes.
        """
        organization = organization_for(request, org, Need.ADMIN)
        data = json_object(request)
        token, plaintext = services.token_create_for_organization(
            organization=organization,
            token_type=str(data.get("type") or TokenType.ORGANIZATION),
            name=str(data.get("name") or ""),
            description=str(data.get("description") or ""),
            permission=Permission.ADMIN if data.get("admin") is True else Permission.STANDARD,
            team_name=str(data.get("team") or ""),
            runner_name=str(data.get("runner") or ""),
            expires=_expiry(data.get("expires")),
            created_by=principal_of(request).user,
            parent=principal_of(request).token,
        )
        return _created(token, plaintext)


class OrgTokenApi(APIView):
    """`GET|DELETE /api/orgs/{org}/tokens/{id}`: one token; DELETE revokes it (204)."""

    def _token(self, request: Request, org: str, token_id: str, need: Need) -> AccessToken:
        organization = organization_for(request, org, need)
        token = token_of(organization, token_id)
        if token is None:
            raise NotFound(f"Token '{token_id}' not found.")
        return token

    @extend_schema(responses=TokenSerializer, operation_id="getOrgToken")
    def get(self, request: Request, org: str, token_id: str) -> Response:
        token = self._token(request, org, token_id, Need.READ_CONFIGURATION)
        body = token_json(token, now=timezone.now(), used=last_used([token])[token.pk])
        event = event_for_token(token)
        body["exchangeId"] = str(event.pk) if event is not None else None
        return Response(body)

    @extend_schema(responses={204: None}, operation_id="deleteOrgToken")
    def delete(self, request: Request, org: str, token_id: str) -> Response:
        token = self._token(request, org, token_id, Need.ADMIN)
        reason = _params(request).get("reason") or "revoked through the API"
        services.token_revoke(token=token, by=principal_of(request).user, reason=reason)
        return Response(status=204)


class OrgTokenRevokeApi(APIView):
    """`POST /api/orgs/{org}/tokens/revoke`: revoke every active token the filters select.

    Body: the token filters, `reason`, and `dryRun: true` to preview (`count`, `upto`). Send the
    preview's `upto` back to revoke exactly the previewed set. `count` includes the active
    tokens created with the selected ones, which are revoked with them.
    """

    @extend_schema(
        request=RevokeByFilterSerializer,
        responses=RevokeResultSerializer,
        operation_id="revokeOrgTokens",
    )
    def post(self, request: Request, org: str) -> Response:
        organization = organization_for(request, org, Need.ADMIN)
        data = json_object(request)
        filters = _parsed(token_filters_from, data)
        upto = _parsed(lambda p: cursor_from(p, "upto"), data)
        if not filters.selects_tokens():
            raise BadRequest("Give at least one filter besides status (e.g. issuer or since).")
        now = timezone.now()
        if data.get("dryRun") is True:
            preview = revocation_preview(organization=organization, filters=filters, now=now)
            count, upto = preview.total, preview.upto
        else:
            count = services.tokens_revoke_matching(
                organization=organization,
                filters=filters,
                by=principal_of(request).user,
                reason=str(data.get("reason") or "revoked by filter through the API"),
                upto=upto,
                now=now,
            )
        return Response(
            {
                "count": count,
                "dryRun": data.get("dryRun") is True,
                "upto": str(upto) if upto else None,
            }
        )


# --- personal tokens ----------------------------------------------------------------------------
def _calling_user(request: Request) -> User:
    user = principal_of(request).user
    if user is None:
        raise Forbidden("This needs a personal access token.")
    return user


class UserTokenListApi(APIView):
    """`GET|POST /api/user/tokens`: the caller's personal tokens (Pulumi shapes)."""

    @extend_schema(responses=TokenListSerializer, operation_id="listPersonalTokens")
    def get(self, request: Request) -> Response:
        user = _calling_user(request)
        return _token_page(request, personal_tokens_of(user), timezone.now())

    @extend_schema(
        request=CreatePersonalTokenSerializer,
        responses={201: CreatedTokenSerializer},
        operation_id="createPersonalToken",
    )
    def post(self, request: Request) -> Response:
        user = _calling_user(request)
        data = json_object(request)
        token, plaintext = services.token_create_personal(
            user=user,
            description=str(data.get("description") or ""),
            expires=_expiry(data.get("expires")),
            parent=principal_of(request).token,
        )
        return _created(token, plaintext)


class UserTokenApi(APIView):
    """`DELETE /api/user/tokens/{id}`: revoke one of the caller's personal tokens (204)."""

    @extend_schema(responses={204: None}, operation_id="deletePersonalToken")
    def delete(self, request: Request, token_id: str) -> Response:
        user = _calling_user(request)
        key = int(token_id) if token_id.isascii() and token_id.isdigit() else 0
        token = personal_tokens_of(user).filter(pk=key)
        found = token.first()
        if found is None:
            raise NotFound(f"Token '{token_id}' not found.")
        services.token_revoke(token=found, by=user, reason="revoked by its owner")
        return Response(status=204)
