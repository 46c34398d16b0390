"""`POST /api/oauth/token`: a DRF view around `exchange.pipeline.exchange`, on the lean path.

No authentication, permission or throttle classes (the subject token in the body is the
credential; the pipeline counts the rate limits in its one Redis round trip), the strict body
reader as parsers, and OAuth errors rendered as their RFC 6749 §5.2 bodies. It is served past
the browser middleware (`portal/lean.py`); its OpenAPI description is `exchange/schema.py`.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from drf_spectacular.utils import extend_schema
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from exchange.parsers import StrictFormParser, StrictJSONParser
from exchange.pipeline import Caller, exchange
from exchange.request import MAX_BODY_BYTES
from kernel.clientaddr import client_ip
from kernel.metrics import observe_exchange
from tokens.errors import OAuthError, TemporarilyUnavailable
from trustportal.middleware import DATABASE_UNAVAILABLE, close_database_connections

logger = logging.getLogger(__name__)
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@extend_schema(exclude=True)  # described by exchange.schema, in OAuth's own terms
class TokenExchangeView(APIView):
    """A machine-to-machine endpoint authenticated by the subject token, no cookies."""

    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []
    throttle_classes: list[Any] = []
    parser_classes: list[Any] = [StrictJSONParser, StrictFormParser]
    renderer_classes: list[Any] = [JSONRenderer]
    http_method_names: list[str] = ["post"]

    def post(self, request: Request) -> Response:
        django_request = request._request
        caller = Caller(
            request_id=getattr(django_request, "request_id", ""),
            client_ip=client_ip(django_request),
            user_agent=django_request.headers.get("User-Agent", ""),
        )
        try:
            body = django_request.body
        except RequestDataTooBig:
            body = b"x" * (MAX_BODY_BYTES + 1)  # recorded and refused as request_too_large
        started = time.perf_counter()
        try:
            result = exchange(
                body=body,
                content_type=django_request.content_type or "",
                caller=caller,
                config=settings.TRUSTPORTAL,
            )
        except DATABASE_UNAVAILABLE as exc:
            # The attempt cannot even be recorded: answer in OAuth's shape, reconnect next time.
            close_database_connections()
            logger.warning(
                "exchange: database unavailable request_id=%s error=%s",
                caller.request_id,
                type(exc).__name__,
            )
            return _oauth_error(TemporarilyUnavailable("database_unavailable"), caller)
        except OAuthError as error:
            _observe(caller, error.organization, "deny", error.reason, started)
            return _oauth_error(error, caller)
        _observe(caller, result.organization, "allow", "allowed", started)
        return Response(result.body(), status=200, headers=NO_STORE)


token_exchange = TokenExchangeView.as_view()


def _observe(caller: Caller, organization: str, decision: str, reason: str, started: float) -> None:
    """One log line and the metrics of an exchange attempt (never the token or its claims)."""
    seconds = time.perf_counter() - started
    observe_exchange(organization=organization, decision=decision, reason=reason, seconds=seconds)
    logger.info(
        "exchange %s request_id=%s org=%s reason=%s",
        "allowed" if decision == "allow" else "refused",
        caller.request_id,
        organization,
        reason,
        extra={"organization": organization, "decision": decision, "reason": reason},
    )


def _oauth_error(error: OAuthError, caller: Caller) -> Response:
    return Response(error.body(caller.request_id), status=error.status, headers=error.headers())
