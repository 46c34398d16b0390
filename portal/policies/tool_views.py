"""The policy's tools beside the editor: the simulator, replay over past exchanges, versions
and rollback."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from exchange import simulation
from kernel.errors import BadRequest, NotFound
from policies import selectors, services
from policies.errors import PolicyInvalid
from policies.models import AuthPolicy, AuthPolicyVersion
from policies.samples import sample_claims
from portal.acting import acting_user
from portal.policies.diffs import DiffLine, definitions_diff
from portal.policies.editing import (
    base_context,
    editor_url,
    field_problem,
    policy_or_404,
)
from portal.policies.forms import (
    ReplayForm,
    SimulateForm,
    VersionForm,
    is_text,
    pretty_json,
)
from trustportal.access import Need, organization_for_user

VERSIONS_PER_PAGE: Final = 20


# --------------------------------------------------------------------------------------------
# Simulator


REASONS: Final = {
    "allowed": "the first allow that applies grants it, and no deny applies",
    "denied_by_policy": "a deny applies, and a deny always wins",
    "no_matching_policy": "no allow applies to these claims and this request",
}
SIGNATURES: Final = {
    "valid": "valid: checked with this issuer's keys",
    "not_checked": "not checked (the real exchange always checks it)",
    "not_applicable": "none: claims were given, not a token",
}


def _run_simulation(policy: AuthPolicy, form: SimulateForm) -> dict[str, Any] | None:
    """Evaluate what the form describes; put refusals on the form and return None."""
    data = form.cleaned_data
    source = data["source"]
    claims = None
    if source == "sample":
        claims = sample_claims(data["sample"])
    elif source == "claims":
        claims = data["claims_value"]
    try:
        result = simulation.simulate(
            policy=policy,
            claims=claims,
            token=data["token"] if source == "token" else None,
            check_signature=data["check_signature"],
            token_type=data["token_type"],
            scope=data["scope"],
            draft=data.get("draft_value") if data["policy_source"] == "draft" else None,
            now=timezone.now(),
        )
    except PolicyInvalid as exc:
        for error in exc.errors:
            form.add_error("draft", str(error))
        return None
    except BadRequest as exc:
        form.add_error(None, exc.message)
        return None
    except RecursionError:  # a pasted token's payload nested thousands deep
        form.add_error(None, "The token cannot be decoded: its claims are nested too deeply.")
        return None
    if not is_text(result):
        form.add_error(
            None,
            "The result cannot be shown: the claims or the policy contain an unpaired "
            "surrogate escape (like \\ud800), or the claims are nested too deeply.",
        )
        return None
    signature = str(result["signature"])
    result["signature_ok"] = not signature.startswith("invalid")
    result["signature_text"] = SIGNATURES.get(
        signature,
        f"INVALID ({signature.removeprefix('invalid: ')}): the real exchange "
        "would refuse this token before evaluating any policy",
    )
    result["reason_text"] = REASONS.get(result["reason"], result["reason"])
    index = result["definitionIndex"]
    result["deciding_number"] = None if index is None else index + 1
    result["claims_json"] = pretty_json(result["claims"])
    result["source"] = source
    for definition in result["trace"]:
        definition["number"] = definition["index"] + 1
    return result


@login_required
@require_http_methods(["GET", "POST"])
def simulate(request: HttpRequest, org: str, issuer_id: UUID) -> HttpResponse:
    """Evaluate claims or a token against the current or a draft policy; saves nothing."""
    organization, role = organization_for_user(request.user, org, Need.READ_CONFIGURATION)
    policy = policy_or_404(organization, issuer_id)
    result = None
    if request.method == "POST":
        form = SimulateForm(request.POST, auto_id="sim-%s")
        if form.is_valid():
            result = _run_simulation(policy, form)
    else:
        form = SimulateForm(initial={"draft": pretty_json(policy.definitions)}, auto_id="sim-%s")
    context = {
        **base_context(organization, role, policy),
        "simulate_form": form,
        "result": result,
    }
    status = 400 if form.is_bound and result is None else 200
    return render(request, "policies/simulate.html", context, status=status)


# --------------------------------------------------------------------------------------------
# Replay


@dataclass(frozen=True)
class ChangedOutcome:
    event_id: int
    created: datetime | None
    sub: str
    token_type: str
    scope: str
    current: dict[str, Any]
    draft: dict[str, Any]

    @property
    def draft_number(self) -> int | None:
        index = self.draft.get("definitionIndex")
        return None if index is None else int(index) + 1


@login_required
@require_http_methods(["GET", "POST"])
def replay(request: HttpRequest, org: str, issuer_id: UUID) -> HttpResponse:
    """A draft against the issuer's last real exchanges: which outcomes would change."""
    organization, role = organization_for_user(request.user, org, Need.READ_CONFIGURATION)
    policy = policy_or_404(organization, issuer_id)
    result = None
    changed: list[ChangedOutcome] = []
    if request.method == "POST":
        form = ReplayForm(request.POST, auto_id="replay-%s")
        if form.is_valid():
            try:
                result = simulation.replay(
                    policy=policy,
                    draft=form.cleaned_data["draft"],
                    limit=simulation.REPLAY_DEFAULT,
                )
            except PolicyInvalid as exc:
                for error in exc.errors:
                    form.add_error("draft", str(error))
            except BadRequest as exc:
                form.add_error(None, exc.message)
        if result is not None:
            changed = [
                ChangedOutcome(
                    event_id=item["eventId"],
                    created=parse_datetime(item["created"]),
                    sub=item["sub"],
                    token_type=item["tokenType"],
                    scope=item["scope"],
                    current=item["current"],
                    draft=item["draft"],
                )
                for item in result["changed"]
            ]
    else:
        shown = selectors.working_copy(policy).definitions
        form = ReplayForm(initial={"draft": pretty_json(shown)}, auto_id="replay-%s")
    context = {
        **base_context(organization, role, policy),
        "form": form,
        "result": result,
        "changed": changed,
        "limit": simulation.REPLAY_DEFAULT,
    }
    status = 400 if form.is_bound and result is None else 200
    return render(request, "policies/replay.html", context, status=status)


