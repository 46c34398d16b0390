"""What the audit log keeps of an organization: it sits below the organizations' app."""

from __future__ import annotations

from typing import Any, Protocol


class Tenant(Protocol):
    """Any object with these (the Organization model is one)."""

    pk: Any
    login: str
