"""HTTP for the client: one request, no redirects, a capped body, failures as `LoginError`."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from trustportal_login.model import MAX_RESPONSE_BYTES, LoginError, Response


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx surfaces as an HTTPError the caller explains


_OPENER = urllib.request.build_opener(_NoRedirects())


def http(request: urllib.request.Request, *, timeout: float, what: str) -> Response:
    """Send a request; any HTTP status is a Response, a transport failure a LoginError.

    `what` names the endpoint in messages (scheme, host and path; never a query or header).
    """
    try:
        with _OPENER.open(request, timeout=timeout) as answer:
            return Response(
                answer.status, _lowered(answer.headers), answer.read(MAX_RESPONSE_BYTES)
            )
    except urllib.error.HTTPError as exc:
        try:
            body = exc.read(MAX_RESPONSE_BYTES)
        finally:
            exc.close()
        return Response(exc.code, _lowered(exc.headers), body)
    except urllib.error.URLError as exc:
        raise LoginError(f"could not connect to {what}: {exc.reason}") from None
    except TimeoutError:
        raise LoginError(f"no answer from {what} within {timeout:g} s") from None
    except OSError as exc:
        raise LoginError(f"could not connect to {what}: {exc}") from None


def _lowered(headers: Any) -> dict[str, str]:
    return {str(name).lower(): str(value) for name, value in (headers or {}).items()}


def shown(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def json_object(body: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return value if isinstance(value, dict) else None