# --------------------------------------------------------------------------------------------
# Version history


@dataclass(frozen=True)
class VersionRow:
    version: AuthPolicyVersion
    diff: list[DiffLine]
    is_current: bool
    is_first: bool

    @property
    def author(self) -> str:
        if self.version.created_by is not None:
            return self.version.created_by.get_username()
        if self.version.created_by_token:
            return f"API token {self.version.created_by_token}"
        return "the portal"


@login_required
@require_GET
def versions(request: HttpRequest, org: str, issuer_id: UUID) -> HttpResponse:
    """Every version, newest first, each with its diff against the one before."""
    organization, role = organization_for_user(request.user, org, Need.READ_CONFIGURATION)
    policy = policy_or_404(organization, issuer_id)
    try:
        page = max(1, int(request.GET.get("page", "1")))
    except ValueError:
        page = 1
    start = (page - 1) * VERSIONS_PER_PAGE
    # One more than the page shows: the diff of the page's oldest version needs its predecessor.
    window = list(selectors.policy_versions(policy)[start : start + VERSIONS_PER_PAGE + 1])
    if not window and page > 1:
        raise Http404("No such page.")
    rows = []
    for position, version in enumerate(window[:VERSIONS_PER_PAGE]):
        before = window[position + 1] if position + 1 < len(window) else None
        rows.append(
            VersionRow(
                version=version,
                diff=definitions_diff(before.definitions if before else [], version.definitions),
                is_current=version.version == policy.version,
                is_first=before is None and version.version == 1,
            )
        )
    total = selectors.policy_versions(policy).count()
    context = {
        **base_context(organization, role, policy),
        "rows": rows,
        "page": page,
        "previous_page": page - 1 if page > 1 else None,
        "next_page": page + 1 if start + VERSIONS_PER_PAGE < total else None,
        "total": total,
    }
    return render(request, "policies/versions.html", context)


@login_required
@require_POST
def rollback(request: HttpRequest, org: str, issuer_id: UUID, version: int) -> HttpResponse:
    """Save an earlier version's definitions as a new version (admins only)."""
    organization, _role = organization_for_user(request.user, org, Need.ADMIN)
    policy = policy_or_404(organization, issuer_id)
    versions_url = reverse("policies:versions", kwargs={"org": org, "issuer_id": issuer_id})
    form = VersionForm(request.POST)
    if not form.is_valid() or form.cleaned_data["version"] != policy.version:
        messages.error(
            request,
            f"Nothing was rolled back: the policy changed since this page was loaded and is now "
            f"at version {policy.version}. Check the history below and try again.",
        )
        return redirect(versions_url)
    try:
        saved, warnings = services.policy_rollback(
            policy=policy, version=version, by=acting_user(request)
        )
    except NotFound as exc:
        raise Http404(exc.message) from exc
    except PolicyInvalid as exc:
        messages.error(
            request,
            f"Version {version} cannot be restored as it is: "
            + "; ".join(field_problem(error) for error in exc.errors),
        )
        return redirect(versions_url)
    count = len(warnings)
    warned = f" It has {count} warning{'s' if count != 1 else ''}." if count else ""
    messages.success(
        request, f"Rolled back to version {version}: live as version {saved.version}.{warned}"
    )
    return redirect(editor_url(saved))
