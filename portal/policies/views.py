"""Policy pages: the editor (works without JavaScript), simulator, replay and version history.

Views stay thin: they check access (`organization_for_user`), read through selectors, write through
`policies.drafts` and `policies.services`, and put the service's errors next to the inputs they
concern. Editor changes (add, edit, move, delete, replace) stage on the issuer's shared draft with
the draft revision the page showed, so a concurrent edit is refused and explained, never
overwritten; only Publish (`portal.policies.draft_views`) makes the draft live, as one version.
Admins edit; auditors see every page read-only and may use the simulator and replay, which save
nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final
from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from exchange import simulation
from kernel.errors import BadRequest, NotFound
from policies import drafts, selectors, services
from policies.errors import DraftChanged, PolicyInvalid
from policies.examples import Example, example_for, placeholder_errors
from policies.matching import SUBJECT_FIELDS
from policies.models import AuthPolicy, AuthPolicyVersion
from policies.patterns import PolicyError
from policies.samples import sample_claims
from policies.validation import FieldError, LintWarning
from portal.policies.diffs import DiffLine, definitions_diff
from portal.policies.draft_views import draft_panel
from portal.policies.forms import (
    DefinitionForm,
    RawForm,
    ReplayForm,
    RevisionForm,
    SimulateForm,
    VersionForm,
    is_text,
    locate,
    pretty_json,
)
from trustportal.access import Need, organization_for_user
from trustportal.models import Organization, Role, User

VERSIONS_PER_PAGE: Final = 20


# --------------------------------------------------------------------------------------------
# Shared helpers


def _policy_or_404(organization: Organization, issuer_id: UUID | str) -> AuthPolicy:
    policy = selectors.policy_for_issuer(organization, issuer_id)
    if policy is None:
        raise Http404("No such issuer.")
    return policy


def _user(request: HttpRequest) -> User | None:
    return request.user if isinstance(request.user, User) else None


def _editor_url(policy: AuthPolicy, anchor: str = "") -> str:
    url = reverse(
        "policies:editor",
        kwargs={"org": policy.organization.login, "issuer_id": policy.issuer_id},
    )
    return f"{url}#{anchor}" if anchor else url


def _issuer_page(policy: AuthPolicy) -> str | None:
    # The issuer pages live in another app that may not be mounted; the link is optional.
    try:
        return reverse(
            "issuers:detail",
            kwargs={"org": policy.organization.login, "issuer_id": policy.issuer_id},
        )
    except NoReverseMatch:
        return None


def _base_context(organization: Organization, role: str, policy: AuthPolicy) -> dict[str, Any]:
    return {
        "organization": organization,
        "policy": policy,
        "issuer": policy.issuer,
        "is_admin": role == Role.ADMIN,
        "issuer_page": _issuer_page(policy),
    }


@dataclass(frozen=True)
class Conflict:
    """An edit refused because the draft moved on since the page was loaded (revisions)."""

    yours: int
    current: int


@dataclass(frozen=True)
class Saved:
    revision: int
    warnings: list[LintWarning]


@dataclass(frozen=True)
class Refused:
    errors: list[FieldError] = field(default_factory=list)
    conflict: Conflict | None = None


def _save(
    request: HttpRequest,
    policy: AuthPolicy,
    definitions: Any,
    *,
    expected_revision: int,
    note: str,
    also_invalid: Sequence[FieldError] = (),
) -> Saved | Refused:
    """Stage on the draft (`draft_stage`); refusals (invalid, stale) come back as data."""
    if also_invalid:
        return Refused(errors=_all_errors(policy, definitions, also_invalid))
    try:
        draft, warnings = drafts.draft_stage(
            policy=policy,
            definitions=definitions,
            expected_revision=expected_revision,
            note=note,
            by=_user(request),
        )
    except PolicyInvalid as exc:
        return Refused(errors=exc.errors)
    except DraftChanged as exc:
        return Refused(conflict=Conflict(exc.yours, exc.current))
    return Saved(draft.revision, warnings)


def _all_errors(
    policy: AuthPolicy, definitions: Any, known: Sequence[FieldError]
) -> list[FieldError]:
    """Every error the service finds, plus those already known: all shown at once."""
    try:
        services.policy_check(policy=policy, definitions=definitions)
    except PolicyInvalid as exc:
        return [*exc.errors, *known]
    return list(known)


def _announce(request: HttpRequest, saved: Saved, what: str) -> None:
    count = len(saved.warnings)
    warned = (
        f" It has {count} warning{'s' if count != 1 else ''}, shown next to the definitions "
        "they concern."
        if count
        else ""
    )
    messages.success(
        request, f"{what} Staged in the draft: nothing is live until you publish it.{warned}"
    )


def _note(action: str, extra: str = "") -> str:
    return f"{action}: {extra.strip()}" if extra.strip() else action


def _reload(policy: AuthPolicy) -> AuthPolicy:
    found = selectors.policy_for_issuer(policy.organization, policy.issuer_id)
    if found is None:  # deleted with its issuer meanwhile
        raise Http404("No such issuer.")
    return found


# --------------------------------------------------------------------------------------------
# The editor


@dataclass(frozen=True)
class RuleView:
    claim: str
    patterns: list[str]
    warnings: list[LintWarning]


@dataclass(frozen=True)
class DefinitionCard:
    """One saved definition as the editor shows it."""

    index: int
    definition: dict[str, Any]
    rules: list[RuleView]
    warnings: list[LintWarning]
    is_first: bool
    is_last: bool

    @property
    def number(self) -> int:
        return self.index + 1

    @property
    def subject_field(self) -> str | None:
        return SUBJECT_FIELDS.get(str(self.definition.get("tokenType")))

    @property
    def subject(self) -> Any:
        name = self.subject_field
        return self.definition.get(name) if name else None


def _cards(definitions: list[Any], warnings: list[LintWarning]) -> list[DefinitionCard]:
    by_rule: dict[tuple[int, str], list[LintWarning]] = defaultdict(list)
    by_definition: dict[int, list[LintWarning]] = defaultdict(list)
    for warning in warnings:
        where = locate(warning.path)
        if where.index is None:
            continue
        if where.claim is not None:
            by_rule[(where.index, where.claim)].append(warning)
        else:
            by_definition[where.index].append(warning)
    cards = []
    for index, definition in enumerate(definitions):
        rules = definition.get("rules") or {}
        cards.append(
            DefinitionCard(
                index=index,
                definition=definition,
                rules=[
                    RuleView(
                        claim,
                        patterns if isinstance(patterns, list) else [patterns],
                        by_rule.get((index, claim), []),
                    )
                    for claim, patterns in rules.items()
                ],
                warnings=by_definition.get(index, []),
                is_first=index == 0,
                is_last=index == len(definitions) - 1,
            )
        )
    return cards


def _lint(policy: AuthPolicy, definitions: Any) -> tuple[list[LintWarning], str | None]:
    try:
        return services.policy_lint(policy=policy, definitions=definitions), None
    except PolicyError as exc:  # saved before today's validation rules; say so, don't crash
        return [], str(exc)


def _render_editor(
    request: HttpRequest,
    organization: Organization,
    role: str,
    policy: AuthPolicy,
    *,
    status: int = 200,
    editing: int | None = None,
    edit_form: DefinitionForm | None = None,
    add_form: DefinitionForm | None = None,
    raw_form: RawForm | None = None,
    conflict: Conflict | None = None,
    problems: Sequence[str] = (),
    example: Example | None = None,
) -> HttpResponse:
    work = selectors.working_copy(policy)
    shown = work.definitions
    warnings, broken = _lint(policy, shown)
    readable = is_text(shown)
    if not readable:  # only the API could have saved this; the forms refuse it
        broken = (
            "they contain an unpaired surrogate escape (like \\ud800), which is not text, "
            "so they are shown only as JSON"
        )
    latest = selectors.policy_versions(policy).first()
    offered = example_for(policy.issuer.issuer) if not shown else None
    context = {
        **_base_context(organization, role, policy),
        "work": work,
        "draft": draft_panel(policy, work),
        "cards": _cards(shown, warnings) if readable else [],
        "warning_count": len(warnings),
        "broken": broken,
        "latest": latest,
        "editing": editing,
        "edit_form": edit_form,
        "add_form": add_form or DefinitionForm(key="add", revision=work.revision),
        "raw_form": raw_form
        or RawForm(
            initial={"definitions": pretty_json(shown), "revision": work.revision},
            auto_id="raw-%s",
        ),
        "raw_open": raw_form is not None,
        "conflict": conflict,
        "problems": problems,
        "offered_example": offered,
        "example": example,
        "simulate_form": SimulateForm(initial={"draft": pretty_json(shown)}, auto_id="sim-%s"),
    }
    return render(request, "policies/editor.html", context, status=status)


@login_required
@require_GET
def editor(request: HttpRequest, org: str, issuer_id: UUID) -> HttpResponse:
    """The issuer's policy: its definitions in order, warnings inline, forms for admins."""
    organization, role = organization_for_user(request.user, org, Need.READ_CONFIGURATION)
    policy = _policy_or_404(organization, issuer_id)
    example = None
    raw_form = None
    if request.GET.get("example") and role == Role.ADMIN:
        example = example_for(policy.issuer.issuer)
        if example is not None:
            # In the form only: nothing is staged until the admin presses Save.
            raw_form = RawForm(
                initial={
                    "definitions": pretty_json(example.definitions),
                    "revision": selectors.working_copy(policy).revision,
                    "note": f"from the {example.provider} example",
                },
                auto_id="raw-%s",
            )
    return _render_editor(request, organization, role, policy, raw_form=raw_form, example=example)


