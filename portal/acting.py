"""Who is acting in a page request, for services that record it."""

from __future__ import annotations

from django.http import HttpRequest

from trustportal.models import User


def acting_user(request: HttpRequest) -> User | None:
    """The signed-in user making the request (None for anyone else)."""
    return request.user if isinstance(request.user, User) else None
