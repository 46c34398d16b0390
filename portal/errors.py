"""The one place that renders errors (`kernel.errors`) as HTTP responses.

API errors render in Pulumi's shape `{"code": <status>, "message": "..."}`; OAuth errors
(`tokens.errors`) render as RFC 6749 §5.2 bodies. Each carries an internal `reason` code that
goes to logs and exchange events, never a stack trace to the caller.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.response import Response

from kernel.errors import ServiceError

logger = logging.getLogger(__name__)


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
