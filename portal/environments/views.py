"""Environment pages: the list, the editor (check and save), revision history with diff, grants.

Views stay thin: access through `organization_for_user` and `environments.access` (the same
rules as the API, for the signed-in user), reads through selectors, writes through services;
a service's refusal becomes a message or diagnostics on the page. Pages never show a secret:
definitions are shown sealed and previews mask every secret value.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from environments import access, definitions, grants, selectors, syntax
from environments.access import Actor
from environments.errors import DefinitionInvalid, EnvironmentConflict, EnvironmentInvalid
from environments.evaluator import Evaluation
from environments.models import Environment, Level
from environments.syntax import Diagnostic, Value
from kernel.errors import NotFound
from trustportal.access import Need, organization_for_user
from trustportal.models import Organization, Role, Runner, Team, User

NO_STORE = {"Cache-Control": "no-store"}


class EnvironmentCreateForm(forms.Form):
    """The new-environment form on the list page."""

    project = forms.CharField(max_length=100, help_text="For example payments or default.")
    name = forms.CharField(max_length=100, help_text="For example dev, staging or prod.")

    def add_service_error(self, exc: EnvironmentInvalid | EnvironmentConflict) -> None:
        """Put a service refusal next to the field it names ("The name must …"), else on top."""
        field = next((f for f in ("project", "name") if exc.message.startswith(f"The {f} ")), None)
        self.add_error(field, exc.message)


class DefinitionForm(forms.Form):
    """The editor: the YAML and the revision it was based on (for conflicts)."""

    definition = forms.CharField(
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 24, "spellcheck": "false", "class": "code"}),
    )
    base_revision = forms.IntegerField(widget=forms.HiddenInput, min_value=1)


class GrantForm(forms.Form):
    """Give a team or runner a level (or none) on the environment."""

    grantee = forms.ChoiceField(label="Team or runner")
    permission = forms.ChoiceField(
        choices=[*Level.choices, ("none", "No access (remove)")],
        help_text="Runners get at most open, whatever is chosen here.",
    )

    def __init__(self, *args: Any, organization: Organization, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        teams = Team.objects.filter(organization=organization).order_by("name")
        runners = Runner.objects.filter(organization=organization).order_by("name")
        field = self.fields["grantee"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [(f"team:{t.pk}", f"team {t.name}") for t in teams] + [
            (f"runner:{r.pk}", f"runner {r.name}") for r in runners
        ]


@dataclass(frozen=True)
class Line:
    """One numbered line of a definition, with the diagnostics that point at it."""

    number: int
    text: str
    problems: tuple[str, ...]


@dataclass(frozen=True)
class DiffLine:
    """One line of a unified diff, classified for styling."""

    kind: str  # "add", "del", "hunk", "ctx"
    text: str


def _signed_in(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User)
    return user


def _actor(request: HttpRequest, org: str) -> tuple[Organization, str, Actor]:
    organization, role = organization_for_user(request.user, org, Need.ANY)
    return organization, role, access.actor_for_user(_signed_in(request), organization)


def _environment(
    request: HttpRequest, org: str, project: str, name: str, need: str
) -> tuple[Environment, Actor, str, str]:
    """The environment, its actor, the user's level and org role; 404 without any level."""
    organization, role, actor = _actor(request, org)
    environment = selectors.environment_named(organization.pk, project, name)
    level = access.level_of(actor, environment) if environment is not None else None
    if environment is None or level is None:
        raise Http404("No such environment.")
    if not access.allows(level, need):
        raise PermissionDenied(f"This needs {need} permission on the environment.")
    return environment, actor, level, role


def _to_detail(environment: Environment) -> HttpResponse:
    return redirect(
        "environments:detail",
        org=environment.organization.login,
        project=environment.project,
        name=environment.name,
    )


def numbered(text: str, diagnostics: tuple[Diagnostic, ...] = ()) -> list[Line]:
    """The definition's lines with the problems reported on each (by line number)."""
    by_line: dict[int, list[str]] = {}
    for diagnostic in diagnostics:
        if diagnostic.range is not None:
            by_line.setdefault(diagnostic.range.begin.line, []).append(diagnostic.summary)
    lines = text.splitlines() or [""]
    # A problem at the end of the text (an unclosed bracket) points one line past the last.
    lines += [""] * (max(by_line, default=0) - len(lines))
    return [
        Line(number, line, tuple(by_line.get(number, ())))
        for number, line in enumerate(lines, start=1)
    ]


