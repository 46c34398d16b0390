"""Content negotiation for the API: always answer JSON.

Pulumi's Go clients send `Accept: application/vnd.pulumi+8`; DRF's default negotiation would
answer those with 406. Every API view here speaks JSON, so the `Accept` header is not consulted.
"""

from __future__ import annotations

from collections.abc import Iterable

from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request


class JsonWhateverAccept(DefaultContentNegotiation):
    """Parsers are chosen by Content-Type as usual; the renderer is always the first (JSON)."""

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, renderer.media_type
