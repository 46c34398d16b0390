"""Writes to definitions: check, create, update (a new revision, secrets sealed), delete, the demo.

Services trust their caller about *access to the environment named* (views check it through
`environments.access`), but evaluation checks access to every *imported* environment itself:
opening needs `open` on each of them, so a writer cannot read secrets of an environment they
cannot open by importing it. Secrets are sealed before anything is stored; plaintext lives
only in local variables on the way in and in the response on the way out.
"""

from __future__ import annotations

import secrets as random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from audit.services import audit_record
from environments import access, evaluator, providers, rotators, sealing, selectors, syntax
from environments.access import Actor
from environments.errors import DefinitionInvalid, EnvironmentConflict, EnvironmentInvalid
from environments.evaluator import Evaluation, Loader, Opener, Source
from environments.models import (
    Environment,
    Level,
    Revision,
)
from environments.secrets import environment_context
from kernel.secretbox import SecretBox, default_box
from trustportal.models import Organization, User

RESERVED = {("yaml", "check")}  # `/environments/{org}/yaml/check` is the check endpoint
CHECK_NAME = "<draft>"


@dataclass(frozen=True)
class RequestInfo:
    """Where a request came from, for the open record."""

    request_id: str = ""
    client_ip: str | None = None
    user_agent: str = ""


# --- names --------------------------------------------------------------------------------------
def _check_names(project: str, name: str) -> None:
    for label, value in (("project", project), ("name", name)):
        if not isinstance(value, str) or not syntax.valid_name(value):
            raise EnvironmentInvalid(
                f"The {label} must be 1-100 letters, digits, '_', '.' or '-' (not only dots)."
            )
    if (project, name) in RESERVED:
        raise EnvironmentInvalid(f"'{project}/{name}' is reserved.")


# --- evaluation plumbing ------------------------------------------------------------------------
def decrypter(box: SecretBox, environment: Environment, *, reveal: bool) -> Callable[[str], str]:
    """Opens this environment's ciphertexts; without `reveal` it checks them and hides the text."""
    context = environment_context(environment.organization_id, environment.pk)

    def decrypt(ciphertext: str) -> str:
        plaintext = box.decrypt(ciphertext, context=context)
        return plaintext if reveal else syntax.SECRET_MASK

    return decrypt


def _mask_only(ciphertext: str) -> str:
    """For drafts that belong to no environment: ciphertexts cannot be checked, only hidden."""
    return syntax.SECRET_MASK


OpenerFor = Callable[[Environment], Opener]


def loader(
    actor: Actor,
    box: SecretBox,
    *,
    reveal: bool,
    pins: dict[str, int] | None = None,
    used: dict[str, int] | None = None,
    opener: OpenerFor | None = None,
) -> Loader:
    """Loads imports of the actor's organization that the actor may open.

    With `pins`, each environment is loaded at the revision pinned when it was opened; every
    revision loaded is written to `used`. With `opener`, their `fn::open` calls run.
    """

    def load(name: str) -> Source | str:
        project, _, env_name = name.partition("/")
        environment = selectors.environment_named(actor.organization.pk, project, env_name)
        level = access.level_of(actor, environment) if environment is not None else None
        if environment is None or level is None:
            return "environment not found"
        if not access.allows(level, Level.OPEN):
            return "importing it needs `open` permission on it"
        number = environment.revision if pins is None else pins.get(name)
        revision = selectors.revision_numbered(environment, number) if number else None
        if revision is None:
            return "that revision of it no longer exists"
        if used is not None:
            used[name] = revision.number
        return Source(
            name,
            revision.definition,
            decrypter(box, environment, reveal=reveal),
            opener(environment) if opener is not None else None,
        )

    return load


@sensitive_variables("text")
def environment_check(
    *,
    actor: Actor,
    text: str,
    environment: Environment | None = None,
    box: SecretBox | None = None,
) -> Evaluation:
    """Evaluate a draft definition as it would be saved, secrets hidden; saves nothing.

    Inside an environment its existing ciphertexts are checked with its key; a free-standing
    draft (the `yaml/check` endpoint) can only hide them. `fn::open` calls are checked (the
    provider must exist, the arguments must evaluate) but not made: their values are unknown.
    """
    box = box or default_box()
    if environment is not None:
        source = Source(
            environment.full_name,
            text,
            decrypter(box, environment, reveal=False),
            context=context_of(actor),
        )
    else:
        source = Source(CHECK_NAME, text, _mask_only, context=context_of(actor))
    return evaluator.evaluate(
        source,
        loader(actor, box, reveal=False),
        providers=providers.schemas(),
        rotators=rotators.schemas(),
    )


def context_of(actor: Actor) -> dict[str, Any]:
    """What `${context.pulumi.…}` reads: the caller and the organization (never a secret)."""
    user_id = str(actor.user.pk) if actor.user is not None else actor.login
    return {
        "pulumi": {
            "user": {"login": actor.login, "id": user_id},
            "organization": {"login": actor.organization.login},
        }
    }


