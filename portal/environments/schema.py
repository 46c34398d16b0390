"""How the OpenAPI schema describes the ESC API's bodies (what `portal.environments.api` builds).

Serializers here only document: the views shape their answers as Pulumi's clients read them
(`environment_json`, `revision_json`, …) and read their inputs themselves.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers

YAML_MEDIA_TYPE = "application/x-yaml"
# Definitions travel as YAML documents in both directions: a mapping (`imports`, `values`) sent;
# what is stored answered as written (an empty definition is an empty document).
YAML_REQUEST = {YAML_MEDIA_TYPE: OpenApiTypes.OBJECT}
YAML_RESPONSE = {(200, YAML_MEDIA_TYPE): OpenApiTypes.ANY}

DURATION = OpenApiParameter(
    "duration", str, description="How long the open session lasts: a Go duration such as 1h."
)
PROPERTY = OpenApiParameter(
    "property", str, description="Answer only this property (a path such as `app.ports[0]`)."
)
CONTINUATION = OpenApiParameter("continuationToken", str, description="The previous nextToken.")
COUNT = OpenApiParameter("count", int, description="At most this many.")
BEFORE = OpenApiParameter("before", int, description="Revisions before this number.")
AFTER = OpenApiParameter("after", str, description="Tags after this name.")


class EnvironmentSerializer(serializers.Serializer[Any]):
    organization = serializers.CharField()
    project = serializers.CharField()
    name = serializers.CharField()
    created = serializers.CharField()
    modified = serializers.CharField()


class EnvironmentListSerializer(serializers.Serializer[Any]):
    environments = EnvironmentSerializer(many=True)
    nextToken = serializers.CharField(allow_blank=True)


class CreateEnvironmentSerializer(serializers.Serializer[Any]):
    project = serializers.CharField()
    name = serializers.CharField()


class UpdatedSerializer(serializers.Serializer[Any]):
    diagnostics = serializers.ListField(child=serializers.DictField())
    revision = serializers.IntegerField()


class CheckedSerializer(serializers.Serializer[Any]):
    properties = serializers.DictField()
    diagnostics = serializers.ListField(child=serializers.DictField())


class OpenedSerializer(serializers.Serializer[Any]):
    id = serializers.CharField()


class RevisionSerializer(serializers.Serializer[Any]):
    number = serializers.IntegerField()
    created = serializers.CharField()
    creatorLogin = serializers.CharField(allow_blank=True)
    creatorName = serializers.CharField(allow_blank=True)
    tags = serializers.ListField(child=serializers.CharField())


class RevisionTagSerializer(serializers.Serializer[Any]):
    name = serializers.CharField()
    revision = serializers.IntegerField()
    created = serializers.CharField()
    modified = serializers.CharField()
    editorLogin = serializers.CharField(allow_blank=True)
    editorName = serializers.CharField(allow_blank=True)


class RevisionTagListSerializer(serializers.Serializer[Any]):
    tags = RevisionTagSerializer(many=True)
    nextToken = serializers.CharField(allow_blank=True)


class CreateRevisionTagSerializer(serializers.Serializer[Any]):
    name = serializers.CharField()
    revision = serializers.IntegerField()


class RevisionNumberSerializer(serializers.Serializer[Any]):
    revision = serializers.IntegerField()


class EnvironmentTagSerializer(serializers.Serializer[Any]):
    name = serializers.CharField()
    value = serializers.CharField(allow_blank=True)
    created = serializers.CharField()
    modified = serializers.CharField()
    editorLogin = serializers.CharField(allow_blank=True)
    editorName = serializers.CharField(allow_blank=True)


class EnvironmentTagListSerializer(serializers.Serializer[Any]):
    tags = serializers.DictField(child=EnvironmentTagSerializer())
    nextToken = serializers.CharField(allow_blank=True)


class CreateEnvironmentTagSerializer(serializers.Serializer[Any]):
    name = serializers.CharField()
    value = serializers.CharField(allow_blank=True)


class TagValueSerializer(serializers.Serializer[Any]):
    value = serializers.CharField(allow_blank=True)


class TagChangeSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(required=False)
    value = serializers.CharField(allow_blank=True, required=False)


class UpdateEnvironmentTagSerializer(serializers.Serializer[Any]):
    currentTag = TagValueSerializer()
    newTag = TagChangeSerializer()
