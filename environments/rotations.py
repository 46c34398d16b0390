"""Rotating an environment's `fn::rotate` calls: the new state is its next revision.

`environment_rotate` evaluates the latest revision with secrets revealed, calls each wanted
rotator (`environments.rotators`) with its inputs (rotate-only ones included) and state, writes
every new state into the definition's `state` (strings as `fn::secret`, so they are sealed) and
saves that text through `definitions.environment_update`, as the revision after the one rotated
(409 if someone saved in between). The audit record names the paths and revisions, never a state.

The caller checks `write` on the environment; imports still need `open` (the loader checks).
`fn::open` providers are not called while rotating: a rotator whose inputs depend on one is a
diagnostic.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from environments import definitions, evaluator, providers, rotators, selectors
from environments.access import Actor
from environments.definitions import context_of, decrypter, loader
from environments.errors import DefinitionInvalid, EnvironmentInvalid
from environments.evaluator import OpenCall, OpenFailed, Source
from environments.models import Environment, Revision
from environments.rotation import Rotated, Rotation, RotationInvalid, write_states
from environments.rotators.base import RotateContext, RotatorError
from environments.syntax import format_path, parse_path
from kernel.errors import NotFound
from kernel.secretbox import SecretBox, default_box


@dataclass(frozen=True)
class RotationDone:
    """What a rotation did: the revision rotated, the one written, each call's path."""

    before: int
    revision: Revision
    rotated: tuple[Rotated, ...]


def _rotator_call(environment: Environment, actor: Actor, now: datetime) -> Any:
    def rotate(call: OpenCall) -> Any:
        rotator = rotators.rotator_named(call.provider)
        if rotator is None:
            raise OpenFailed(f"the {call.provider} rotator is not available on this portal")
        context = RotateContext(
            organization=environment.organization.login,
            project=environment.project,
            environment=environment.name,
            actor=actor.login,
            now=lambda: now,
        )
        arguments = call.arguments
        try:
            return rotator.rotate(context, arguments["inputs"] or {}, arguments["state"])
        except RotatorError as exc:
            raise OpenFailed(exc.message) from None

    return rotate


@sensitive_variables("text", "result")
def environment_rotate(
    *,
    environment: Environment,
    actor: Actor,
    paths: Collection[str] | None = None,
    box: SecretBox | None = None,
    now: datetime | None = None,
) -> RotationDone:
    """Rotate the wanted `fn::rotate` calls (all, or those at `paths`); a new revision."""
    box = box or default_box()
    now = now or timezone.now()
    current = selectors.revision_numbered(environment, environment.revision)
    if current is None:
        raise NotFound("The environment has no revision to rotate.")
    try:
        rotation = Rotation.of(_rotator_call(environment, actor, now), paths)
    except RotationInvalid as exc:
        raise EnvironmentInvalid(str(exc)) from exc
    source = Source(
        environment.full_name,
        current.definition,
        decrypter(box, environment, reveal=True),
        None,
        context_of(actor),
    )
    result = evaluator.evaluate(
        source,
        loader(actor, box, reveal=True),
        providers=providers.schemas(),
        rotators=rotators.schemas(),
        rotation=rotation,
    )
    if result.diagnostics:
        raise DefinitionInvalid(result.diagnostics, "The environment cannot be rotated.")
    if rotation.paths is not None:
        done = {parse_path(r.path)[1:] for r in rotation.rotated}
        missing = sorted(format_path(p) for p in rotation.paths - done)
        if missing:
            raise EnvironmentInvalid(f"No fn::rotate call at {', '.join(missing)[:300]}.")
    if not rotation.rotated:
        return RotationDone(current.number, current, ())
    text = write_states(current.definition, rotation.rotated)
    revision = definitions.environment_update(
        environment=environment,
        text=text,
        actor=actor,
        expected_revision=current.number,
        box=box,
        now=now,
        rotated=[relative_path(r.path) for r in rotation.rotated],
    )
    return RotationDone(current.number, revision, tuple(rotation.rotated))


def relative_path(path: str) -> str:
    """`values.a.b` → `a.b`, as the rotate request and Pulumi's answer write paths."""
    return format_path(parse_path(path)[1:])
