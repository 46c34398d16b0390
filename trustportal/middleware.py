"""Request ids, the security headers every response carries, and 503s for a lost database."""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable

from django.db import DatabaseError, InterfaceError, OperationalError, connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from kernel.errors import ServiceUnavailable
from kernel.logs import current_request_id

logger = logging.getLogger(__name__)

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


class SecurityHeadersMiddleware:
    """Give each request an id and each response a strict CSP and related headers."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # A caller-supplied id is kept only when it is short and harmless, for log correlation.
        supplied = request.headers.get("X-Request-Id", "")
        request.request_id = (  # type: ignore[attr-defined]
            supplied if _REQUEST_ID.match(supplied) else secrets.token_hex(12)
        )
        reset = current_request_id.set(request.request_id)  # type: ignore[attr-defined]
        try:
            response = self.get_response(request)
        finally:
            current_request_id.reset(reset)
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Request-Id", request.request_id)  # type: ignore[attr-defined]
        response.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        response.headers.setdefault(
            "Permissions-Policy", "camera=(), microphone=(), geolocation=()"
        )
        return response


# What a dropped, refused or timed-out database connection raises (psycopg's errors, wrapped).
DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (OperationalError, InterfaceError)


def close_database_connections() -> None:
    """Close this thread's database connections so the next query opens a fresh one.

    Django would close a broken connection only when the request finishes; closing it here
    also covers callers that keep the thread (tests, the Celery worker) and never retries the
    failed query itself.
    """
    for connection in connections.all(initialized_only=True):
        try:
            connection.close()
        except DatabaseError:  # already gone: nothing left to close
            logger.debug("closing a broken database connection failed", exc_info=True)


class DatabaseUnavailableMiddleware:
    """Answer 503 (JSON under /api/) when the database is lost mid-request; never a stack trace.

    Only connection-level errors (`OperationalError`, `InterfaceError`) are turned into 503s;
    a programming or integrity error stays a 500 so it is not mistaken for an outage. The
    OAuth token endpoint renders its own 503 (`temporarily_unavailable`), in its own shape.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, DATABASE_UNAVAILABLE):
            return None
        return database_unavailable_response(request, exception)


def database_unavailable_response(request: HttpRequest, exception: Exception) -> HttpResponse:
    """The 503 for a lost database connection (JSON under /api/), after closing the connection."""
    close_database_connections()
    request_id = str(getattr(request, "request_id", ""))
    logger.warning(
        "database unavailable request_id=%s path=%s error=%s",
        request_id,
        request.path,
        type(exception).__name__,
    )
    error = ServiceUnavailable()
    if request.path.startswith("/api/"):
        return JsonResponse(error.body(request_id), status=error.status, headers=error.headers())
    return HttpResponse(
        error.message,
        status=error.status,
        content_type="text/plain; charset=utf-8",
        headers=error.headers(),
    )


class MethodNotAllowedPageMiddleware:
    """Give a page's bare 405 (from `require_POST` and friends) the portal's styled page.

    The `Allow` header stays; API answers (under /api/) are left as they are.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code != 405 or request.path.startswith("/api/") or response.content:
            return response
        page = render(request, "405.html", status=405)
        if response.has_header("Allow"):
            page["Allow"] = response["Allow"]
        return page