def flatten(value: Value | None, at: tuple[str | int, ...] = ()) -> list[tuple[str, Any, str]]:
    """(path, value, kind) rows of an evaluated environment, secrets masked.

    `kind` is "secret" (masked), "unknown" (an `fn::open` result, computed only when the
    environment is opened) or "" (a plain value).
    """
    if value is None:
        return []
    if isinstance(value.value, dict):
        return [row for key, child in value.value.items() for row in flatten(child, (*at, key))]
    if isinstance(value.value, list):
        return [row for i, item in enumerate(value.value) for row in flatten(item, (*at, i))]
    kind = "unknown" if value.unknown else "secret" if value.secret else ""
    return [(syntax.format_path(at), value.plain(reveal=False), kind)]


def diff_lines(before: str, after: str, *, before_name: str, after_name: str) -> list[DiffLine]:
    """A unified diff as classified lines for the template."""
    lines = difflib.unified_diff(
        before.splitlines(),
        after.splitlines(),
        fromfile=before_name,
        tofile=after_name,
        lineterm="",
    )
    out: list[DiffLine] = []
    for line in lines:
        if line.startswith(("+++", "---")):
            continue
        kind = {"+": "add", "-": "del", "@": "hunk"}.get(line[:1], "ctx")
        out.append(DiffLine(kind, line))
    return out


# --- list and create ----------------------------------------------------------------------------
@login_required
@require_GET
def environment_list(request: HttpRequest, org: str) -> HttpResponse:
    """The organization's environments the user may read, with their level on each."""
    organization, _role, actor = _actor(request, org)
    return _render_list(request, organization, actor, EnvironmentCreateForm())


def _render_list(
    request: HttpRequest,
    organization: Organization,
    actor: Actor,
    form: EnvironmentCreateForm,
    status: int = 200,
) -> HttpResponse:
    environments = selectors.environments_visible([actor])
    levels = access.levels_of(actor, environments)
    rows = [(environment, levels.get(environment.pk)) for environment in environments]
    return render(
        request,
        "environments/list.html",
        {"organization": organization, "rows": rows, "can_create": actor.can_create, "form": form},
        status=status,
    )


@login_required
@require_POST
def environment_new(request: HttpRequest, org: str) -> HttpResponse:
    """Create an environment (organization admins), then open its editor."""
    organization, _role, actor = _actor(request, org)
    if not actor.can_create:
        raise PermissionDenied("Creating environments needs an organization admin.")
    form = EnvironmentCreateForm(request.POST)
    if form.is_valid():
        try:
            environment = definitions.environment_create(
                organization=organization,
                project=form.cleaned_data["project"],
                name=form.cleaned_data["name"],
                actor=actor,
            )
        except (EnvironmentInvalid, EnvironmentConflict) as exc:
            form.add_service_error(exc)
        else:
            messages.success(request, f"Created {environment.full_name}. Write its definition.")
            return _to_detail(environment)
    return _render_list(request, organization, actor, form, status=400)


# --- the editor ---------------------------------------------------------------------------------
@login_required
@sensitive_post_parameters("definition")
@require_http_methods(["GET", "POST"])
def environment_detail(request: HttpRequest, org: str, project: str, name: str) -> HttpResponse:
    """Show and edit the definition: *Check* evaluates without saving, *Save* makes a revision."""
    environment, actor, level, role = _environment(request, org, project, name, Level.READ)
    latest = selectors.revision_numbered(environment, environment.revision)
    current = latest.definition if latest is not None else ""
    diagnostics: tuple[Diagnostic, ...] = ()
    checked: Evaluation | None = None
    status = 200
    if request.method == "POST":
        form = DefinitionForm(request.POST)
        saved, diagnostics, checked = _post_definition(request, environment, actor, level, form)
        if saved is not None:
            return saved
        shown = str(form.data.get("definition", ""))
        status = 400 if diagnostics or form.errors else 200
    else:
        form = DefinitionForm(
            initial={"definition": current, "base_revision": environment.revision}
        )
        shown = current
        if access.allows(level, Level.OPEN):
            checked = definitions.environment_check(
                actor=actor, text=current, environment=environment
            )
    response = render(
        request,
        "environments/detail.html",
        {
            "organization": environment.organization,
            "environment": environment,
            "level": level,
            "can_write": access.allows(level, Level.WRITE),
            "is_env_admin": access.allows(level, Level.ADMIN),
            "form": form,
            "diagnostics": diagnostics,
            "lines": numbered(shown, diagnostics) if diagnostics else [],
            "preview": flatten(checked.value) if checked is not None and checked.ok else [],
            "checked": checked is not None and request.method == "POST" and not diagnostics,
            "revision_tags": selectors.revision_tags_of(environment),
            "tags": selectors.environment_tags_of(environment),
            "events": (
                selectors.access_events_of(environment)
                if role in (Role.ADMIN, Role.AUDITOR)
                else []
            ),
        },
        status=status,
    )
    if request.method == "POST":
        for header, value in NO_STORE.items():  # the page may echo a draft with secrets in it
            response[header] = value
    return response


