"""The token endpoint as a DRF `APIView`, for measuring DRF's cost against the lean view.

Not used by the product: `bench.profile --layers` routes `/api/oauth/token` here (through
`bench.drf_urls`) to compare. No authentication, permission or throttle classes; the strict body
reader of `exchange/request.py` as DRF parsers; OAuth errors rendered as their RFC 6749 bodies
by DRF's JSON renderer. The pipeline still reads the body itself (it records what it could read
of a refused one), so the parsers are declared as a DRF view would, and DRF's own cost is the
request wrapping, content negotiation, the (empty) checks and the response rendering.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework.parsers import BaseParser
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from exchange.pipeline import Caller, exchange
from exchange.request import MAX_BODY_BYTES, read_body
from exchange.views import NO_STORE
from kernel.clientaddr import client_ip
from tokens.errors import OAuthError


class StrictJSONParser(BaseParser):
    media_type = "application/json"

    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        return dict(read_body(stream.read(), self.media_type).fields)


class StrictFormParser(StrictJSONParser):
    media_type = "application/x-www-form-urlencoded"


class TokenExchangeAPIView(APIView):
    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []
    throttle_classes: list[Any] = []
    parser_classes = [StrictJSONParser, StrictFormParser]
    renderer_classes = [JSONRenderer]

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
            body = b"x" * (MAX_BODY_BYTES + 1)
        try:
            result = exchange(
                body=body,
                content_type=django_request.content_type or "",
                caller=caller,
                config=settings.TRUSTPORTAL,
            )
        except OAuthError as error:
            return Response(
                error.body(caller.request_id), status=error.status, headers=error.headers()
            )
        return Response(result.body(), status=200, headers=NO_STORE)
