"""Errors as classes, and the one place that renders them as HTTP responses.

API errors render in Pulumi's shape `{"code": <status>, "message": "..."}`; OAuth errors
(`tokens.errors`) render as RFC 6749 §5.2 bodies. Each carries an internal `reason` code that
goes to logs and exchange events, never a stack trace to the caller.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.response import Response

logger = logging.getLogger(__name__)


class ServiceError(Exception):
    """Base of every error the service renders itself."""

    status: ClassVar[int] = 400
    reason: str = "error"
    default_message: ClassVar[str] = "The request could not be processed."

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)

    def headers(self) -> dict[str, str]:
        return {}

    def body(self, request_id: str) -> dict[str, Any]:
        return {"code": self.status, "message": self.message}


class ApiError(ServiceError):
    """An error outside the OAuth endpoint, in Pulumi's `{"code","message"}` shape."""


class BadRequest(ApiError):
    status = 400
    reason = "bad_request"


class NotFound(ApiError):
    status = 404
    reason = "not_found"
    default_message = "Not found."


class Forbidden(ApiError):
    status = 403
    reason = "forbidden"
    default_message = "You do not have permission to do that."


class Conflict(ApiError):
    status = 409
    reason = "conflict"


class PreconditionFailed(ApiError):
    status = 412
    reason = "precondition_failed"


class ServiceUnavailable(ApiError):
    """A backing service (the database) is unreachable for the moment (503, retry later)."""

    status = 503
    reason = "service_unavailable"
    default_message = "The service is temporarily unavailable; retry later."

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "5"}


def _request_id(request: Any) -> str:
    return str(getattr(request, "request_id", "") or "")


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF exception handler: every error becomes a JSON body, never a stack trace."""
    request = context.get("request")
    request_id = _request_id(request)
    if isinstance(exc, ServiceError):
        return Response(exc.body(request_id), status=exc.status, headers=exc.headers())
    if isinstance(exc, Http404):
        exc = drf.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf.PermissionDenied()
    if isinstance(exc, drf.APIException):
        status = exc.status_code
        if isinstance(exc, drf.NotAuthenticated | drf.AuthenticationFailed):
            status = 401
        headers: dict[str, str] = {"WWW-Authenticate": "token"} if status == 401 else {}
        wait = getattr(exc, "wait", None)
        if isinstance(exc, drf.Throttled) and wait is not None:
            headers["Retry-After"] = str(int(wait) + 1)
        return Response(
            {"code": status, "message": _flatten(exc.detail)}, status=status, headers=headers
        )
    return None


def _flatten(detail: Any) -> str:
    """One readable line out of DRF's nested error details."""
    if isinstance(detail, list):
        return " ".join(_flatten(item) for item in detail)
    if isinstance(detail, dict):
        return " ".join(
            f"{key}: {_flatten(value)}" if key != "non_field_errors" else _flatten(value)
            for key, value in detail.items()
        )
    return str(detail)


def json_not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse({"code": 404, "message": "Not found."}, status=404)


def json_server_error(request: HttpRequest) -> JsonResponse:
    logger.error("unhandled error request_id=%s", _request_id(request))
    return JsonResponse(
        {
            "code": 500,
            "message": "Internal error. Quote the request id to the operator.",
            "request_id": _request_id(request),
        },
        status=500,
    )
