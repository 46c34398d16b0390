"""The POST a provider may use: the guarded outbound client limited to the allowed endpoints."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


class HttpPoster(Protocol):
    """POST under the outbound guard; returns (status, headers, body). Raises FetchError."""

    def __call__(
        self,
        url: str,
        *,
        body: bytes,
        content_type: str,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, Mapping[str, str], bytes]: ...
