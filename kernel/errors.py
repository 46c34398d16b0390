"""Errors as classes: HTTP status, internal reason, message (rendered by `portal.errors`).

API errors render in Pulumi's shape `{"code": <status>, "message": "..."}`; OAuth errors
(`tokens.errors`) render as RFC 6749 §5.2 bodies. Each carries an internal `reason` code that
goes to logs and exchange events, never a stack trace to the caller.
"""

from __future__ import annotations

from typing import Any, ClassVar


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
