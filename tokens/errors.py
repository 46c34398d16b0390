"""Why a presented access token was refused."""

from __future__ import annotations

from trustportal.errors import ApiError


class InvalidAccessToken(ApiError):
    """The Authorization header does not carry a usable token (401)."""

    status = 401
    default_message = "The access token is missing, malformed, expired or revoked."

    def __init__(self, reason: str, message: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "token"}
