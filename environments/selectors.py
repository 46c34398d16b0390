"""Reads: environments a caller may see, revisions, tags, grants and the open record."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from functools import reduce

from django.db.models import Q, QuerySet

from environments import access
from environments.access import Actor
from environments.models import (
    AccessEvent,
    AccessKind,
    CredentialIssuance,
    Environment,
    EnvironmentTag,
    Grant,
    Revision,
    RevisionTag,
)

LATEST = "latest"

# (organization login, project, name) of the last environment on the previous page.
PageKey = tuple[str, str, str]


def environment_named(organization_id: int, project: str, name: str) -> Environment | None:
    """The environment `project/name` of an organization, or None."""
    return (
        Environment.objects.select_related("organization")
        .filter(organization_id=organization_id, project=project, name=name)
        .first()
    )


def environments_visible(
    actors: Sequence[Actor], *, after: PageKey | None = None, limit: int | None = None
) -> list[Environment]:
    """Environments any of the actors (one per organization) may read, in name order.

    Keyset pagination: `after` is the last (organization, project, name) already returned.
    """
    if not actors:
        return []
    queryset: QuerySet[Environment] = Environment.objects.select_related("organization").filter(
        reduce(lambda a, b: a | b, (access.visible(actor) for actor in actors))
    )
    if after is not None:
        org, project, name = after
        queryset = queryset.filter(
            Q(organization__login__gt=org)
            | Q(organization__login=org, project__gt=project)
            | Q(organization__login=org, project=project, name__gt=name)
        )
    queryset = queryset.order_by("organization__login", "project", "name")
    return list(queryset[:limit] if limit is not None else queryset)


def revision_numbered(environment: Environment, number: int) -> Revision | None:
    """The revision with that number, or None."""
    return Revision.objects.filter(environment=environment, number=number).first()


def revision_for_version(environment: Environment, version: str) -> Revision | None:
    """The revision a version names: a number, `latest`, or a revision tag."""
    version = version.strip()
    if version.isascii() and version.isdigit():
        return revision_numbered(environment, int(version))
    if version == LATEST:
        return revision_numbered(environment, environment.revision)
    tag = RevisionTag.objects.filter(environment=environment, name=version).first()
    return revision_numbered(environment, tag.revision) if tag is not None else None


def revisions_of(
    environment: Environment, *, before: int | None = None, count: int = 100
) -> list[Revision]:
    """Revisions newest first, optionally only those numbered below `before`."""
    queryset = Revision.objects.filter(environment=environment).select_related("created_by")
    if before is not None:
        queryset = queryset.filter(number__lt=before)
    return list(queryset.order_by("-number")[:count])


def revision_tags_of(environment: Environment) -> list[RevisionTag]:
    """The environment's stored revision tags by name (`latest` is implicit)."""
    return list(RevisionTag.objects.filter(environment=environment).order_by("name"))


def revision_tag_named(environment: Environment, name: str) -> RevisionTag | None:
    """One revision tag, or None."""
    return RevisionTag.objects.filter(environment=environment, name=name).first()


def tag_names_by_revision(environment: Environment) -> dict[int, list[str]]:
    """Which tags point at which revision, `latest` included."""
    names: dict[int, list[str]] = {environment.revision: [LATEST]}
    for tag in revision_tags_of(environment):
        names.setdefault(tag.revision, []).append(tag.name)
    return names


def environment_tags_of(
    environment: Environment, *, after: str | None = None, count: int | None = None
) -> list[EnvironmentTag]:
    """Key/value tags by name, after `after`, at most `count`."""
    queryset = EnvironmentTag.objects.filter(environment=environment).order_by("name")
    if after:
        queryset = queryset.filter(name__gt=after)
    return list(queryset[:count] if count is not None else queryset)


def environment_tag_named(environment: Environment, name: str) -> EnvironmentTag | None:
    """One key/value tag, or None."""
    return EnvironmentTag.objects.filter(environment=environment, name=name).first()


def grants_of(environment: Environment) -> list[Grant]:
    """The team and runner grants on an environment."""
    return list(
        Grant.objects.filter(environment=environment)
        .select_related("team", "runner")
        .order_by("team__name", "runner__name")
    )


def session_hash(session_id: str) -> str:
    """SHA-256 of an open session id: what the database keeps instead of the id."""
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


def open_session(environment: Environment, session_id: str, *, now: datetime) -> AccessEvent | None:
    """The unexpired open of this environment that `session_id` names, or None."""
    return (
        AccessEvent.objects.filter(
            kind=AccessKind.OPEN,
            environment_id=environment.pk,
            session_hash=session_hash(session_id),
            expires__gt=now,
        )
        .order_by()
        .first()
    )


def access_events_of(environment: Environment, *, limit: int = 20) -> list[AccessEvent]:
    """The latest opens and decrypts of an environment, newest first."""
    return list(AccessEvent.objects.filter(environment_id=environment.pk).order_by("-id")[:limit])


def credential_issuances(
    organization_id: int,
    *,
    environment: str = "",
    provider: str = "",
    outcome: str = "",
) -> QuerySet[CredentialIssuance]:
    """The organization's credential issuances, newest first, narrowed by `project/name` (of
    the environment holding the call or the one opened), provider and outcome."""
    rows = CredentialIssuance.objects.filter(organization_id=organization_id)
    if environment:
        project, _, name = environment.partition("/")
        rows = rows.filter(Q(project=project, name=name) | Q(root_environment=environment))
    if provider:
        rows = rows.filter(provider=provider)
    if outcome:
        rows = rows.filter(outcome=outcome)
    return rows.order_by("-pk")
