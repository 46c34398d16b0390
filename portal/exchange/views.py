"""`POST /api/oauth/token`: a lean view around `exchange.pipeline.exchange`."""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from exchange.pipeline import Caller, exchange
from exchange.request import MAX_BODY_BYTES
from kernel.clientaddr import client_ip
from kernel.metrics import observe_exchange
from tokens.errors import OAuthError, TemporarilyUnavailable
from trustportal.middleware import DATABASE_UNAVAILABLE, close_database_connections

logger = logging.getLogger("exchange.views")
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@csrf_exempt  # a machine-to-machine endpoint authenticated by the subject token, no cookies
@require_POST
def token_exchange(request: HttpRequest) -> HttpResponse:
    caller = Caller(
        request_id=getattr(request, "request_id", ""),
        client_ip=client_ip(request),
        user_agent=request.headers.get("User-Agent", ""),
    )
    try:
        body = request.body
    except RequestDataTooBig:
        body = b"x" * (MAX_BODY_BYTES + 1)  # recorded and refused as request_too_large
    started = time.perf_counter()
    try:
        result = exchange(
            body=body,
            content_type=request.content_type or "",
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
    return JsonResponse(result.body(), status=200, headers=NO_STORE)


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


def _oauth_error(error: OAuthError, caller: Caller) -> JsonResponse:
    return JsonResponse(error.body(caller.request_id), status=error.status, headers=error.headers())
