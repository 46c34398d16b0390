"""The policy editor: the ordered definitions, staged on the issuer's draft (add, edit, move,
remove, replace all)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from policies import selectors
from policies.examples import example_for, placeholder_errors
from policies.models import AuthPolicy
from portal.policies.editing import (
    Conflict,
    Refused,
    Saved,
    all_errors,
    announce,
    editor_url,
    field_problem,
    note,
    policy_or_404,
    reload,
    render_editor,
    save,
)
from portal.policies.forms import (
    DefinitionForm,
    RawForm,
    RevisionForm,
    pretty_json,
)
from trustportal.access import Need, organization_for_user
from trustportal.models import Organization, Role


@login_required
@require_GET
def editor(request: HttpRequest, org: str, issuer_id: UUID) -> HttpResponse:
    """The issuer's policy: its definitions in order, warnings inline, forms for admins."""
    organization, role = organization_for_user(request.user, org, Need.READ_CONFIGURATION)
    policy = policy_or_404(organization, issuer_id)
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
    return render_editor(request, organization, role, policy, raw_form=raw_form, example=example)


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
            return render_editor(
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
        return render_editor(
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
                all_errors(policy, definitions, placeholder_errors(definitions, {target})),
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
        outcome = save(
            request,
            policy,
            definitions,
            expected_revision=revision,
            note=note(f"{action} definition {target + 1}", form.cleaned_data["note"]),
            also_invalid=placeholder_errors(definitions, {target}),
        )
    if isinstance(outcome, Saved):
        done = "added" if index is None else "saved"
        announce(request, outcome, f"Definition {target + 1} {done}.")
        return redirect(editor_url(policy, f"definition-{target + 1}"))
    if outcome.conflict is not None:
        # Keep the input; a second submit applies it to the draft now shown.
        data = request.POST.copy()
        data["revision"] = str(outcome.conflict.current)
        kept = DefinitionForm(data, key=form.key)
        kept.is_valid()
        return again(reload(policy), kept, 409, outcome.conflict)
    form.add_policy_errors(outcome.errors, target)
    return again(policy, form, 400)


@login_required
@require_POST
def definition_add(request: HttpRequest, org: str, issuer_id: UUID) -> HttpResponse:
    organization, role = organization_for_user(request.user, org, Need.ADMIN)
    policy = policy_or_404(organization, issuer_id)
    form = DefinitionForm(request.POST, key="add")
    return _definition_saved_or_shown(request, organization, role, policy, form, None)


@login_required
@require_http_methods(["GET", "POST"])
def definition_edit(request: HttpRequest, org: str, issuer_id: UUID, index: int) -> HttpResponse:
    """GET: the editor with this definition's card turned into a form. POST: save it."""
    organization, role = organization_for_user(request.user, org, Need.ADMIN)
    policy = policy_or_404(organization, issuer_id)
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
        return redirect(editor_url(policy))
    form = DefinitionForm(key="edit", definition=work.definitions[index], revision=work.revision)
    return render_editor(request, organization, role, policy, editing=index, edit_form=form)


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
        return render_editor(request, organization, role, policy, status=400, problems=[problem])
    revision, work = form.cleaned_data["revision"], selectors.working_copy(policy)
    definitions = rearrange(list(work.definitions)) if revision == work.revision else None
    if definitions is None and revision == work.revision:
        raise Http404("No such definition.")
    outcome = save(request, policy, definitions or [], expected_revision=revision, note=note)
    if isinstance(outcome, Saved):
        announce(request, outcome, done)
        return redirect(editor_url(policy, anchor))
    if outcome.conflict is not None:
        return render_editor(
            request, organization, role, reload(policy), status=409, conflict=outcome.conflict
        )
    problems = [f"Nothing was changed: the policy would be invalid after this ({note})."]
    problems += [field_problem(error) for error in outcome.errors]
    return render_editor(request, organization, role, policy, status=400, problems=problems)


@login_required
@require_POST
def definition_delete(request: HttpRequest, org: str, issuer_id: UUID, index: int) -> HttpResponse:
    organization, role = organization_for_user(request.user, org, Need.ADMIN)
    policy = policy_or_404(organization, issuer_id)

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
    policy = policy_or_404(organization, issuer_id)
    direction = request.POST.get("direction")
    if direction not in ("up", "down"):
        problem = "The move button's form was incomplete; reload the page and try again."
        return render_editor(request, organization, role, policy, status=400, problems=[problem])
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
    policy = policy_or_404(organization, issuer_id)
    form = RawForm(request.POST, auto_id="raw-%s")
    if not form.is_valid():
        return render_editor(request, organization, role, policy, status=400, raw_form=form)
    definitions = form.cleaned_data["definitions"]
    outcome = save(
        request,
        policy,
        definitions,
        expected_revision=form.cleaned_data["revision"],
        note=note("replaced all definitions (JSON)", form.cleaned_data["note"]),
        also_invalid=placeholder_errors(definitions),
    )
    if isinstance(outcome, Saved):
        announce(request, outcome, "Definitions replaced.")
        return redirect(editor_url(policy))
    if outcome.conflict is not None:
        data = request.POST.copy()
        data["revision"] = str(outcome.conflict.current)
        form = RawForm(data, auto_id="raw-%s")
        form.is_valid()
        return render_editor(
            request,
            organization,
            role,
            reload(policy),
            status=409,
            raw_form=form,
            conflict=outcome.conflict,
        )
    form.add_policy_errors(outcome.errors)
    return render_editor(request, organization, role, policy, status=400, raw_form=form)