def _with_definition(
    shown: list[Any], index: int | None, definition: dict[str, Any]
) -> tuple[list[Any], int]:
    """The shown definitions with one added (index None) or replaced, and where it is."""
    definitions = list(shown)
    if index is None:
        definitions.append(definition)
        return definitions, len(definitions) - 1
    definitions[index] = definition
    return definitions, index


def _definition_saved_or_shown(
    request: HttpRequest,
    organization: Organization,
    role: str,
    policy: AuthPolicy,
    form: DefinitionForm,
    index: int | None,
) -> HttpResponse:
    """Save an added (index None) or edited definition, or show the form again with why not."""

    def again(
        policy: AuthPolicy, form: DefinitionForm, status: int, conflict: Conflict | None = None
    ) -> HttpResponse:
        if index is not None and index < len(selectors.working_copy(policy).definitions):
            return _render_editor(
                request,
                organization,
                role,
                policy,
                status=status,
                editing=index,
                edit_form=form,
                conflict=conflict,
            )
        gone = (
            [f"Definition {index + 1} no longer exists; you can add yours as a new definition."]
            if index is not None
            else []
        )
        return _render_editor(
            request,
            organization,
            role,
            policy,
            status=status,
            add_form=form,
            conflict=conflict,
            problems=gone,
        )

    work = selectors.working_copy(policy)
    exists = index is None or index < len(work.definitions)
    if not form.is_valid():
        partial = form.partial_definition()
        if partial is not None and exists:
            # Some rule rows are incomplete; check the rest now rather than after the fix.
            definitions, target = _with_definition(work.definitions, index, partial)
            form.add_policy_errors(
                _all_errors(policy, definitions, placeholder_errors(definitions, {target})),
                target,
            )
        return again(policy, form, 400)
    revision = form.cleaned_data["revision"]
    if not exists and revision == work.revision:
        raise Http404("No such definition.")
    outcome: Saved | Refused = Refused(conflict=Conflict(revision, work.revision))
    target = -1
    if exists:
        definitions, target = _with_definition(work.definitions, index, form.definition())
        action = "added" if index is None else "edited"
        outcome = _save(
            request,
            policy,
            definitions,
            expected_revision=revision,
            note=_note(f"{action} definition {target + 1}", form.cleaned_data["note"]),
            also_invalid=placeholder_errors(definitions, {target}),
        )
    if isinstance(outcome, Saved):
        done = "added" if index is None else "saved"
        _announce(request, outcome, f"Definition {target + 1} {done}.")
        return redirect(_editor_url(policy, f"definition-{target + 1}"))
    if outcome.conflict is not None:
        # Keep the input; a second submit applies it to the draft now shown.
        data = request.POST.copy()
        data["revision"] = str(outcome.conflict.current)
        kept = DefinitionForm(data, key=form.key)
        kept.is_valid()
        return again(_reload(policy), kept, 409, outcome.conflict)
    form.add_policy_errors(outcome.errors, target)
    return again(policy, form, 400)


