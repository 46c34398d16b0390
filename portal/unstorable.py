"""Refuse text PostgreSQL cannot hold, at the edge: NUL characters and lone surrogates.

PostgreSQL text refuses NUL and every string must be valid UTF-8, so such a character in a URL
path part, a query parameter, a form field or a JSON string would reach a query and fail there
as a 500. One middleware checks every request before routing and answers 400 in the shape of
the endpoint: `{"code","message"}` under /api/, an OAuth error body on the token endpoint, a
plain-text 400 for pages and the admin.

It does not validate anything else: a body that is not valid JSON or form data is left to the
view, which answers it in its own way. The token endpoint's body is left to its strict parser
(`tokens.request.read_body`, which refuses the same characters and records the attempt).
"""

from __future__ import annotations

import json
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict

from kernel.errors import BadRequest
from kernel.strictjson import check_text
from tokens.errors import InvalidRequest

TOKEN_ENDPOINT = "/api/oauth/token"
MESSAGE = "The request contains text that cannot be stored (a NUL character or a lone surrogate)."
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _storable(*values: object) -> bool:
    try:
        check_text(list(values))
    except ValueError:
        return False
    return True


def _query_storable(query: QueryDict) -> bool:
    return _storable([[key, *values] for key, values in query.lists()])


def _body_storable(request: HttpRequest) -> bool:
    """Whether a JSON or form body holds only storable strings (unreadable bodies pass)."""
    media_type = (request.content_type or "").lower()
    if media_type == "application/json" or media_type.endswith("+json"):
        try:
            document = json.loads(request.body.decode("utf-8"))
        except (ValueError, RecursionError):
            return True  # not JSON: the view refuses it in its own words
        return _storable(document)
    if media_type == FORM_TYPES[0]:
        return _query_storable(QueryDict(request.body, encoding=request.encoding))
    if media_type == FORM_TYPES[1] and request.method == "POST":
        request.body  # noqa: B018 -- read and kept first, so the view can still read it
        files = [file.name for name in request.FILES for file in request.FILES.getlist(name)]
        return _query_storable(request.POST) and _storable(files)
    return True


def refusal(request: HttpRequest) -> HttpResponse:
    """The 400 for unstorable text, in the shape of the endpoint the request was for."""
    request_id = str(getattr(request, "request_id", "") or "")
    if request.path.startswith(TOKEN_ENDPOINT):
        error = InvalidRequest("unstorable_text")
        return JsonResponse(error.body(request_id), status=error.status, headers=error.headers())
    if request.path.startswith("/api/"):
        api_error = BadRequest(MESSAGE)
        return JsonResponse(api_error.body(request_id), status=api_error.status)
    return HttpResponse(MESSAGE, status=400, content_type="text/plain; charset=utf-8")


class UnstorableTextMiddleware:
    """Answer 400 when the path, query string or a JSON/form body holds unstorable text."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not _storable(request.path) or not _query_storable(request.GET):
            return refusal(request)
        if not request.path.startswith(TOKEN_ENDPOINT) and not _body_storable(request):
            return refusal(request)
        return self.get_response(request)
