"""The ESC-compatible environments API under `/api/esc/environments` (Pulumi paths and shapes).

Thin views: each resolves the caller (`organization_for` + `access.actor_for_principal`), checks
the level the operation needs, calls one service or selector and shapes the answer the way
`pulumi-esc-sdk` expects. Definitions travel as YAML (`application/x-yaml`) with `ETag` and
`Pulumi-ESC-Revision` headers; everything else is JSON; errors are `{"code","message"}`.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_variables
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.parsers import BaseParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from environments import access, definitions, opens, rotations, selectors, syntax
from environments.access import Actor
from environments.durations import parse_duration
from environments.errors import DefinitionInvalid, EnvironmentInvalid
from environments.models import Environment, Level, Revision
from kernel.clientaddr import client_ip
from kernel.errors import BadRequest, Forbidden, NotFound
from kernel.wire import iso_time, json_object
from portal.environments import schema
from portal.environments.oidc_views import request_issuer
from portal.negotiation import JsonWhateverAccept
from tokens.models import TokenType
from tokens.principal import principal_of
from trustportal.access import Need, organization_for
from trustportal.models import Organization
from trustportal.selectors import organizations_for_user

PAGE_SIZE = 100
MAX_REVISIONS_PAGE = 500
YAML = "application/x-yaml; charset=utf-8"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_MAX_INT = 2**31 - 1  # what every database stores in an integer column


class AnyAccept(JsonWhateverAccept):
    """JSON whatever `Accept` says, and the view's first parser whatever the body's type."""

    def select_parser(self, request: Request, parsers: Iterable[BaseParser]) -> BaseParser | None:
        return next(iter(parsers), None)


class EscApi(APIView):
    """Base of every ESC view."""

    content_negotiation_class = AnyAccept


# --- shapes -------------------------------------------------------------------------------------
def time_text(value: datetime | None) -> str:
    return iso_time(value) or ""


def environment_json(environment: Environment) -> dict[str, Any]:
    """Pulumi's `OrgEnvironment`."""
    return {
        "organization": environment.organization.login,
        "project": environment.project,
        "name": environment.name,
        "created": time_text(environment.created),
        "modified": time_text(environment.modified),
    }


def revision_json(revision: Revision, tags: list[str]) -> dict[str, Any]:
    """Pulumi's `EnvironmentRevision`."""
    return {
        "number": revision.number,
        "created": time_text(revision.created),
        "creatorLogin": revision.creator_login,
        "creatorName": revision.creator_name,
        "tags": tags,
    }


def _definition_response(
    environment: Environment, revision: Revision, text: str, *, secret: bool = False
) -> HttpResponse:
    """A definition as YAML with `ETag` and `Pulumi-ESC-Revision` (no-store if decrypted)."""
    response = HttpResponse(text, content_type=YAML)
    response["ETag"] = f'"{revision.number}"'
    response["Pulumi-ESC-Revision"] = str(revision.number)
    if secret:
        for name, value in NO_STORE.items():
            response[name] = value
    return response


# --- inputs -------------------------------------------------------------------------------------
def _caller(request: Request, org: str) -> tuple[Organization, Actor]:
    """The organization in the URL (404 if unreachable) and the caller's actor in it."""
    organization = organization_for(request, org, Need.ANY)
    return organization, access.actor_for_principal(principal_of(request), organization)


def environment_for(
    request: Request, org: str, project: str, name: str, need: str
) -> tuple[Environment, Actor]:
    """The environment, if the caller holds `need` on it: 404 when they hold nothing, else 403."""
    organization, actor = _caller(request, org)
    environment = selectors.environment_named(organization.pk, project, name)
    level = access.level_of(actor, environment) if environment is not None else None
    if environment is None or level is None:
        raise NotFound(f"Environment '{project}/{name}' not found.")
    if not access.allows(level, need):
        raise Forbidden(f"This needs `{need}` permission on the environment; you have `{level}`.")
    return environment, actor


def _version(environment: Environment, version: str | None) -> Revision:
    """The revision a version names (latest when None), or 404."""
    revision = (
        selectors.revision_for_version(environment, version)
        if version is not None
        else selectors.revision_numbered(environment, environment.revision)
    )
    if revision is None:
        raise NotFound(f"Version '{version}' of this environment does not exist.")
    return revision