@login_required
@require_POST
def definition_add(request: HttpRequest, org: str, issuer_id: UUID) -> HttpResponse:
    organization, role = organization_for_user(request.user, org, Need.ADMIN)
    policy = _policy_or_404(organization, issuer_id)
    form = DefinitionForm(request.POST, key="add")
    return _definition_saved_or_shown(request, organization, role, policy, form, None)


@login_required
@require_http_methods(["GET", "POST"])
def definition_edit(request: HttpRequest, org: str, issuer_id: UUID, index: int) -> HttpResponse:
    """GET: the editor with this definition's card turned into a form. POST: save it."""
    organization, role = organization_for_user(request.user, org, Need.ADMIN)
    policy = _policy_or_404(organization, issuer_id)
    if request.method == "POST":
        form = DefinitionForm(request.POST, key="edit")
        return _definition_saved_or_shown(request, organization, role, policy, form, index)
    work = selectors.working_copy(policy)
    if index >= len(work.definitions):
        count = len(work.definitions)
        messages.error(
            request,
            f"Definition {index + 1} does not exist: the policy has "
            f"{count} definition{'s' if count != 1 else ''}.",
        )
        return redirect(_editor_url(policy))
    form = DefinitionForm(key="edit", definition=work.definitions[index], revision=work.revision)
    return _render_editor(request, organization, role, policy, editing=index, edit_form=form)


