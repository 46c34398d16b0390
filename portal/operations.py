"""/healthz, /readyz and /metrics: answered before sessions, host checks and history.

They are for load balancers and Prometheus, which call them often and from inside the network:
no session, no CSRF, no rate limit, no exchange event, no redirect to https. `/healthz` says the
process answers; `/readyz` that the database answers, every migration is applied and Redis (when
configured) answers, within about a second each; `/metrics` serves Prometheus text to a caller
with the metrics token or from an allowed network, and 403 to anyone else.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Callable
from typing import Any

import redis
from django.conf import settings
from django.db import DatabaseError, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, HttpResponse, JsonResponse

from kernel.clientaddr import client_ip
from kernel.metrics import CONTENT_TYPE, exposition
from tokens.metrics import ActiveTokensCollector
from trustportal.middleware import close_database_connections

logger = logging.getLogger(__name__)

NO_STORE = {"Cache-Control": "no-store"}
_migrations_applied = False  # once true in a process it stays true (migrations run before)
_redis_clients: dict[str, Any] = {}


def _database() -> str:
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        close_database_connections()
        return "unavailable"
    return "ok"


def _migrations() -> str:
    global _migrations_applied
    if _migrations_applied:
        return "ok"
    try:
        executor = MigrationExecutor(connections["default"])
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except DatabaseError:
        close_database_connections()
        return "unavailable"
    if pending:
        return "pending"
    _migrations_applied = True
    return "ok"


def _redis() -> str | None:
    url = settings.REDIS_URL
    if not url:
        return None
    client = _redis_clients.get(url)
    if client is None:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        _redis_clients[url] = client
    try:
        client.ping()
    except (redis.RedisError, OSError):
        return "unavailable"
    return "ok"


def liveness(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"status": "ok"}, headers=NO_STORE)


def readiness(request: HttpRequest) -> HttpResponse:
    """200 when the database, its migrations and Redis are ready; 503 naming what is not."""
    checks = {"database": _database()}
    if checks["database"] == "ok":
        checks["migrations"] = _migrations()
    cache = _redis()
    if cache is not None:
        checks["redis"] = cache
    ready = all(value == "ok" for value in checks.values())
    if not ready:
        logger.warning("not ready: %s", ", ".join(f"{k}={v}" for k, v in checks.items()))
    return JsonResponse(
        {"status": "ready" if ready else "unavailable", "checks": checks},
        status=200 if ready else 503,
        headers=NO_STORE,
    )


def may_read_metrics(request: HttpRequest) -> bool:
    """The metrics token (as a bearer token) or a client address in the allowed networks."""
    config = settings.TRUSTPORTAL
    supplied = request.headers.get("Authorization", "")
    if config.metrics_token and hmac.compare_digest(
        supplied.encode(), f"Bearer {config.metrics_token}".encode()
    ):
        return True
    address = client_ip(request)
    if not address or not config.metrics_allowed_networks:
        return False
    try:
        peer = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(
        peer.version == net.version and peer in net for net in config.metrics_allowed_networks
    )


def metrics(request: HttpRequest) -> HttpResponse:
    if not may_read_metrics(request):
        return JsonResponse(
            {"code": 403, "message": "Metrics need the metrics token or an allowed network."},
            status=403,
        )
    try:
        body = exposition(ActiveTokensCollector())
    except DatabaseError:
        close_database_connections()
        body = exposition()
    return HttpResponse(body, content_type=CONTENT_TYPE, headers=NO_STORE)


ROUTES: dict[str, Callable[[HttpRequest], HttpResponse]] = {
    "/healthz": liveness,
    "/readyz": readiness,
    "/metrics": metrics,
}


class OperationsMiddleware:
    """Answer the operations endpoints (GET or HEAD) before the rest of the stack runs."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        route = ROUTES.get(request.path_info)
        if route is None:
            return self.get_response(request)
        if request.method not in ("GET", "HEAD"):
            return JsonResponse(
                {"code": 405, "message": "Method not allowed."},
                status=405,
                headers={"Allow": "GET, HEAD"},
            )
        return route(request)
