"""The one error of the outbound client: a refusal or failure with a stable reason code."""

from __future__ import annotations

from typing import Any, NoReturn

__all__ = ["FetchError", "refuse"]


class FetchError(Exception):
    """A refused or failed fetch with a stable ``reason`` code; it never wraps a traceback.

    ``reason`` is a snake_case code that callers may branch on or store; ``message`` is
    plain English for an operator. ``status`` is set when an HTTP status was received.
    """

    def __init__(self, reason: str, message: str, *, status: int | None = None) -> None:
        # args carry (reason, message) so that serializers that rebuild exceptions as
        # cls(*args) (pickle, Celery result backends) get an equivalent error back.
        super().__init__(reason, message)
        self.reason = reason
        self.message = message
        self.status = status

    def __str__(self) -> str:
        """Return the operator message only; the reason code is available separately."""
        return self.message

    def __repr__(self) -> str:
        """Show reason and message for logs; does not include chained exceptions."""
        return f"FetchError({self.reason!r}, {self.message!r})"

    def __reduce__(self) -> tuple[type[FetchError], tuple[str, str], dict[str, Any]]:
        """Pickle as (reason, message) plus status; does not keep the traceback."""
        return (type(self), (self.reason, self.message), {"status": self.status})


def refuse(reason: str, message: str, *, status: int | None = None) -> NoReturn:
    """Raise a FetchError; exists so that every refusal site reads the same."""
    raise FetchError(reason, message, status=status)
