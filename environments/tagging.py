"""Revision tags (names for revisions) and environment tags (key/value labels)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.services import audit_record
from environments import selectors, syntax
from environments.access import Actor
from environments.errors import EnvironmentConflict, EnvironmentInvalid
from environments.models import (
    Environment,
    EnvironmentTag,
    RevisionTag,
)
from kernel.errors import NotFound

RESERVED_TAGS = {selectors.LATEST, "tags"}


def _check_tag_name(name: object) -> str:
    if (
        not isinstance(name, str)
        or not syntax.valid_name(name)
        or name[0].isdigit()
        or name in RESERVED_TAGS
    ):
        raise EnvironmentInvalid(
            "A revision tag name is 1-100 letters, digits, '_', '.' or '-', does not start with "
            "a digit, and is not 'latest' or 'tags'."
        )
    return name


# --- revision tags ------------------------------------------------------------------------------
def _existing_revision(environment: Environment, number: object) -> int:
    if not isinstance(number, int) or isinstance(number, bool):
        raise EnvironmentInvalid("`revision` must be a revision number.")
    if selectors.revision_numbered(environment, number) is None:
        raise NotFound(f"Revision {number} does not exist.")
    return number


def revision_tag_create(
    *,
    environment: Environment,
    name: object,
    revision: object,
    actor: Actor,
    now: datetime | None = None,
) -> RevisionTag:
    """Name a revision; 409 if the tag exists."""
    tag_name = _check_tag_name(name)
    number = _existing_revision(environment, revision)
    now = now or timezone.now()
    try:
        with transaction.atomic():
            tag = RevisionTag.objects.create(
                environment=environment,
                name=tag_name,
                revision=number,
                created=now,
                modified=now,
                editor_login=actor.login[:200],
                editor_name=actor.display_name[:200],
            )
            _audit("revision-tag-created", tag, environment, None, {"revision": number})
            return tag
    except IntegrityError as exc:
        raise EnvironmentConflict(f"The revision tag '{tag_name}' already exists.") from exc


def revision_tag_update(
    *, tag: RevisionTag, revision: object, actor: Actor, now: datetime | None = None
) -> RevisionTag:
    """Point a tag at another revision."""
    before = {"revision": tag.revision}
    tag.revision = _existing_revision(tag.environment, revision)
    tag.modified = now or timezone.now()
    tag.editor_login, tag.editor_name = actor.login[:200], actor.display_name[:200]
    with transaction.atomic():
        tag.save(update_fields=["revision", "modified", "editor_login", "editor_name"])
        _audit("revision-tag-updated", tag, tag.environment, before, {"revision": tag.revision})
    return tag


def revision_tag_delete(*, tag: RevisionTag) -> None:
    """Remove a revision tag (the revision stays)."""
    with transaction.atomic():
        _audit("revision-tag-deleted", tag, tag.environment, {"revision": tag.revision}, None)
        tag.delete()


def _audit(
    event: str,
    tag: RevisionTag | EnvironmentTag,
    environment: Environment,
    before: Mapping[str, object] | None,
    after: Mapping[str, object] | None,
) -> None:
    """The audit record of a tag change, in the caller's transaction."""
    kind = "revision tag" if isinstance(tag, RevisionTag) else "tag"
    audit_record(
        event=event,
        description=f"The {kind} '{tag.name}' of {environment} was {event.rsplit('-', 1)[1]}.",
        organization=environment.organization,
        target=tag,
        before=before,
        after=after,
    )


# --- environment tags ---------------------------------------------------------------------------
def _printable(text: str) -> bool:
    """No control characters (NUL breaks PostgreSQL) and no lone surrogates (break UTF-8)."""
    return text.isprintable()


def _check_label(name: object, value: object) -> tuple[str, str]:
    if not isinstance(name, str) or not name.strip() or len(name) > 100 or not _printable(name):
        raise EnvironmentInvalid("A tag name is 1-100 printable characters.")
    if not isinstance(value, str) or len(value) > 1000 or not _printable(value):
        raise EnvironmentInvalid("A tag value is at most 1000 printable characters.")
    return name.strip(), value


def environment_tag_create(
    *,
    environment: Environment,
    name: object,
    value: object,
    actor: Actor,
    now: datetime | None = None,
) -> EnvironmentTag:
    """Add a key/value tag; 409 if the name is taken."""
    tag_name, tag_value = _check_label(name, value)
    now = now or timezone.now()
    try:
        with transaction.atomic():
            tag = EnvironmentTag.objects.create(
                environment=environment,
                name=tag_name,
                value=tag_value,
                created=now,
                modified=now,
                editor_login=actor.login[:200],
                editor_name=actor.display_name[:200],
            )
            _audit("tag-created", tag, environment, None, {"name": tag_name, "value": tag_value})
            return tag
    except IntegrityError as exc:
        raise EnvironmentConflict(f"The tag '{tag_name}' already exists.") from exc


def environment_tag_update(
    *,
    tag: EnvironmentTag,
    current_value: object,
    new_name: object,
    new_value: object,
    actor: Actor,
    now: datetime | None = None,
) -> EnvironmentTag:
    """Rename and/or change a tag; 409 if `current_value` is given and no longer matches."""
    if current_value is not None and current_value != tag.value:
        raise EnvironmentConflict(f"The tag '{tag.name}' no longer has that value.")
    before = {"name": tag.name, "value": tag.value}
    name, value = _check_label(
        new_name if new_name not in (None, "") else tag.name,
        new_value if new_value is not None else tag.value,
    )
    tag.name, tag.value = name, value
    tag.modified = now or timezone.now()
    tag.editor_login, tag.editor_name = actor.login[:200], actor.display_name[:200]
    try:
        with transaction.atomic():
            tag.save(update_fields=["name", "value", "modified", "editor_login", "editor_name"])
            _audit("tag-updated", tag, tag.environment, before, {"name": name, "value": value})
    except IntegrityError as exc:
        raise EnvironmentConflict(f"The tag '{name}' already exists.") from exc
    return tag


def environment_tag_delete(*, tag: EnvironmentTag) -> None:
    """Remove a key/value tag."""
    with transaction.atomic():
        before = {"name": tag.name, "value": tag.value}
        _audit("tag-deleted", tag, tag.environment, before, None)
        tag.delete()
