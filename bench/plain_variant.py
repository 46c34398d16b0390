"""The token endpoint as a plain Django function view, for measuring DRF's cost (`--layers`).

Not used by the product, whose view is the DRF `APIView` of `exchange/views.py`: `bench.profile
--layers` routes `/api/oauth/token` here (through `bench.plain_urls`) to compare the two on the
same lean path. Both run the same pipeline and answer the same bodies; DRF adds the request
wrapping, content negotiation, its (empty) authentication, permission and throttle checks and
the response rendering.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from exchange.pipeline import Caller, exchange
from exchange.request import MAX_BODY_BYTES
from kernel.clientaddr import client_ip
from portal.exchange.views import NO_STORE
from tokens.errors import OAuthError


@csrf_exempt
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
        body = b"x" * (MAX_BODY_BYTES + 1)
    try:
        result = exchange(
            body=body,
            content_type=request.content_type or "",
            caller=caller,
            config=settings.TRUSTPORTAL,
        )
    except OAuthError as error:
        return JsonResponse(
            error.body(caller.request_id), status=error.status, headers=error.headers()
        )
    return JsonResponse(result.body(), status=200, headers=NO_STORE)
