"""The ESC API for revision tags (`…/versions/tags`) and environment tags (`…/tags`)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from environments import selectors, tagging
from environments.models import Environment, EnvironmentTag, Level, RevisionTag
from kernel.errors import BadRequest, NotFound
from kernel.wire import json_object
from portal.environments import schema
from portal.environments.api import EscApi, environment_for, int_param, time_text


def revision_tag_json(tag: RevisionTag) -> dict[str, Any]:
    """Pulumi's `EnvironmentRevisionTag`."""
    return {
        "name": tag.name,
        "revision": tag.revision,
        "created": time_text(tag.created),
        "modified": time_text(tag.modified),
        "editorLogin": tag.editor_login,
        "editorName": tag.editor_name,
    }


def latest_tag_json(environment: Environment) -> dict[str, Any]:
    """The implicit `latest` tag, shaped like a stored one."""
    latest = selectors.revision_numbered(environment, environment.revision)
    return {
        "name": selectors.LATEST,
        "revision": environment.revision,
        "created": time_text(environment.created),
        "modified": time_text(environment.modified),
        "editorLogin": latest.creator_login if latest else "",
        "editorName": latest.creator_name if latest else "",
    }


def environment_tag_json(tag: EnvironmentTag) -> dict[str, Any]:
    """Pulumi's `EnvironmentTag`."""
    return {
        "name": tag.name,
        "value": tag.value,
        "created": time_text(tag.created),
        "modified": time_text(tag.modified),
        "editorLogin": tag.editor_login,
        "editorName": tag.editor_name,
    }


class RevisionTagListApi(EscApi):
    """`GET|POST …/versions/tags`: list (`latest` included) or create `{name, revision}`."""

    @extend_schema(
        request=None, responses=schema.RevisionTagListSerializer,
        parameters=[schema.AFTER, schema.COUNT],
        operation_id="listEnvironmentRevisionTags",
    )
    def get(self, request: Request, org: str, project: str, env: str) -> Response:
        environment, _actor = environment_for(request, org, project, env, Level.READ)
        after = request.query_params.get("after") or ""
        count = int_param(request, "count", minimum=1)
        tags = [latest_tag_json(environment)] + [
            revision_tag_json(t) for t in selectors.revision_tags_of(environment)
        ]
        tags = sorted((t for t in tags if t["name"] > after), key=lambda t: str(t["name"]))
        following = ""
        if count is not None and len(tags) > count:
            tags = tags[:count]
            following = str(tags[-1]["name"])
        return Response({"tags": tags, "nextToken": following})

    @extend_schema(
        request=schema.CreateRevisionTagSerializer, responses={204: None},
        operation_id="createRevisionTag",
    )
    def post(self, request: Request, org: str, project: str, env: str) -> Response:
        environment, actor = environment_for(request, org, project, env, Level.WRITE)
        body = json_object(request)
        tagging.revision_tag_create(
            environment=environment,
            name=body.get("name"),
            revision=body.get("revision"),
            actor=actor,
        )
        return Response(status=204)


class RevisionTagApi(EscApi):
    """`GET|POST|PATCH|DELETE …/versions/tags/{tag}` (`latest` is read-only)."""

    def _tag(self, environment: Environment, tag: str) -> RevisionTag:
        if tag == selectors.LATEST:
            raise BadRequest("`latest` always names the newest revision; it cannot be changed.")
        found = selectors.revision_tag_named(environment, tag)
        if found is None:
            raise NotFound(f"Revision tag '{tag}' not found.")
        return found

    @extend_schema(
        request=None, responses=schema.RevisionTagSerializer,
        operation_id="getRevisionTag",
    )
    def get(self, request: Request, org: str, project: str, env: str, tag: str) -> Response:
        environment, _actor = environment_for(request, org, project, env, Level.READ)
        if tag == selectors.LATEST:
            return Response(latest_tag_json(environment))
        return Response(revision_tag_json(self._tag(environment, tag)))

    @extend_schema(
        request=schema.RevisionNumberSerializer, responses={204: None},
        operation_id="createNamedRevisionTag",
    )
    def post(self, request: Request, org: str, project: str, env: str, tag: str) -> Response:
        environment, actor = environment_for(request, org, project, env, Level.WRITE)
        body = json_object(request)
        tagging.revision_tag_create(
            environment=environment, name=tag, revision=body.get("revision"), actor=actor
        )
        return Response(status=204)

    @extend_schema(
        request=schema.RevisionNumberSerializer, responses={204: None},
        operation_id="updateRevisionTag",
    )
    def patch(self, request: Request, org: str, project: str, env: str, tag: str) -> Response:
        environment, actor = environment_for(request, org, project, env, Level.WRITE)
        found = self._tag(environment, tag)
        tagging.revision_tag_update(
            tag=found, revision=json_object(request).get("revision"), actor=actor
        )
        return Response(status=204)

    @extend_schema(request=None, responses={204: None}, operation_id="deleteRevisionTag")
    def delete(self, request: Request, org: str, project: str, env: str, tag: str) -> Response:
        environment, _actor = environment_for(request, org, project, env, Level.WRITE)
        tagging.revision_tag_delete(tag=self._tag(environment, tag))
        return Response(status=204)