def _definition_text(request: Request) -> str:
    """The raw YAML body, whatever content type the client declared (the esc CLI says JSON)."""
    limit = syntax.MAX_DEFINITION_BYTES
    too_big = EnvironmentInvalid(f"The definition is larger than {limit // 1024} KiB.")
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise too_big
    try:
        raw = request.body
    except RequestDataTooBig as exc:
        raise too_big from exc
    if len(raw) > limit:
        raise too_big
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EnvironmentInvalid("The definition must be UTF-8 text.") from exc


def _expected_revision(request: Request) -> int | None:
    """The revision named by `If-Match` (or `ETag`, which the esc CLI sends), if any."""
    raw = (request.headers.get("If-Match") or request.headers.get("ETag") or "").strip()
    if not raw or raw == "*":
        return None
    raw = raw.removeprefix("W/").strip().strip('"')
    if not (raw.isascii() and raw.isdigit()):
        raise BadRequest("If-Match must be the ETag you read (the revision number).")
    return int(raw)


def int_param(
    request: Request, name: str, *, default: int | None = None, minimum: int = 0
) -> int | None:
    """A whole-number query parameter (ASCII digits, `minimum`..2**31-1), or `default`."""
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    assert raw is not None
    if not (raw.isascii() and raw.isdigit()) or not minimum <= int(raw) <= _MAX_INT:
        raise BadRequest(f"`{name}` must be a whole number from {minimum} to {_MAX_INT}.")
    return int(raw)


def _request_info(request: Request) -> definitions.RequestInfo:
    return definitions.RequestInfo(
        request_id=str(getattr(request, "request_id", "") or ""),
        client_ip=client_ip(request._request),
        user_agent=request.headers.get("User-Agent", ""),
    )


def _encode_page(environment: Environment) -> str:
    key = [environment.organization.login, environment.project, environment.name]
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def _decode_page(token: str | None) -> selectors.PageKey | None:
    if not token:
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise BadRequest("The continuationToken is not one this server gave out.") from exc
    if not (
        isinstance(key, list)
        and len(key) == 3
        and all(isinstance(k, str) and k.isprintable() for k in key)
    ):
        raise BadRequest("The continuationToken is not one this server gave out.")
    return key[0], key[1], key[2]


def _page(request: Request, actors: list[Actor]) -> Response:
    """One page of environments for the actors, with `nextToken` when more follow."""
    after = _decode_page(request.query_params.get("continuationToken"))
    found = selectors.environments_visible(actors, after=after, limit=PAGE_SIZE + 1)
    page = found[:PAGE_SIZE]
    following = _encode_page(page[-1]) if len(found) > PAGE_SIZE else ""
    return Response({"environments": [environment_json(e) for e in page], "nextToken": following})


# --- environments -------------------------------------------------------------------------------
class AllEnvironmentsApi(EscApi):
    """`GET /api/esc/environments`: every environment the caller may read, in all its orgs."""

    @extend_schema(
        request=None, responses=schema.EnvironmentListSerializer,
        parameters=[schema.CONTINUATION],
        operation_id="listAllEnvironments",
    )
    def get(self, request: Request) -> Response:
        principal = principal_of(request)
        token = principal.token
        if token.organization_id is not None:
            organizations = [token.organization]
        elif token.token_type == TokenType.PERSONAL and token.user is not None:
            organizations = list(organizations_for_user(token.user))
        else:
            organizations = []
        wanted = request.query_params.get("organization")
        actors = [
            access.actor_for_principal(principal, organization)
            for organization in organizations
            if organization is not None and (not wanted or organization.login == wanted)
        ]
        return _page(request, actors)


class OrgEnvironmentsApi(EscApi):
    """`GET|POST /api/esc/environments/{org}`: list (paged) or create `{"project","name"}`."""

    @extend_schema(
        request=None, responses=schema.EnvironmentListSerializer,
        parameters=[schema.CONTINUATION],
        operation_id="listEnvironments",
    )
    def get(self, request: Request, org: str) -> Response:
        _organization, actor = _caller(request, org)
        return _page(request, [actor])

    @extend_schema(
        request=schema.CreateEnvironmentSerializer, responses=schema.EnvironmentSerializer,
        operation_id="createEnvironment",
    )
    def post(self, request: Request, org: str) -> Response:
        organization, actor = _caller(request, org)
        if not actor.can_create:
            raise Forbidden("Creating environments needs an organization admin.")
        body = json_object(request)
        environment = definitions.environment_create(
            organization=organization,
            project=body.get("project", ""),
            name=body.get("name", ""),
            actor=actor,
        )
        return Response(environment_json(environment), status=200)


