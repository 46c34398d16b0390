"""Writes: creating a policy with its issuer, saving new versions, rolling back."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from audit.services import audit_record
from issuers.models import Issuer
from kernel.errors import NotFound, PreconditionFailed
from policies.errors import PolicyInvalid
from policies.matching import SUBJECT_FIELDS
from policies.models import AuthPolicy, AuthPolicyVersion
from policies.patterns import compile_pattern
from policies.validation import FieldError, LintWarning, lint_definitions, validate_definitions
from trustportal.models import Membership, Organization, Runner, Team, User


def policy_create_for_issuer(*, issuer: Issuer, now: datetime | None = None) -> AuthPolicy:
    """The empty policy every new issuer starts with: no allow, so every exchange is denied."""
    policy = AuthPolicy.objects.create(
        organization=issuer.organization, issuer=issuer, version=1, definitions=[]
    )
    AuthPolicyVersion.objects.create(
        policy=policy,
        version=1,
        definitions=[],
        created=now or timezone.now(),
        note="created with the issuer",
    )
    return policy


def _missing_subjects(organization: Organization, definitions: list[Any]) -> list[FieldError]:
    """Literal teamName/userLogin/runnerID values that name nothing in the organization.

    Patterns with wildcards are not checked: they may match teams created later.
    """
    lookups: dict[str, tuple[str, Any]] = {
        "team": ("team", lambda name: Team.objects.filter(organization=organization, name=name)),
        "personal": (
            "member",
            lambda login: Membership.objects.filter(
                organization=organization, user__username=login
            ),
        ),
        "runner": (
            "runner",
            lambda name: Runner.objects.filter(organization=organization, name=name),
        ),
    }
    errors = []
    for index, definition in enumerate(definitions):
        field = SUBJECT_FIELDS.get(definition.get("tokenType", ""))
        value = definition.get(field) if field else None
        if not field or not isinstance(value, str):
            continue
        pattern = compile_pattern(value)
        label, query = lookups[definition["tokenType"]]
        if pattern.is_literal and not query(pattern.literal_prefix).exists():
            errors.append(
                FieldError(
                    f"policies[{index}].{field}",
                    f"no {label} named {value!r} in organization {organization.login}",
                )
            )
    return errors


def policy_lint(*, policy: AuthPolicy, definitions: list[Any]) -> list[LintWarning]:
    issuer = policy.issuer
    # Without extra audiences every token must carry `<prefix><org>`: the audience is fixed.
    # With them (e.g. sts.amazonaws.com, shared by every relying party) it is not.
    return lint_definitions(
        definitions, issuer_url=issuer.issuer, has_fixed_audience=not issuer.audiences
    )


def policy_check(*, policy: AuthPolicy, definitions: Any) -> list[LintWarning]:
    """Validate definitions for this policy's organization; lint warnings when they are valid."""
    errors = validate_definitions(definitions)
    if errors:
        raise PolicyInvalid(errors)
    errors = _missing_subjects(policy.organization, definitions)
    if errors:
        raise PolicyInvalid(errors)
    return policy_lint(policy=policy, definitions=definitions)


def policy_update(
    *,
    policy: AuthPolicy,
    definitions: Any,
    by: User | None = None,
    by_token: str = "",
    expected_version: int | None = None,
    note: str = "",
    now: datetime | None = None,
) -> tuple[AuthPolicy, list[LintWarning]]:
    """Save definitions as the next version; refuse a stale `expected_version` (412).

    Validation errors block the save; lint warnings are returned, never blocking.
    """
    warnings = policy_check(policy=policy, definitions=definitions)
    with transaction.atomic():
        locked = AuthPolicy.objects.select_for_update().get(pk=policy.pk)
        if expected_version is not None and expected_version != locked.version:
            raise PreconditionFailed(
                f"The policy is at version {locked.version}, not {expected_version}; "
                "reload it and apply your change again."
            )
        before = {"version": locked.version, "definitions": locked.definitions}
        locked.version += 1
        locked.definitions = definitions
        locked.save(update_fields=["version", "definitions", "modified"])
        AuthPolicyVersion.objects.create(
            policy=locked,
            version=locked.version,
            definitions=definitions,
            created=now or timezone.now(),
            created_by=by,
            created_by_token=by_token[:200],
            note=note[:500],
        )
        audit_record(
            event="policy-published",
            description=f"Version {locked.version} of the policy of the issuer "
            f"{locked.issuer.name} went live" + (f" ({note})." if note else "."),
            organization=locked.organization,
            target=locked,
            object_type="policy",
            before=before,
            after={"version": locked.version, "definitions": definitions, "note": note[:500]},
        )
    return locked, warnings


def policy_rollback(
    *,
    policy: AuthPolicy,
    version: int,
    by: User | None = None,
    by_token: str = "",
    expected_version: int | None = None,
) -> tuple[AuthPolicy, list[LintWarning]]:
    """Save an earlier version's definitions as a new version (history is never rewritten)."""
    earlier = AuthPolicyVersion.objects.filter(policy=policy, version=version).first()
    if earlier is None:
        raise NotFound(f"Version {version} of this policy does not exist.")
    return policy_update(
        policy=policy,
        definitions=earlier.definitions,
        by=by,
        by_token=by_token,
        expected_version=expected_version,
        note=f"rollback to version {version}",
    )
