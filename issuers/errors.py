"""Errors of issuer registration and key lookup."""

from __future__ import annotations

from kernel.errors import ApiError, BadRequest, Conflict


class IssuerInvalid(BadRequest):
    """Registration or update input refused (400), with a message for the operator."""

    reason = "issuer_invalid"

    def __init__(self, message: str, *, reason: str = "issuer_invalid") -> None:
        super().__init__(message)
        self.reason = reason


class IssuerConflict(Conflict):
    reason = "issuer_conflict"


class KeyLookupError(Exception):
    """No usable verification key; `reason` is the exchange event's reason code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class IssuerBusy(ApiError):
    """Another issuer fetch of this organization is in flight (429, retry shortly)."""

    status = 429
    reason = "issuer_fetch_busy"
    default_message = (
        "Another issuer registration or key fetch of this organization is in progress; "
        "try again in a few seconds."
    )

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "5"}