def _problem(error: FieldError) -> str:
    where = locate(error.path)
    if where.index is None:
        return str(error)
    return f"Definition {where.index + 1} ({error.path}): {error.message}"


def _rearranged(
    request: HttpRequest,
    organization: Organization,
    role: str,
    policy: AuthPolicy,
    rearrange: Callable[[list[Any]], list[Any] | None],
    *,
    note: str,
    done: str,
    anchor: str = "",
) -> HttpResponse:
    """Delete or move a definition of the draft revision the button was shown for.

    `rearrange` returns the new list, or None when the button does not fit that revision.
    """
    form = RevisionForm(request.POST)
    if not form.is_valid():
        problem = "The button's form was incomplete; reload the page and try again."
        return _render_editor(request, organization, role, policy, status=400, problems=[problem])
    revision, work = form.cleaned_data["revision"], selectors.working_copy(policy)
    definitions = rearrange(list(work.definitions)) if revision == work.revision else None
    if definitions is None and revision == work.revision:
        raise Http404("No such definition.")
    outcome = _save(request, policy, definitions or [], expected_revision=revision, note=note)
    if isinstance(outcome, Saved):
        _announce(request, outcome, done)
        return redirect(_editor_url(policy, anchor))
    if outcome.conflict is not None:
        return _render_editor(
            request, organization, role, _reload(policy), status=409, conflict=outcome.conflict
        )
    problems = [f"Nothing was changed: the policy would be invalid after this ({note})."]
    problems += [_problem(error) for error in outcome.errors]
    return _render_editor(request, organization, role, policy, status=400, problems=problems)


@login_required
@require_POST
def definition_delete(request: HttpRequest, org: str, issuer_id: UUID, index: int) -> HttpResponse:
    organization, role = organization_for_user(request.user, org, Need.ADMIN)
    policy = _policy_or_404(organization, issuer_id)

    def delete(definitions: list[Any]) -> list[Any] | None:
        if index >= len(definitions):
            return None
        return definitions[:index] + definitions[index + 1 :]

    shown = selectors.working_copy(policy).definitions
    gone = shown[index] if index < len(shown) else None
    live = policy.definitions.index(gone) if gone and gone in policy.definitions else -1
    revoke = reverse("tokens:revoke-matching", kwargs={"org": organization.login})

    return _rearranged(
        request,
        organization,
        role,
        policy,
        delete,
        note=f"deleted definition {index + 1}",
        done=f"Definition {index + 1} deleted."
        + (
            " Tokens it already granted stay valid until they expire; to revoke them once "
            f"published, open {revoke}?policy={policy.pk}&version={policy.version}"
            f"&definition={live}"
            if live >= 0
            else ""
        ),
    )


