"""The draft on the policy editor: what it would change, and Publish, Discard and Restart.

The panel shows the open draft's differences from the live version, the lint warnings it would
add and a replay summary over the issuer's last exchanges. Publish asks for confirmation when the
draft adds warnings, and is refused when the live policy changed since the draft was started.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from exchange import simulation
from kernel.errors import BadRequest
from policies import drafts, selectors
from policies.errors import (
    ConfirmationRequired,
    DraftChanged,
    DraftStale,
    NoDraft,
    PolicyInvalid,
)
from policies.models import AuthPolicy, PolicyDraft
from policies.patterns import PolicyError
from policies.selectors import WorkingCopy
from policies.validation import LintWarning
from portal.acting import acting_user
from portal.policies.diffs import DiffLine, definitions_diff
from portal.policies.forms import PublishForm, RevisionForm
from trustportal.access import Need, organization_for_user


@dataclass(frozen=True)
class ReplaySummary:
    changed: int
    replayed: int


@dataclass(frozen=True)
class DraftPanel:
    draft: PolicyDraft
    live_version: int
    diff: list[DiffLine]
    added_warnings: list[LintWarning]
    replay: ReplaySummary | None

    @property
    def stale(self) -> bool:
        return self.draft.base_version != self.live_version


def draft_panel(policy: AuthPolicy, work: WorkingCopy) -> DraftPanel | None:
    """What publishing the open draft would change; None when no draft is open."""
    if work.draft is None:
        return None
    try:
        added = drafts.warnings_added(policy=policy, definitions=work.definitions)
    except PolicyError:
        added = []
    try:
        result = simulation.replay(
            policy=policy, draft=work.definitions, limit=simulation.REPLAY_DEFAULT
        )
        replay: ReplaySummary | None = ReplaySummary(len(result["changed"]), result["replayed"])
    except (PolicyInvalid, BadRequest, PolicyError):
        replay = None
    return DraftPanel(
        draft=work.draft,
        live_version=policy.version,
        diff=definitions_diff(policy.definitions, work.definitions),
        added_warnings=added,
        replay=replay,
    )


def _policy(request: HttpRequest, org: str, issuer_id: UUID) -> AuthPolicy:
    organization, _role = organization_for_user(request.user, org, Need.ADMIN)
    policy = selectors.policy_for_issuer(organization, issuer_id)
    if policy is None:
        raise Http404("No such issuer.")
    return policy


def _editor(policy: AuthPolicy) -> HttpResponse:
    return redirect(
        reverse(
            "policies:editor",
            kwargs={"org": policy.organization.login, "issuer_id": policy.issuer_id},
        )
        + "#draft"
    )


def _revision(request: HttpRequest, policy: AuthPolicy) -> int | None:
    form = RevisionForm(request.POST)
    if form.is_valid():
        return int(form.cleaned_data["revision"])
    messages.error(request, "The button's form was incomplete; reload the page and try again.")
    return None


@login_required
@require_POST
def publish(request: HttpRequest, org: str, issuer_id: UUID) -> HttpResponse:
    """Make the draft live as one version; ask first when it adds lint warnings."""
    policy = _policy(request, org, issuer_id)
    form = PublishForm(request.POST)
    if not form.is_valid():
        messages.error(request, "The button's form was incomplete; reload the page and try again.")
        return _editor(policy)
    revision = form.cleaned_data["revision"]
    try:
        published, warnings = drafts.draft_publish(
            policy=policy,
            expected_revision=revision,
            confirmed=form.cleaned_data["confirm"],
            by=acting_user(request),
        )
    except ConfirmationRequired as exc:
        context = {
            "organization": policy.organization,
            "policy": policy,
            "issuer": policy.issuer,
            "is_admin": True,
            "warnings": exc.warnings,
            "revision": revision,
        }
        return render(request, "policies/publish_confirm.html", context, status=409)
    except (DraftChanged, DraftStale, NoDraft) as exc:
        messages.error(request, exc.message)
        return _editor(policy)
    except PolicyInvalid as exc:
        messages.error(request, f"Not published: the draft is no longer valid: {exc.message}")
        return _editor(policy)
    count = len(warnings)
    warned = f" It has {count} warning{'s' if count != 1 else ''}." if count else ""
    messages.success(request, f"Draft published as version {published.version}.{warned}")
    return _editor(published)


@login_required
@require_POST
def discard(request: HttpRequest, org: str, issuer_id: UUID) -> HttpResponse:
    """Drop the draft; the live policy is unchanged."""
    policy = _policy(request, org, issuer_id)
    revision = _revision(request, policy)
    if revision is not None:
        try:
            drafts.draft_discard(policy=policy, expected_revision=revision, by=acting_user(request))
        except (DraftChanged, NoDraft) as exc:
            messages.error(request, exc.message)
        else:
            messages.success(
                request, f"Draft discarded: the live policy stays at version {policy.version}."
            )
    return _editor(policy)


@login_required
@require_POST
def restart(request: HttpRequest, org: str, issuer_id: UUID) -> HttpResponse:
    """Base the draft on the live version now, after the admin reviewed the differences."""
    policy = _policy(request, org, issuer_id)
    revision = _revision(request, policy)
    if revision is not None:
        try:
            drafts.draft_restart(policy=policy, expected_revision=revision, by=acting_user(request))
        except (DraftChanged, NoDraft) as exc:
            messages.error(request, exc.message)
        else:
            messages.success(
                request,
                f"The draft now starts from version {policy.version}: the differences shown "
                "are what publishing it would change.",
            )
    return _editor(policy)