# --- environment tags ---------------------------------------------------------------------------
class EnvironmentTagListApi(EscApi):
    """`GET|POST …/tags`: `{"tags": {name: tag}, "nextToken"}` or create `{name, value}`."""

    @extend_schema(
        request=None, responses=schema.EnvironmentTagListSerializer,
        parameters=[schema.AFTER, schema.COUNT],
        operation_id="listEnvironmentTags",
    )
    def get(self, request: Request, org: str, project: str, env: str) -> Response:
        environment, _actor = environment_for(request, org, project, env, Level.READ)
        count = int_param(request, "count", minimum=1)
        tags = selectors.environment_tags_of(
            environment,
            after=request.query_params.get("after"),
            count=count + 1 if count is not None else None,
        )
        following = ""
        if count is not None and len(tags) > count:
            tags = tags[:count]
            following = tags[-1].name
        return Response(
            {"tags": {t.name: environment_tag_json(t) for t in tags}, "nextToken": following}
        )

    @extend_schema(
        request=schema.CreateEnvironmentTagSerializer, responses=schema.EnvironmentTagSerializer,
        operation_id="createEnvironmentTag",
    )
    def post(self, request: Request, org: str, project: str, env: str) -> Response:
        environment, actor = environment_for(request, org, project, env, Level.WRITE)
        body = json_object(request)
        tag = tagging.environment_tag_create(
            environment=environment, name=body.get("name"), value=body.get("value"), actor=actor
        )
        return Response(environment_tag_json(tag))


class EnvironmentTagApi(EscApi):
    """`GET|PATCH|DELETE …/tags/{tag}`; PATCH takes `{"currentTag", "newTag"}`."""

    def _tag(self, environment: Environment, tag: str) -> EnvironmentTag:
        found = selectors.environment_tag_named(environment, tag)
        if found is None:
            raise NotFound(f"Tag '{tag}' not found.")
        return found

    @extend_schema(
        request=None, responses=schema.EnvironmentTagSerializer,
        operation_id="getEnvironmentTag",
    )
    def get(self, request: Request, org: str, project: str, env: str, tag: str) -> Response:
        environment, _actor = environment_for(request, org, project, env, Level.READ)
        return Response(environment_tag_json(self._tag(environment, tag)))

    @extend_schema(
        request=schema.UpdateEnvironmentTagSerializer, responses=schema.EnvironmentTagSerializer,
        operation_id="updateEnvironmentTag",
    )
    def patch(self, request: Request, org: str, project: str, env: str, tag: str) -> Response:
        environment, actor = environment_for(request, org, project, env, Level.WRITE)
        body = json_object(request)
        current = body.get("currentTag") if isinstance(body.get("currentTag"), dict) else {}
        new = body.get("newTag") if isinstance(body.get("newTag"), dict) else {}
        assert isinstance(current, dict) and isinstance(new, dict)
        updated = tagging.environment_tag_update(
            tag=self._tag(environment, tag),
            current_value=current.get("value"),
            new_name=new.get("name"),
            new_value=new.get("value"),
            actor=actor,
        )
        return Response(environment_tag_json(updated))

    @extend_schema(request=None, responses={204: None}, operation_id="deleteEnvironmentTag")
    def delete(self, request: Request, org: str, project: str, env: str, tag: str) -> Response:
        environment, _actor = environment_for(request, org, project, env, Level.WRITE)
        tagging.environment_tag_delete(tag=self._tag(environment, tag))
        return Response(status=204)
