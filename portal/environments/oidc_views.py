"""The portal's OIDC issuer documents: `/oidc/.well-known/openid-configuration` and `…/jwks`.

Plain Django views: public, no session, no CSRF, cacheable for `signing.JWKS_MAX_AGE` seconds
(far below the publication delay of a new key, so every relying party has seen a key before it
signs). In production without TRUSTPORTAL_OIDC_ISSUER_URL they answer 404: the request's Host
header never decides what the issuer is.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from environments import signing


def _document(body: dict[str, Any]) -> JsonResponse:
    response = JsonResponse(body)
    response["Cache-Control"] = f"public, max-age={signing.JWKS_MAX_AGE}"
    return response


def _not_configured() -> JsonResponse:
    return JsonResponse(
        {"code": 404, "message": "This portal publishes no OIDC issuer (not configured)."},
        status=404,
    )


def request_issuer(request: HttpRequest) -> str | None:
    """The issuer URL for this request: the setting, or in development the request's host."""
    return signing.issuer_url(settings.TRUSTPORTAL, base_url=request.build_absolute_uri("/"))


@require_GET
def openid_configuration(request: HttpRequest) -> JsonResponse:
    """The discovery document."""
    issuer = request_issuer(request)
    if issuer is None:
        return _not_configured()
    return _document(signing.discovery_document(issuer))


@require_GET
def jwks(request: HttpRequest) -> JsonResponse:
    """The published signing keys (next, current and previous)."""
    if request_issuer(request) is None:
        return _not_configured()
    return _document(signing.jwks_document())
