"""The project's URLs with `/api/oauth/token` served by the DRF variant (`bench.profile`)."""

from __future__ import annotations

from typing import cast

from django.urls import URLPattern, URLResolver, path

from bench.drf_variant import TokenExchangeAPIView
from trustportal.urls import urlpatterns as project_patterns

urlpatterns: list[URLPattern | URLResolver] = [
    path("api/oauth/token", TokenExchangeAPIView.as_view(), name="oauth-token"),
    *cast(list[URLPattern | URLResolver], project_patterns),
]
