"""The issuer's draft: staged edits, one published version, discard, stale and lint refusals."""

from __future__ import annotations

from typing import Any

import pytest

from devtools.issuer import DevIssuer
from issuers.services import Outbound
from policies.drafts import draft_discard, draft_publish, draft_restart, draft_stage
from policies.errors import (
    ConfirmationRequired,
    DraftChanged,
    DraftStale,
    NoDraft,
    PolicyInvalid,
)
from policies.models import AuthPolicy, AuthPolicyVersion, PolicyDraft
from policies.registration import issuer_register
from policies.selectors import policy_summary, working_copy
from policies.services import policy_update
from trustportal.models import Organization

pytestmark = pytest.mark.django_db

ALLOW_MAIN = {
    "decision": "allow",
    "tokenType": "organization",
    "authorizedPermissions": ["admin"],
    "rules": {"sub": "repo:acme/infra:ref:refs/heads/main", "repository_owner_id": "88310"},
}
DENY_PR = {
    "decision": "deny",
    "tokenType": "organization",
    "authorizedPermissions": ["admin"],
    "rules": {"event_name": ["pull_request", "pull_request_target"]},
}
ALLOW_ANY = {**ALLOW_MAIN, "rules": {"sub": "*"}}


@pytest.fixture
def policy(org: Organization, local_issuer: DevIssuer, outbound: Outbound) -> AuthPolicy:
    issuer = issuer_register(organization=org, url=local_issuer.url, outbound=outbound)
    return AuthPolicy.objects.get(issuer=issuer)


def live(policy: AuthPolicy) -> AuthPolicy:
    return AuthPolicy.objects.get(pk=policy.pk)


def stage(policy: AuthPolicy, definitions: list[Any], note: str = "edit") -> PolicyDraft:
    revision = working_copy(live(policy)).revision
    draft, _warnings = draft_stage(
        policy=policy, definitions=definitions, expected_revision=revision, note=note
    )
    return draft


def test_staging_never_changes_the_live_policy(policy) -> None:
    draft = stage(policy, [ALLOW_MAIN], "added definition 1")
    assert (draft.base_version, draft.revision) == (1, 1)
    assert live(policy).version == 1 and live(policy).definitions == []
    assert AuthPolicyVersion.objects.filter(policy=policy).count() == 1
    work = working_copy(live(policy))
    assert work.is_draft and work.definitions == [ALLOW_MAIN] and work.revision == 1


def test_publish_makes_every_staged_edit_live_as_one_version(policy) -> None:
    stage(policy, [ALLOW_MAIN], "added definition 1")
    stage(policy, [ALLOW_MAIN, DENY_PR], "added definition 2")
    published, warnings = draft_publish(policy=policy, expected_revision=2)
    assert published.version == 2 and warnings == []
    assert live(policy).definitions == [ALLOW_MAIN, DENY_PR]
    versions = AuthPolicyVersion.objects.filter(policy=policy).order_by("version")
    assert [v.version for v in versions] == [1, 2]  # no intermediate version with the allow alone
    assert versions[1].note == "published draft: added definition 1; added definition 2"
    work = working_copy(live(policy))
    assert not work.is_draft and work.definitions == [ALLOW_MAIN, DENY_PR] and work.revision == 3
    with pytest.raises(NoDraft):
        draft_publish(policy=policy, expected_revision=3)


def test_discard_drops_the_draft_and_keeps_the_live_policy(policy) -> None:
    policy_update(policy=policy, definitions=[DENY_PR])
    stage(policy, [])
    draft_discard(policy=policy, expected_revision=1)
    assert live(policy).version == 2 and live(policy).definitions == [DENY_PR]
    assert working_copy(live(policy)).definitions == [DENY_PR]
    with pytest.raises(NoDraft):
        draft_discard(policy=policy, expected_revision=2)


def test_a_draft_started_before_a_live_change_is_not_published(policy) -> None:
    stage(policy, [ALLOW_MAIN])
    policy_update(policy=policy, definitions=[DENY_PR], note="API PATCH")  # live is now v2
    with pytest.raises(DraftStale) as refused:
        draft_publish(policy=policy, expected_revision=1)
    assert "started from version 1" in refused.value.message
    assert "now at version 2" in refused.value.message
    assert live(policy).version == 2 and live(policy).definitions == [DENY_PR]
    assert working_copy(live(policy)).definitions == [ALLOW_MAIN]  # the draft is kept
    # After reviewing the differences, the admin restarts it from v2 and publishes.
    draft_restart(policy=policy, expected_revision=1)
    published, _ = draft_publish(policy=policy, expected_revision=2)
    assert published.version == 3 and live(policy).definitions == [ALLOW_MAIN]


def test_an_edit_or_publish_from_an_older_page_is_refused(policy) -> None:
    stage(policy, [ALLOW_MAIN])
    with pytest.raises(DraftChanged):
        draft_stage(policy=policy, definitions=[DENY_PR], expected_revision=0, note="stale")
    stage(policy, [ALLOW_MAIN, DENY_PR])
    with pytest.raises(DraftChanged):
        draft_publish(policy=policy, expected_revision=1)
    with pytest.raises(DraftChanged):
        draft_discard(policy=policy, expected_revision=1)
    assert working_copy(live(policy)).definitions == [ALLOW_MAIN, DENY_PR]
    assert live(policy).version == 1


def test_invalid_definitions_are_not_staged(policy) -> None:
    with pytest.raises(PolicyInvalid):
        draft_stage(
            policy=policy,
            definitions=[{**ALLOW_MAIN, "colour": "red"}],
            expected_revision=0,
            note="bad",
        )
    assert not working_copy(live(policy)).is_draft


def test_publishing_new_lint_warnings_needs_confirmation(policy) -> None:
    stage(policy, [ALLOW_ANY])
    with pytest.raises(ConfirmationRequired) as asked:
        draft_publish(policy=policy, expected_revision=1)
    assert "sub_matches_any_repository" in {w.code for w in asked.value.warnings}
    assert live(policy).version == 1
    published, warnings = draft_publish(policy=policy, expected_revision=1, confirmed=True)
    assert published.version == 2 and warnings


def test_moving_a_definition_with_a_known_warning_needs_no_confirmation(policy) -> None:
    policy_update(policy=policy, definitions=[ALLOW_ANY, DENY_PR])  # live already warns
    stage(policy, [DENY_PR, ALLOW_ANY])
    published, warnings = draft_publish(policy=policy, expected_revision=1)
    assert published.version == 3 and warnings  # the same warnings, moved: no question asked


@pytest.mark.parametrize(
    ("definitions", "summary"),
    [
        ([], "denies everything"),
        ([DENY_PR], "denies everything"),
        ([ALLOW_MAIN, DENY_PR], "1 allow, 1 deny"),
        ([ALLOW_MAIN, ALLOW_ANY], "2 allows"),
        ([ALLOW_MAIN, DENY_PR, DENY_PR], "1 allow, 2 denies"),
    ],
)
def test_policy_summary(definitions: list[Any], summary: str) -> None:
    assert policy_summary(definitions) == summary
