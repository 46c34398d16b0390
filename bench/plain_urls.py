"""The project's URLs with `/api/oauth/token` served by the plain view (`bench.profile`)."""

from __future__ import annotations

from typing import cast

from django.urls import URLPattern, URLResolver, path

from bench.plain_variant import token_exchange
from portal.urls import urlpatterns as project_patterns

urlpatterns: list[URLPattern | URLResolver] = [
    path("api/oauth/token", token_exchange, name="oauth-token"),
    *cast(list[URLPattern | URLResolver], project_patterns),
]