class CheckYamlApi(EscApi):
    """`POST /api/esc/environments/{org}/yaml/check`: evaluate a draft, secrets hidden."""

    @extend_schema(
        request=schema.YAML_REQUEST, responses=schema.CheckedSerializer,
        operation_id="checkEnvironmentYaml",
    )
    def post(self, request: Request, org: str) -> Response:
        _organization, actor = _caller(request, org)
        result = definitions.environment_check(actor=actor, text=_definition_text(request))
        if result.diagnostics:
            raise DefinitionInvalid(result.diagnostics)
        properties = {k: v.to_wire(reveal=False) for k, v in result.properties.items()}
        return Response({"properties": properties, "diagnostics": []})


class EnvironmentApi(EscApi):
    """`GET|HEAD|PATCH|DELETE /api/esc/environments/{org}/{project}/{env}`."""

    @extend_schema(request=None, responses=schema.YAML_RESPONSE, operation_id="getEnvironment")
    def get(self, request: Request, org: str, project: str, env: str) -> HttpResponse:
        environment, _actor = environment_for(request, org, project, env, Level.READ)
        revision = _version(environment, None)
        return _definition_response(environment, revision, revision.definition)

    @extend_schema(
        request=schema.YAML_REQUEST, responses=schema.UpdatedSerializer,
        operation_id="updateEnvironmentYaml",
    )
    def patch(self, request: Request, org: str, project: str, env: str) -> Response:
        environment, actor = environment_for(request, org, project, env, Level.WRITE)
        revision = definitions.environment_update(
            environment=environment,
            text=_definition_text(request),
            actor=actor,
            expected_revision=_expected_revision(request),
        )
        return Response(
            {"diagnostics": [], "revision": revision.number},
            headers={"ETag": f'"{revision.number}"', "Pulumi-ESC-Revision": str(revision.number)},
        )

    @extend_schema(request=None, responses={204: None}, operation_id="deleteEnvironment")
    def delete(self, request: Request, org: str, project: str, env: str) -> Response:
        environment, actor = environment_for(request, org, project, env, Level.READ)
        if not access.may_delete(actor, environment):
            level = access.level_of(actor, environment)
            raise Forbidden(
                f"This needs `admin` permission on the environment; you have `{level}`."
            )
        definitions.environment_delete(environment=environment)
        return Response(status=204)


class EnvironmentVersionApi(EscApi):
    """`GET …/versions/{version}`: the definition at a revision number or revision tag."""

    @extend_schema(
        request=None, responses=schema.YAML_RESPONSE,
        operation_id="getEnvironmentAtVersion",
    )
    def get(self, request: Request, org: str, project: str, env: str, version: str) -> HttpResponse:
        environment, _actor = environment_for(request, org, project, env, Level.READ)
        revision = _version(environment, version)
        return _definition_response(environment, revision, revision.definition)


class DecryptApi(EscApi):
    """`GET …/decrypt` (and `…/versions/{version}/decrypt`): secrets in plaintext, admins only."""

    @extend_schema(request=None, responses=schema.YAML_RESPONSE, operation_id="decryptEnvironment")
    @method_decorator(sensitive_variables("text"))
    def get(
        self, request: Request, org: str, project: str, env: str, version: str | None = None
    ) -> HttpResponse:
        environment, actor = environment_for(request, org, project, env, Level.ADMIN)
        revision = _version(environment, version)
        text = opens.environment_decrypt(
            environment=environment,
            revision=revision,
            actor=actor,
            request=_request_info(request),
        )
        return _definition_response(environment, revision, text, secret=True)


class VersionDecryptApi(DecryptApi):
    """`GET …/versions/{version}/decrypt` (its own operation id in the schema)."""

    @extend_schema(
        request=None, responses=schema.YAML_RESPONSE,
        operation_id="decryptEnvironmentAtVersion",
    )
    def get(
        self, request: Request, org: str, project: str, env: str, version: str | None = None
    ) -> HttpResponse:
        return super().get(request, org, project, env, version)


# --- open ---------------------------------------------------------------------------------------
class OpenApi(EscApi):
    """`POST …/open?duration=2h` (or `…/versions/{version}/open`) → `{"id": session}`."""

    @extend_schema(
        request=None, responses=schema.OpenedSerializer,
        parameters=[schema.DURATION],
        operation_id="openEnvironment",
    )
    def post(
        self, request: Request, org: str, project: str, env: str, version: str | None = None
    ) -> Response:
        environment, actor = environment_for(request, org, project, env, Level.OPEN)
        revision = _version(environment, version)
        raw = request.query_params.get("duration")
        try:
            duration = parse_duration(raw) if raw else None
        except ValueError as exc:
            raise BadRequest("duration is a Go duration such as 1h, 30m or 2h0m0s.") from exc
        session_id, _event = opens.environment_open(
            environment=environment,
            revision=revision,
            actor=actor,
            duration=duration,
            request=_request_info(request),
            issuer=request_issuer(request._request),
        )
        return Response({"id": session_id}, headers=NO_STORE)


