"""The organization's members and teams, with the next step for each change (in the admin)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from trustportal.access import Need, organization_for_user
from trustportal.models import Membership, Role, Team


@login_required
@require_GET
def people(request: HttpRequest, org: str) -> HttpResponse:
    """Who belongs to the organization, in which role and team; admins get the links to
    add, remove and change them."""
    organization, role = organization_for_user(request.user, org, Need.READ_CONFIGURATION)
    return render(
        request,
        "trustportal/people.html",
        {
            "organization": organization,
            "is_admin": role == Role.ADMIN,
            "members": Membership.objects.filter(organization=organization)
            .select_related("user")
            .order_by("user__username"),
            "teams": Team.objects.filter(organization=organization)
            .prefetch_related("members")
            .order_by("name"),
        },
    )
