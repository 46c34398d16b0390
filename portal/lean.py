"""A lean request path for machine-to-machine endpoints (today: `POST /api/oauth/token`).

The token endpoint is called by CI jobs with no cookies, no session and no signed-in user: it is
authenticated by the subject token in its body. The layers a browser needs (static files, session,
CSRF, authentication, second factor, messages, audit context, styled error pages) do nothing for it
but cost time on every exchange. `LeanRouteMiddleware` sits right after the layers every response
needs (request id and security headers, operations endpoints, the lost-database 503, the
unstorable-text refusal, Django's `SecurityMiddleware`) and calls a lean route's view itself, so
the rest of the stack never runs for it. `X-Frame-Options` is still set (the one header the
skipped `XFrameOptionsMiddleware` would add), and a lost database still answers 503.

Which routes are lean is said by URL name; the URL configuration stays the one authority of
their paths and views.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.urls import NoReverseMatch, Resolver404, resolve, reverse

from trustportal.middleware import DATABASE_UNAVAILABLE, database_unavailable_response

LEAN_ROUTE_NAMES = ("oauth-token",)


class LeanRouteMiddleware:
    """Serve the lean routes' views directly, past the browser layers below this one."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self._paths: frozenset[str] | None = None
        self._frame_options = XFrameOptionsMiddleware(get_response)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info not in self._lean_paths():
            return self.get_response(request)
        response = self._view(request)
        # The one header the skipped XFrameOptionsMiddleware would have set.
        return self._frame_options.process_response(request, response)

    def _lean_paths(self) -> frozenset[str]:
        if self._paths is None:  # the URL configuration is not importable at startup
            paths = set()
            for name in LEAN_ROUTE_NAMES:
                try:
                    paths.add(reverse(name))
                except NoReverseMatch:  # a configuration without the route: nothing is lean
                    continue
            self._paths = frozenset(paths)
        return self._paths

    def _view(self, request: HttpRequest) -> HttpResponse:
        try:
            match = resolve(request.path_info)
        except Resolver404:  # a path that reverses but does not resolve: the full stack decides
            return self.get_response(request)
        request.resolver_match = match
        try:
            response = match.func(request, *match.args, **match.kwargs)
            if callable(getattr(response, "render", None)):  # a template or DRF response
                response = response.render()
        except DATABASE_UNAVAILABLE as exc:
            return database_unavailable_response(request, exc)
        return response