class VersionOpenApi(OpenApi):
    """`POST …/versions/{version}/open` (its own operation id in the schema)."""

    @extend_schema(
        request=None, responses=schema.OpenedSerializer,
        parameters=[schema.DURATION],
        operation_id="openEnvironmentAtVersion",
    )
    def post(
        self, request: Request, org: str, project: str, env: str, version: str | None = None
    ) -> Response:
        return super().post(request, org, project, env, version)


class OpenSessionApi(EscApi):
    """`GET …/open/{id}` → `{"properties": {…}}`; `?property=a.b[0]` → that one `Value`."""

    @extend_schema(
        request=None, responses=OpenApiTypes.OBJECT,
        parameters=[schema.PROPERTY],
        operation_id="readOpenEnvironment",
    )
    @method_decorator(sensitive_variables("result", "found", "properties"))
    def get(self, request: Request, org: str, project: str, env: str, session: str) -> Response:
        environment, actor = environment_for(request, org, project, env, Level.OPEN)
        event = selectors.open_session(environment, session, now=timezone.now())
        if event is None:
            raise NotFound("No such open session, or it has expired.")
        result = opens.environment_read_open(
            environment=environment, event=event, actor=actor, session_id=session
        )
        wanted = request.query_params.get("property")
        if wanted is not None:
            try:
                accessors = syntax.parse_path(wanted)
            except ValueError as exc:
                raise BadRequest(f"property: {exc}") from exc
            found = result.value.lookup(accessors) if result.value is not None else None
            if found is None:
                raise NotFound(f"Property '{wanted}' not found.")
            return Response(found.to_wire(reveal=True), headers=NO_STORE)
        properties = {k: v.to_wire(reveal=True) for k, v in result.properties.items()}
        return Response({"properties": properties}, headers=NO_STORE)


class RotateApi(EscApi):
    """`POST …/rotate` `{"paths": ["a.b"]}` (optional): rotate `fn::rotate` calls; needs write.

    Answers Pulumi's `RotateEnvironmentResponse`: `{"secretRotationEvent": {…, "rotations"}}`.
    """

    @extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT,
                   operation_id="rotateEnvironment")
    def post(self, request: Request, org: str, project: str, env: str) -> Response:
        environment, actor = environment_for(request, org, project, env, Level.WRITE)
        paths = json_object(request).get("paths") if request.body.strip() else None
        if paths is not None and not (
            isinstance(paths, list) and all(isinstance(p, str) for p in paths)
        ):
            raise BadRequest("paths is a list of property paths such as db.password.")
        done = rotations.environment_rotate(environment=environment, actor=actor, paths=paths)
        event_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{environment.pk}/{done.revision.number}"))
        created = time_text(done.revision.created)
        rotated = [
            {
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{event_id}/{r.path}")),
                "environmentPath": rotations.relative_path(r.path),
                "status": "succeeded",
            }
            for r in done.rotated
        ]
        event: dict[str, Any] = {
            "id": event_id,
            "environmentId": str(environment.pk),
            "created": created,
            "preRotationRevision": done.before,
            "userID": actor.login,
            "completed": created,
            "status": "succeeded",
            "rotations": rotated,
        }
        if done.rotated:
            event["postRotationRevision"] = done.revision.number
        return Response({"secretRotationEvent": event})


# --- revisions and revision tags ----------------------------------------------------------------
class RevisionListApi(EscApi):
    """`GET …/versions?before=N&count=M`: revisions, newest first."""

    @extend_schema(
        request=None, responses=schema.RevisionSerializer(many=True),
        parameters=[schema.BEFORE, schema.COUNT],
        operation_id="listEnvironmentRevisions",
    )
    def get(self, request: Request, org: str, project: str, env: str) -> Response:
        environment, _actor = environment_for(request, org, project, env, Level.READ)
        count = min(int_param(request, "count", default=100) or 100, MAX_REVISIONS_PAGE)
        revisions = selectors.revisions_of(
            environment, before=int_param(request, "before"), count=count
        )
        tags = selectors.tag_names_by_revision(environment)
        return Response([revision_json(r, tags.get(r.number, [])) for r in revisions])