def _post_definition(
    request: HttpRequest, environment: Environment, actor: Actor, level: str | None, form: Any
) -> tuple[HttpResponse | None, tuple[Diagnostic, ...], Evaluation | None]:
    """*Save* (a redirect once saved) or *Check* a posted draft: its diagnostics and values."""
    action = request.POST.get("action")
    if action == "save" and not access.allows(level, Level.WRITE):
        raise PermissionDenied("Saving needs write permission on the environment.")
    if not form.is_valid():
        return None, (), None
    text = form.cleaned_data["definition"]
    if action != "save":
        checked = definitions.environment_check(actor=actor, text=text, environment=environment)
        return None, checked.diagnostics, checked
    try:
        revision = definitions.environment_update(
            environment=environment,
            text=text,
            actor=actor,
            expected_revision=form.cleaned_data["base_revision"],
        )
    except DefinitionInvalid as exc:
        return None, exc.diagnostics, None
    except (EnvironmentConflict, EnvironmentInvalid) as exc:
        form.add_error(None, exc.message)
        return None, (), None
    messages.success(request, f"Saved revision {revision.number}.")
    return _to_detail(environment), (), None


@login_required
@require_POST
def environment_delete(request: HttpRequest, org: str, project: str, name: str) -> HttpResponse:
    """Delete the environment when its name is typed to confirm (environment admins)."""
    environment, _actor, _level, _role = _environment(request, org, project, name, Level.ADMIN)
    if request.POST.get("confirm") != environment.full_name:
        messages.error(request, f"Type {environment.full_name} to confirm the deletion.")
        return _to_detail(environment)
    definitions.environment_delete(environment=environment)
    messages.success(request, f"Deleted {environment.full_name}.")
    return redirect("environments:list", org=org)


# --- history ------------------------------------------------------------------------------------
@login_required
@require_GET
def environment_revisions(request: HttpRequest, org: str, project: str, name: str) -> HttpResponse:
    """Every revision (who, when, tags) and the diff between two of them (default: the last)."""
    environment, _actor, _level, _role = _environment(request, org, project, name, Level.READ)
    revisions = selectors.revisions_of(environment, count=500)
    numbers = {r.number for r in revisions}
    tags = selectors.tag_names_by_revision(environment)

    def chosen(key: str, default: int) -> int:
        raw = request.GET.get(key, "")
        return int(raw) if raw.isascii() and raw.isdigit() and int(raw) in numbers else default

    to = chosen("to", environment.revision)
    start = chosen("from", max(to - 1, 1))
    before = selectors.revision_numbered(environment, start)
    after = selectors.revision_numbered(environment, to)
    diff = diff_lines(
        before.definition if before else "",
        after.definition if after else "",
        before_name=f"r{start}",
        after_name=f"r{to}",
    )
    return render(
        request,
        "environments/revisions.html",
        {
            "organization": environment.organization,
            "environment": environment,
            "rows": [(r, tags.get(r.number, [])) for r in revisions],
            "from": start,
            "to": to,
            "diff": diff,
        },
    )


# --- permissions --------------------------------------------------------------------------------
@login_required
@require_http_methods(["GET", "POST"])
def environment_permissions(
    request: HttpRequest, org: str, project: str, name: str
) -> HttpResponse:
    """Which teams and runners hold which level; environment admins change them."""
    environment, _actor, level, _role = _environment(request, org, project, name, Level.READ)
    is_admin = access.allows(level, Level.ADMIN)
    form = GrantForm(
        request.POST if request.method == "POST" else None, organization=environment.organization
    )
    if request.method == "POST":
        if not is_admin:
            raise PermissionDenied("Changing permissions needs admin permission.")
        if form.is_valid():
            kind, _, pk = form.cleaned_data["grantee"].partition(":")
            permission = form.cleaned_data["permission"]
            team = Team.objects.filter(pk=pk).first() if kind == "team" else None
            runner = Runner.objects.filter(pk=pk).first() if kind == "runner" else None
            try:
                grants.grant_set(
                    environment=environment,
                    team=team,
                    runner=runner,
                    permission=None if permission == "none" else permission,
                )
            except (EnvironmentInvalid, NotFound) as exc:
                form.add_error("grantee", exc.message)
            else:
                messages.success(request, "Saved the permission.")
                return redirect("environments:permissions", org=org, project=project, name=name)
    return render(
        request,
        "environments/permissions.html",
        {
            "organization": environment.organization,
            "environment": environment,
            "grants": selectors.grants_of(environment),
            "is_env_admin": is_admin,
            "form": form,
            "levels": Level.choices,
        },
        status=400 if form.errors else 200,
    )
