"""Pages of the portal shell: the landing page and JSON error pages for the API."""

from __future__ import annotations

import sys

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET
from django.views.defaults import page_not_found, server_error

from portal.errors import json_not_found, json_server_error
from trustportal.middleware import DATABASE_UNAVAILABLE, database_unavailable_response
from trustportal.selectors import memberships_of


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """The signed-in user's organizations and where to go next."""
    memberships = memberships_of(request.user)  # type: ignore[arg-type]
    return render(request, "trustportal/home.html", {"memberships": memberships})


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if request.path.startswith("/api/"):
        return json_not_found(request, exception)
    return page_not_found(request, exception)


def forbidden(request: HttpRequest, exception: Exception) -> HttpResponse:
    """403 pages for the portal (the API answers its own 403s in JSON through DRF)."""
    return render(request, "403.html", status=403)


def internal_error(request: HttpRequest) -> HttpResponse:
    """The 500 handler; a lost database raised outside a view (in a middleware that loads the
    user or the second factor) is an outage, answered 503 like one raised inside a view."""
    raised = sys.exc_info()[1]
    if isinstance(raised, DATABASE_UNAVAILABLE):
        return database_unavailable_response(request, raised)
    if request.path.startswith("/api/"):
        return json_server_error(request)
    return server_error(request)
