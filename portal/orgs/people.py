"""The organization's members and teams: who belongs in which role and team; admins change it.

Every change is a POST that redirects (POST-redirect-GET); removals ask first on a page of
their own. Access is `organization_for_user`: another organization's pages and rows answer 404,
members and auditors get 403 for changes. Writes go through `trustportal.services`.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from portal.orgs.forms import MemberCreateForm, RoleForm, TeamCreateForm, TeamMemberForm
from trustportal import services
from trustportal.access import Need, organization_for_user
from trustportal.models import Membership, Organization, Role, Team, User
from trustportal.selectors import member_user, members_of, membership_in, team_in, teams_of

NO_STORE = "no-store"


def _people_url(organization: Organization) -> str:
    return reverse("people", kwargs={"org": organization.login})


def _member_choices(organization: Organization) -> list[tuple[int, str]]:
    return [(m.user_id, m.user.get_username()) for m in members_of(organization)]


def _render_people(
    request: HttpRequest, organization: Organization, role: str, status: int = 200, **forms: Any
) -> HttpResponse:
    members = list(members_of(organization))
    teams = list(teams_of(organization))
    is_admin = role == Role.ADMIN
    return render(
        request,
        "trustportal/people.html",
        {
            "organization": organization,
            "is_admin": is_admin,
            "members": members,
            "teams": [
                (team, [m for m in members if m.user not in team.members.all()]) for team in teams
            ],
            "roles": Role.choices,
            "member_form": forms.get("member_form") or MemberCreateForm(),
            "team_form": forms.get("team_form") or TeamCreateForm(),
        },
        status=status,
    )


@login_required
@require_GET
def people(request: HttpRequest, org: str) -> HttpResponse:
    """Who belongs to the organization, in which role and team; admins change them here."""
    organization, role = organization_for_user(request.user, org, Need.READ_CONFIGURATION)
    return _render_people(request, organization, role)


def _confirm(
    request: HttpRequest,
    organization: Organization,
    *,
    title: str,
    question: str,
    consequence: str,
    button: str,
) -> HttpResponse:
    return render(
        request,
        "trustportal/people_confirm.html",
        {
            "organization": organization,
            "title": title,
            "question": question,
            "consequence": consequence,
            "button": button,
            "cancel_url": _people_url(organization),
        },
    )


# --- members -----------------------------------------------------------------------------------
@login_required
@require_POST
def member_add(request: HttpRequest, org: str) -> HttpResponse:
    """Create a new account in the organization; its one-time password shows on the next page."""
    organization, role = organization_for_user(request.user, org, Need.ADMIN)
    form = MemberCreateForm(request.POST)
    if form.is_valid():
        try:
            created = services.member_create(
                organization=organization,
                username=form.cleaned_data["username"],
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
            )
        except services.PeopleError as exc:
            form.add_error("username", exc.messages)
        else:
            user_id = created.membership.user_id
            request.session[_created_key(organization, user_id)] = created.password
            return redirect("people-member-created", org=organization.login, user_id=user_id)
    return _render_people(request, organization, role, status=400, member_form=form)


def _created_key(organization: Organization, user_id: int) -> str:
    return f"people:created:{organization.pk}:{user_id}"


@login_required
@require_GET
def member_created(request: HttpRequest, org: str, user_id: int) -> HttpResponse:
    """The new account's password, once: it leaves the session here and is never shown again."""
    organization, _role = organization_for_user(request.user, org, Need.ADMIN)
    user = member_user(organization, user_id)
    if user is None:
        raise Http404("No such member.")
    password = request.session.pop(_created_key(organization, user_id), None)
    if not isinstance(password, str):
        messages.info(
            request,
            f"The first password of {user.get_username()} was shown only once, when the "
            "account was created.",
        )
        return redirect("people", org=organization.login)
    response = render(
        request,
        "trustportal/member_created.html",
        {"organization": organization, "member": user, "password": password},
    )
    response["Cache-Control"] = NO_STORE
    return response


def _membership(organization: Organization, membership_id: int) -> Membership:
    membership = membership_in(organization, membership_id)
    if membership is None:
        raise Http404("No such member.")
    return membership


