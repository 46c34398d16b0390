"""Errors of the tokens app: refused access tokens, OAuth errors, append-only violations."""

from __future__ import annotations

from typing import Any, ClassVar

from kernel.errors import ApiError, ServiceError


class InvalidAccessToken(ApiError):
    """The Authorization header does not carry a usable token (401)."""

    status = 401
    default_message = "The access token is missing, malformed, expired or revoked."

    def __init__(self, reason: str, message: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "token"}


class OAuthError(ServiceError):
    """An RFC 6749 §5.2 error of the token endpoint.

    The caller sees the OAuth `error`, a generic description, the stable `reason` code and the
    request id — never which policy, rule or key check failed in more detail than the reason;
    the exchange event keeps the full trace for the admin.
    """

    error: ClassVar[str] = "invalid_request"
    description: ClassVar[str] = "The token exchange request was refused."

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(self.description)
        self.reason = reason
        self.detail = detail  # for the exchange event and logs only
        # The login of the organization the attempt was recorded under, when it exists (for
        # metrics and logs; never shown to the caller).
        self.organization = ""

    @property
    def public_reason(self) -> str:
        """The reason code the caller sees (the event keeps `reason`)."""
        return self.reason

    def headers(self) -> dict[str, str]:
        return {"Cache-Control": "no-store", "Pragma": "no-cache"}

    def body(self, request_id: str) -> dict[str, Any]:
        return {
            "error": self.error,
            "error_description": f"{self.description} (reason: {self.public_reason}, "
            f"request id: {request_id})",
            "reason": self.public_reason,
            "request_id": request_id,
        }


class InvalidRequest(OAuthError):
    error = "invalid_request"
    description = "The request or its subject token was refused."


class UntrustedToken(InvalidRequest):
    """The token is not for here: unknown organization or issuer, disabled issuer, wrong audience.

    All four answer the caller the same (`untrusted_token`), so the public endpoint does not say
    whether an organization exists or which issuers it trusts; `reason` (the event's) keeps which.
    """

    @property
    def public_reason(self) -> str:
        return "untrusted_token"


class UnsupportedGrantType(OAuthError):
    error = "unsupported_grant_type"
    description = "Only the token-exchange grant type is supported."


class InvalidTarget(OAuthError):
    error = "invalid_target"
    description = "The audience does not name an organization here."


class InvalidScope(OAuthError):
    error = "invalid_scope"
    description = "The requested token type or scope is not granted."


class RateLimited(OAuthError):
    status = 429
    error = "invalid_request"
    description = "Too many token exchange attempts; retry later."

    def __init__(self, reason: str, retry_after: int, *, bucket: str = "") -> None:
        super().__init__(reason)
        self.retry_after = retry_after
        self.bucket = bucket  # which limit: the attempts are counted per bucket and window

    def headers(self) -> dict[str, str]:
        return {**super().headers(), "Retry-After": str(self.retry_after)}


class TemporarilyUnavailable(OAuthError):
    status = 503
    error = "temporarily_unavailable"
    description = "The token exchange is temporarily unavailable; retry later."


class TokenInvalid(ApiError):
    """A token could not be created as asked (400); `field` names the offending input."""

    status = 400
    reason = "token_invalid"

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field