@login_required
@require_POST
def definition_move(request: HttpRequest, org: str, issuer_id: UUID, index: int) -> HttpResponse:
    organization, role = organization_for_user(request.user, org, Need.ADMIN)
    policy = _policy_or_404(organization, issuer_id)
    direction = request.POST.get("direction")
    if direction not in ("up", "down"):
        problem = "The move button's form was incomplete; reload the page and try again."
        return _render_editor(request, organization, role, policy, status=400, problems=[problem])
    other = index - 1 if direction == "up" else index + 1

    def move(definitions: list[Any]) -> list[Any] | None:
        if not (index < len(definitions) and 0 <= other < len(definitions)):
            return None
        definitions[index], definitions[other] = definitions[other], definitions[index]
        return definitions

    return _rearranged(
        request,
        organization,
        role,
        policy,
        move,
        note=f"moved definition {index + 1} {direction}",
        done=f"Definition {index + 1} moved {direction}: it is now definition {other + 1}.",
        anchor=f"definition-{other + 1}",
    )


@login_required
@require_POST
def definitions_replace(request: HttpRequest, org: str, issuer_id: UUID) -> HttpResponse:
    """Replace every definition with pasted JSON (validated exactly like the other forms)."""
    organization, role = organization_for_user(request.user, org, Need.ADMIN)
    policy = _policy_or_404(organization, issuer_id)
    form = RawForm(request.POST, auto_id="raw-%s")
    if not form.is_valid():
        return _render_editor(request, organization, role, policy, status=400, raw_form=form)
    definitions = form.cleaned_data["definitions"]
    outcome = _save(
        request,
        policy,
        definitions,
        expected_revision=form.cleaned_data["revision"],
        note=_note("replaced all definitions (JSON)", form.cleaned_data["note"]),
        also_invalid=placeholder_errors(definitions),
    )
    if isinstance(outcome, Saved):
        _announce(request, outcome, "Definitions replaced.")
        return redirect(_editor_url(policy))
    if outcome.conflict is not None:
        data = request.POST.copy()
        data["revision"] = str(outcome.conflict.current)
        form = RawForm(data, auto_id="raw-%s")
        form.is_valid()
        return _render_editor(
            request,
            organization,
            role,
            _reload(policy),
            status=409,
            raw_form=form,
            conflict=outcome.conflict,
        )
    form.add_policy_errors(outcome.errors)
    return _render_editor(request, organization, role, policy, status=400, raw_form=form)


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
    policy = _policy_or_404(organization, issuer_id)
    result = None
    if request.method == "POST":
        form = SimulateForm(request.POST, auto_id="sim-%s")
        if form.is_valid():
            result = _run_simulation(policy, form)
    else:
        form = SimulateForm(initial={"draft": pretty_json(policy.definitions)}, auto_id="sim-%s")
    context = {
        **_base_context(organization, role, policy),
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
    policy = _policy_or_404(organization, issuer_id)
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
        **_base_context(organization, role, policy),
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
    policy = _policy_or_404(organization, issuer_id)
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
        **_base_context(organization, role, policy),
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
    policy = _policy_or_404(organization, issuer_id)
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
            policy=policy, version=version, by=_user(request)
        )
    except NotFound as exc:
        raise Http404(exc.message) from exc
    except PolicyInvalid as exc:
        messages.error(
            request,
            f"Version {version} cannot be restored as it is: "
            + "; ".join(_problem(error) for error in exc.errors),
        )
        return redirect(versions_url)
    count = len(warnings)
    warned = f" It has {count} warning{'s' if count != 1 else ''}." if count else ""
    messages.success(
        request, f"Rolled back to version {version}: live as version {saved.version}.{warned}"
    )
    return redirect(_editor_url(saved))