@login_required
@require_POST
def member_role(request: HttpRequest, org: str, membership_id: int) -> HttpResponse:
    """Give a member another role (never demoting the last admin)."""
    organization, _role = organization_for_user(request.user, org, Need.ADMIN)
    membership = _membership(organization, membership_id)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose admin, member or auditor.")
        return redirect("people", org=organization.login)
    try:
        services.member_role_change(membership=membership, role=form.cleaned_data["role"])
    except services.PeopleError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(
            request,
            f"{membership.user.get_username()} is now {membership.get_role_display().lower()}.",
        )
    return redirect("people", org=organization.login)


@login_required
@require_http_methods(["GET", "POST"])
def member_remove(request: HttpRequest, org: str, membership_id: int) -> HttpResponse:
    """Ask, then take a member out of the organization and its teams (never the last admin)."""
    organization, _role = organization_for_user(request.user, org, Need.ADMIN)
    membership = _membership(organization, membership_id)
    name = membership.user.get_username()
    if request.method == "GET":
        return _confirm(
            request,
            organization,
            title=f"Remove {name}",
            question=f"Remove {name} from {organization.display_name}?",
            consequence="They lose access to the organization and leave its teams. "
            "Their account stays (it may belong to other organizations).",
            button="Remove",
        )
    try:
        services.member_remove(membership=membership)
    except services.PeopleError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Removed {name} from the organization.")
    return redirect("people", org=organization.login)


# --- teams -------------------------------------------------------------------------------------
def _team(organization: Organization, team_id: int) -> Team:
    team = team_in(organization, team_id)
    if team is None:
        raise Http404("No such team.")
    return team


@login_required
@require_POST
def team_add(request: HttpRequest, org: str) -> HttpResponse:
    organization, role = organization_for_user(request.user, org, Need.ADMIN)
    form = TeamCreateForm(request.POST)
    if form.is_valid():
        try:
            team = services.team_create(
                organization=organization,
                name=form.cleaned_data["name"],
                display_name=form.cleaned_data["display_name"],
            )
        except services.PeopleError as exc:
            form.add_error("name", exc.messages)
        else:
            messages.success(request, f"Created the team {team.name}.")
            return redirect("people", org=organization.login)
    return _render_people(request, organization, role, status=400, team_form=form)


@login_required
@require_http_methods(["GET", "POST"])
def team_delete(request: HttpRequest, org: str, team_id: int) -> HttpResponse:
    organization, _role = organization_for_user(request.user, org, Need.ADMIN)
    team = _team(organization, team_id)
    if request.method == "GET":
        return _confirm(
            request,
            organization,
            title=f"Delete the team {team.name}",
            question=f"Delete the team {team.name}?",
            consequence="Its members stay in the organization. Its team tokens are deleted "
            "and stop working at once.",
            button="Delete the team",
        )
    services.team_delete(team=team)
    messages.success(request, f"Deleted the team {team.name}.")
    return redirect("people", org=organization.login)


@login_required
@require_POST
def team_member_add(request: HttpRequest, org: str, team_id: int) -> HttpResponse:
    """Put a member of the organization in the team (only members can be chosen)."""
    organization, _role = organization_for_user(request.user, org, Need.ADMIN)
    team = _team(organization, team_id)
    form = TeamMemberForm(request.POST, members=_member_choices(organization))
    user = member_user(organization, form.cleaned_data["user"]) if form.is_valid() else None
    if user is None:
        messages.error(request, "Choose a member of the organization.")
        return redirect("people", org=organization.login)
    services.team_member_add(team=team, user=user)
    messages.success(request, f"Added {user.get_username()} to the team {team.name}.")
    return redirect("people", org=organization.login)


@login_required
@require_http_methods(["GET", "POST"])
def team_member_remove(request: HttpRequest, org: str, team_id: int, user_id: int) -> HttpResponse:
    organization, _role = organization_for_user(request.user, org, Need.ADMIN)
    team = _team(organization, team_id)
    user = team.members.filter(pk=user_id).first()
    if not isinstance(user, User):
        raise Http404("No such team member.")
    if request.method == "GET":
        return _confirm(
            request,
            organization,
            title=f"Remove {user.get_username()} from {team.name}",
            question=f"Remove {user.get_username()} from the team {team.name}?",
            consequence="They stay in the organization; they no longer act as the team.",
            button="Remove from the team",
        )
    services.team_member_remove(team=team, user=user)
    messages.success(request, f"Removed {user.get_username()} from the team {team.name}.")
    return redirect("people", org=organization.login)
