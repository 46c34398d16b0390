"""What each layer in front of the token endpoint's view costs, in one process (`bench.profile`).

Each variant is its own `WSGIHandler` built over its own middleware list (and, for DRF, its own
URL configuration); variants run in alternating blocks, and the table gives the median over the
blocks of the milliseconds per request and the difference to the lean path.
"""

from __future__ import annotations

import io
import statistics
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler

from bench.run import address

LEAN = "portal.lean.LeanRouteMiddleware"
BLOCKS = 10


def _variants() -> dict[str, tuple[list[str], str]]:
    full = list(settings.MIDDLEWARE)
    urls = settings.ROOT_URLCONF
    lean_at = full.index(LEAN)
    variants = {
        "lean path, DRF APIView (as served)": (full, urls),
        "whole middleware stack (no lean path)": ([m for m in full if m != LEAN], urls),
    }
    for layer in full[:lean_at]:
        variants[f"lean path without {layer.rsplit('.', 1)[1]}"] = (
            [m for m in full if m != layer],
            urls,
        )
    variants["the view alone (no layer)"] = ([LEAN], urls)
    variants["plain Django view on the lean path (no DRF)"] = (full, "bench.plain_urls")
    return variants


def _caller(handler: WSGIHandler, urlconf: str, bodies: list[bytes]) -> Callable[[int], str]:
    def once(n: int) -> str:
        statuses: list[str] = []
        body = bodies[n % len(bodies)]
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": "/api/oauth/token",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "HTTP_HOST": "127.0.0.1",
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_X_FORWARDED_FOR": address(n % len(bodies)),
            "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body),
            "wsgi.url_scheme": "http",
        }

        def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
            statuses.append(status)

        settings.ROOT_URLCONF = urlconf
        response = handler(environ, start_response)
        b"".join(response)
        response.close()
        return statuses[0]

    return once


def measure_layers(bodies: list[bytes], requests: int) -> None:
    original = (list(settings.MIDDLEWARE), settings.ROOT_URLCONF)
    callers: dict[str, Callable[[int], str]] = {}
    for name, (middleware, urlconf) in _variants().items():
        settings.MIDDLEWARE = middleware
        callers[name] = _caller(WSGIHandler(), urlconf, bodies)
    settings.MIDDLEWARE, settings.ROOT_URLCONF = original
    counter = 0
    for name, once in callers.items():  # warm each: caches, the URL configuration
        for _ in range(50):
            status = once(counter)
            counter += 1
            assert status.startswith("200"), (name, status)
    block = max(requests // BLOCKS, 1)
    times: dict[str, list[float]] = {name: [] for name in callers}
    for _ in range(BLOCKS):
        for name, once in callers.items():
            started = time.perf_counter()
            for _ in range(block):
                once(counter)
                counter += 1
            times[name].append((time.perf_counter() - started) / block * 1000)
    lean = statistics.median(times["lean path, DRF APIView (as served)"])
    print(f"\n{'variant':52} {'ms/request':>10} {'vs lean':>9}   (median of {BLOCKS} x {block})")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:52} {median:10.3f} {median - lean:+9.3f}")
    settings.ROOT_URLCONF = original[1]