# --- create, update, delete ---------------------------------------------------------------------
def environment_create(
    *,
    organization: Organization,
    project: str,
    name: str,
    actor: Actor,
    now: datetime | None = None,
) -> Environment:
    """Create an environment with revision 1, the empty definition; 409 if the name is taken."""
    _check_names(project, name)
    now = now or timezone.now()
    try:
        with transaction.atomic():
            environment = Environment.objects.create(
                organization=organization,
                project=project,
                name=name,
                revision=1,
                created=now,
                modified=now,
                created_by=actor.user,
                created_by_token=actor.token,
            )
            _revision_create(environment, 1, "", actor, now)
            audit_record(
                event="environment-created",
                description=f"The environment {environment} was created.",
                organization=organization,
                target=environment,
                after={"project": project, "name": name},
                now=now,
            )
    except IntegrityError as exc:
        raise EnvironmentConflict(f"Environment '{project}/{name}' already exists.") from exc
    return environment


def _revision_create(
    environment: Environment, number: int, definition: str, actor: Actor, now: datetime
) -> Revision:
    return Revision.objects.create(
        environment=environment,
        number=number,
        definition=definition,
        created=now,
        created_by=actor.user,
        creator_login=actor.login[:200],
        creator_name=actor.display_name[:200],
        creator_token=actor.token_label[:300],
    )


@sensitive_variables("text")
def environment_update(
    *,
    environment: Environment,
    text: str,
    actor: Actor,
    expected_revision: int | None = None,
    box: SecretBox | None = None,
    now: datetime | None = None,
    rotated: Sequence[str] = (),
) -> Revision:
    """Save a definition as the next revision, secrets sealed; 400 with diagnostics if invalid.

    Refuses with 409 when `expected_revision` (from `If-Match`/`ETag`) is not the latest.
    Every update makes a new revision, even an identical one. `rotated` (the paths of the
    `fn::rotate` calls a rotation wrote) records the change as a rotation.
    """
    box = box or default_box()
    checked = environment_check(actor=actor, text=text, environment=environment, box=box)
    if checked.diagnostics:
        raise DefinitionInvalid(checked.diagnostics)
    context = environment_context(environment.organization_id, environment.pk)
    sealed, problems = sealing.seal(
        text, environment.full_name, lambda plaintext: box.encrypt(plaintext, context=context)
    )
    if problems:
        raise DefinitionInvalid(problems)
    now = now or timezone.now()
    with transaction.atomic():
        locked = Environment.objects.select_for_update().get(pk=environment.pk)
        if expected_revision is not None and expected_revision != locked.revision:
            raise EnvironmentConflict(
                f"The environment is at revision {locked.revision}, not {expected_revision}; "
                "read it again and reapply your change."
            )
        locked.revision += 1
        locked.modified = now
        locked.save(update_fields=["revision", "modified"])
        revision = _revision_create(locked, locked.revision, sealed, actor, now)
        # The revision number only: the definition (ciphertexts included) stays out of the log.
        after: dict[str, Any] = {"revision": locked.revision}
        if rotated:
            after["rotated"] = list(rotated)
        audit_record(
            event="environment-rotated" if rotated else "environment-updated",
            description=(
                f"The environment {locked} was rotated ({', '.join(rotated)}) as revision "
                f"{locked.revision}."
                if rotated
                else f"The environment {locked} was saved as revision {locked.revision}."
            ),
            organization=locked.organization,
            target=locked,
            before={"revision": locked.revision - 1},
            after=after,
            now=now,
        )
    environment.revision, environment.modified = locked.revision, locked.modified
    return revision


def environment_delete(*, environment: Environment) -> None:
    """Delete an environment with its revisions, tags and grants (the open record stays)."""
    with transaction.atomic():
        audit_record(
            event="environment-deleted",
            description=f"The environment {environment} was deleted.",
            organization=environment.organization,
            target=environment,
            before={"project": environment.project, "name": environment.name},
        )
        environment.delete()


# --- the demo -----------------------------------------------------------------------------------
DEMO_PROJECT = "demo"
DEMO_NAME = "dev"
DEMO_DEFINITION = """\
# The example environment `make run` seeds. Values can be plain, nested, interpolated or secret.
values:
  app:
    name: demo-app
    region: eu-west-1
    replicas: 2
  endpoints:
    - https://api.example.test
    - https://status.example.test
  greeting: Hello from ${app.name} in ${app.region}
  database:
    host: db.internal.example.test
    port: 5432
    password:
      fn::secret: @PASSWORD@
  environmentVariables:
    APP_NAME: ${app.name}
    DATABASE_URL: postgres://app:${database.password}@${database.host}:${database.port}/app
"""


def environment_seed_demo(
    organization: Organization,
    by: User | None = None,
    *,
    box: SecretBox | None = None,
    now: datetime | None = None,
) -> Environment:
    """Create `demo/dev` (plain, nested, interpolated and secret values) unless it exists.

    The demo password is random per installation and sealed like any other secret.
    """
    existing = selectors.environment_named(organization.pk, DEMO_PROJECT, DEMO_NAME)
    if existing is not None:
        return existing
    login = by.get_username() if by is not None else "make-run"
    actor = Actor(
        organization=organization,
        blanket=Level.ADMIN,
        can_create=True,
        login=login,
        display_name=(by.get_full_name() if by is not None else "") or login,
        user=by,
    )
    with transaction.atomic():
        environment = environment_create(
            organization=organization, project=DEMO_PROJECT, name=DEMO_NAME, actor=actor, now=now
        )
        environment_update(
            environment=environment,
            text=DEMO_DEFINITION.replace("@PASSWORD@", f"demo-{random.token_urlsafe(12)}"),
            actor=actor,
            box=box,
            now=now,
        )
    return environment
