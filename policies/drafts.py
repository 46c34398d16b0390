"""Writes: the issuer's shared draft, where editor changes stage before going live as one version.

One draft per issuer, shared by the organization's admins (a second admin sees and continues the
same pending change rather than racing a private copy). Staging never touches the live policy,
so a half-finished change (an allow added before its deny) is never evaluated by an exchange.
Publishing goes through `policy_update`, the same save as the API's whole-policy PATCH, with
the version the draft started from as the expected version: a live change made meanwhile (an
API PATCH, a rollback) refuses the publish instead of being silently undone.

Every write locks the policy row first, then the draft row, so concurrent stages, publishes and
discards of one issuer run one after another.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from audit.services import audit_record
from policies.errors import ConfirmationRequired, DraftChanged, DraftStale, NoDraft
from policies.models import AuthPolicy, PolicyDraft
from policies.patterns import PolicyError
from policies.services import policy_check, policy_lint, policy_update
from policies.validation import LintWarning
from trustportal.models import User

_INDEXED = re.compile(r"^policies\[(\d+)\](.*)$")


def _locked(policy: AuthPolicy) -> tuple[AuthPolicy, PolicyDraft]:
    """The policy and its draft row, locked for the rest of the transaction."""
    locked = AuthPolicy.objects.select_for_update().select_related("issuer").get(pk=policy.pk)
    PolicyDraft.objects.get_or_create(policy=locked)
    return locked, PolicyDraft.objects.select_for_update().get(policy=locked)


def _open(draft: PolicyDraft, expected_revision: int) -> None:
    if draft.base_version is None:
        raise NoDraft()
    if expected_revision != draft.revision:
        raise DraftChanged(yours=expected_revision, current=draft.revision)


def _draft_state(draft: PolicyDraft) -> dict[str, Any]:
    return {
        "base_version": draft.base_version,
        "definitions": draft.definitions,
        "changes": draft.changes,
    }


def _record(event: str, verb: str, policy: AuthPolicy, before: Any, after: Any) -> None:
    audit_record(
        event=event,
        description=f"The draft of the policy of the issuer {policy.issuer.name} was {verb}.",
        organization=policy.organization,
        target=policy,
        object_type="policy",
        before=before,
        after=after,
    )


def _close(draft: PolicyDraft, *, by: User | None, now: datetime) -> None:
    draft.base_version = None
    draft.definitions = []
    draft.changes = []
    draft.started = None
    draft.started_by = None
    draft.revision += 1
    draft.modified = now
    draft.modified_by = by
    draft.save()


def draft_stage(
    *,
    policy: AuthPolicy,
    definitions: Any,
    expected_revision: int,
    note: str,
    by: User | None = None,
    now: datetime | None = None,
) -> tuple[PolicyDraft, list[LintWarning]]:
    """Stage definitions as the issuer's draft, opening it from the live version if none is open.

    Validated like a save (errors refuse, warnings are returned); refuses a stale
    `expected_revision`. Does not change the live policy or anything an exchange reads.
    """
    warnings = policy_check(policy=policy, definitions=definitions)
    now = now or timezone.now()
    with transaction.atomic():
        locked, draft = _locked(policy)
        if expected_revision != draft.revision:
            raise DraftChanged(yours=expected_revision, current=draft.revision)
        before = _draft_state(draft)
        if draft.base_version is None:
            draft.base_version = locked.version
            draft.started = now
            draft.started_by = by
            draft.changes = []
        draft.definitions = definitions
        draft.changes = [*draft.changes, note]
        draft.revision += 1
        draft.modified = now
        draft.modified_by = by
        draft.save()
        _record("policy-draft-updated", "changed", locked, before, _draft_state(draft))
    return draft, warnings


def _lint_or_none(policy: AuthPolicy, definitions: Any) -> list[LintWarning]:
    try:
        return policy_lint(policy=policy, definitions=definitions)
    except PolicyError:  # live definitions saved before today's rules: nothing to compare
        return []


def _key(warning: LintWarning, definitions: Any) -> tuple[str, str, str]:
    """A warning keyed by what it concerns rather than where: a moved definition keeps its key."""
    found = _INDEXED.match(warning.path)
    if found and int(found.group(1)) < len(definitions):
        subject = json.dumps(definitions[int(found.group(1))], sort_keys=True)
        return (warning.code, subject, found.group(2))
    return (warning.code, warning.path, warning.message)


def warnings_added(*, policy: AuthPolicy, definitions: Any) -> list[LintWarning]:
    """The lint warnings `definitions` have that the live definitions do not."""
    live = policy.definitions
    before = Counter(_key(warning, live) for warning in _lint_or_none(policy, live))
    added = []
    for warning in policy_lint(policy=policy, definitions=definitions):
        key = _key(warning, definitions)
        if before[key] > 0:
            before[key] -= 1
        else:
            added.append(warning)
    return added


def draft_publish(
    *,
    policy: AuthPolicy,
    expected_revision: int,
    confirmed: bool = False,
    by: User | None = None,
    now: datetime | None = None,
) -> tuple[AuthPolicy, list[LintWarning]]:
    """Make the open draft live as one new version, and close the draft.

    Refuses (nothing changes) when the draft moved on since the page was loaded, when the live
    policy changed since the draft was started (DraftStale), and, unless `confirmed`, when the
    draft adds lint warnings (ConfirmationRequired, listing them).
    """
    now = now or timezone.now()
    with transaction.atomic():
        locked, draft = _locked(policy)
        _open(draft, expected_revision)
        assert draft.base_version is not None
        if draft.base_version != locked.version:
            raise DraftStale(base_version=draft.base_version, live_version=locked.version)
        added = warnings_added(policy=locked, definitions=draft.definitions)
        if added and not confirmed:
            raise ConfirmationRequired(added)
        changes = "; ".join(str(change) for change in draft.changes)
        published, warnings = policy_update(
            policy=locked,
            definitions=draft.definitions,
            by=by,
            expected_version=draft.base_version,
            note=f"published draft: {changes}" if changes else "published draft",
            now=now,
        )
        _close(draft, by=by, now=now)
    return published, warnings


def draft_discard(
    *,
    policy: AuthPolicy,
    expected_revision: int,
    by: User | None = None,
    now: datetime | None = None,
) -> None:
    """Drop the open draft; the live policy stays as it is."""
    with transaction.atomic():
        locked, draft = _locked(policy)
        _open(draft, expected_revision)
        before = _draft_state(draft)
        _close(draft, by=by, now=now or timezone.now())
        _record("policy-draft-discarded", "discarded", locked, before, None)


def draft_restart(
    *,
    policy: AuthPolicy,
    expected_revision: int,
    by: User | None = None,
    now: datetime | None = None,
) -> PolicyDraft:
    """Keep the draft's definitions but base it on the live version now.

    For after a refused publish: the admin has seen the differences against the new live
    version (which the draft would replace) and takes them on knowingly.
    """
    now = now or timezone.now()
    with transaction.atomic():
        locked, draft = _locked(policy)
        _open(draft, expected_revision)
        before = _draft_state(draft)
        draft.changes = [*draft.changes, f"restarted from version {locked.version}"]
        draft.base_version = locked.version
        draft.revision += 1
        draft.modified = now
        draft.modified_by = by
        draft.save()
        _record("policy-draft-restarted", "restarted", locked, before, _draft_state(draft))
    return draft
