"""Who is acting, from where: set once per request (or task), read by `audit.services`.

The web layer knows the caller; the write services deep below it do not, and should not have to
thread a request through every signature. A context variable carries it: the middleware sets the
signed-in user (or nobody), API authentication replaces it with the token and its lineage, and
tasks and commands act as `system` unless they say otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace

from django.http import HttpRequest, HttpResponse

from kernel.clientaddr import client_ip


@dataclass(frozen=True)
class Actor:
    kind: str = "system"  # user | token | system
    user_id: int | None = None
    username: str = ""
    token_id: int | None = None
    token_name: str = ""
    token_lineage: tuple[int, ...] = ()
    client_ip: str | None = None
    user_agent: str = ""
    request_id: str = ""

    def with_user(self, user_id: int | None, username: str) -> Actor:
        return replace(self, kind="user", user_id=user_id, username=username)

    def with_token(
        self,
        *,
        token_id: int,
        token_name: str,
        lineage: tuple[int, ...],
        user_id: int | None,
        username: str,
    ) -> Actor:
        return replace(
            self,
            kind="token",
            token_id=token_id,
            token_name=token_name,
            token_lineage=lineage,
            user_id=user_id,
            username=username,
        )


SYSTEM = Actor()
_current: ContextVar[Actor | None] = ContextVar("audit_actor", default=None)


def current_actor() -> Actor:
    """The actor of the running request or task (`system` outside of one)."""
    return _current.get() or SYSTEM


def set_actor(actor: Actor) -> None:
    """Replace the running request's actor (API authentication, once it knows the token)."""
    _current.set(actor)


@contextmanager
def acting_as(actor: Actor) -> Iterator[Actor]:
    """Run a block (a task, a command, a test) as `actor`."""
    reset = _current.set(actor)
    try:
        yield actor
    finally:
        _current.reset(reset)


class AuditContextMiddleware:
    """Start each request as its client (address, user agent, request id) and session user."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        actor = Actor(
            kind="user",
            client_ip=client_ip(request),
            user_agent=request.headers.get("User-Agent", "")[:512],
            request_id=str(getattr(request, "request_id", ""))[:64],
        )
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            actor = actor.with_user(user.pk, user.get_username())
        reset = _current.set(actor)
        try:
            return self.get_response(request)
        finally:
            _current.reset(reset)
