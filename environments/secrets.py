"""What binds an environment's secrets to it (the box itself is `kernel.secretbox`)."""

from __future__ import annotations

from typing import Any


def environment_context(organization_id: int, environment_id: Any) -> bytes:
    """The associated data that binds a secret to one environment of one organization."""
    return f"trustportal:environment:{organization_id}:{environment_id}".encode()
