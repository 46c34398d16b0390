"""What the policy pages share: finding the policy, the editor's cards and lint, saving a
change to the draft and saying what happened."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse

from policies import drafts, selectors, services
from policies.errors import DraftChanged, PolicyInvalid
from policies.examples import Example, example_for
from policies.matching import SUBJECT_FIELDS
from policies.models import AuthPolicy
from policies.patterns import PolicyError
from policies.validation import FieldError, LintWarning
from portal.acting import acting_user
from portal.policies.draft_views import draft_panel
from portal.policies.forms import (
    DefinitionForm,
    RawForm,
    SimulateForm,
    is_text,
    locate,
    pretty_json,
)
from trustportal.models import Organization, Role

# --------------------------------------------------------------------------------------------
# Shared helpers


def policy_or_404(organization: Organization, issuer_id: UUID | str) -> AuthPolicy:
    policy = selectors.policy_for_issuer(organization, issuer_id)
    if policy is None:
        raise Http404("No such issuer.")
    return policy


def editor_url(policy: AuthPolicy, anchor: str = "") -> str:
    url = reverse(
        "policies:editor",
        kwargs={"org": policy.organization.login, "issuer_id": policy.issuer_id},
    )
    return f"{url}#{anchor}" if anchor else url


def issuer_page(policy: AuthPolicy) -> str | None:
    # The issuer pages live in another app that may not be mounted; the link is optional.
    try:
        return reverse(
            "issuers:detail",
            kwargs={"org": policy.organization.login, "issuer_id": policy.issuer_id},
        )
    except NoReverseMatch:
        return None


def base_context(organization: Organization, role: str, policy: AuthPolicy) -> dict[str, Any]:
    return {
        "organization": organization,
        "policy": policy,
        "issuer": policy.issuer,
        "is_admin": role == Role.ADMIN,
        "issuer_page": issuer_page(policy),
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


def save(
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
        return Refused(errors=all_errors(policy, definitions, also_invalid))
    try:
        draft, warnings = drafts.draft_stage(
            policy=policy,
            definitions=definitions,
            expected_revision=expected_revision,
            note=note,
            by=acting_user(request),
        )
    except PolicyInvalid as exc:
        return Refused(errors=exc.errors)
    except DraftChanged as exc:
        return Refused(conflict=Conflict(exc.yours, exc.current))
    return Saved(draft.revision, warnings)


def all_errors(
    policy: AuthPolicy, definitions: Any, known: Sequence[FieldError]
) -> list[FieldError]:
    """Every error the service finds, plus those already known: all shown at once."""
    try:
        services.policy_check(policy=policy, definitions=definitions)
    except PolicyInvalid as exc:
        return [*exc.errors, *known]
    return list(known)


def announce(request: HttpRequest, saved: Saved, what: str) -> None:
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


def note(action: str, extra: str = "") -> str:
    return f"{action}: {extra.strip()}" if extra.strip() else action


def reload(policy: AuthPolicy) -> AuthPolicy:
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


def cards(definitions: list[Any], warnings: list[LintWarning]) -> list[DefinitionCard]:
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


def lint(policy: AuthPolicy, definitions: Any) -> tuple[list[LintWarning], str | None]:
    try:
        return services.policy_lint(policy=policy, definitions=definitions), None
    except PolicyError as exc:  # saved before today's validation rules; say so, don't crash
        return [], str(exc)


def render_editor(
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
    warnings, broken = lint(policy, shown)
    readable = is_text(shown)
    if not readable:  # only the API could have saved this; the forms refuse it
        broken = (
            "they contain an unpaired surrogate escape (like \\ud800), which is not text, "
            "so they are shown only as JSON"
        )
    latest = selectors.policy_versions(policy).first()
    offered = example_for(policy.issuer.issuer) if not shown else None
    context = {
        **base_context(organization, role, policy),
        "work": work,
        "draft": draft_panel(policy, work),
        "cards": cards(shown, warnings) if readable else [],
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


def field_problem(error: FieldError) -> str:
    where = locate(error.path)
    if where.index is None:
        return str(error)
    return f"Definition {where.index + 1} ({error.path}): {error.message}"
