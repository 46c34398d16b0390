"""Every sign-in and every failed password sign-in, whichever form or backend, is recorded."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver

from signin.models import SignInEvent
from signin.security_log import record
from trustportal.models import User


@receiver(user_logged_in, dispatch_uid="signin-record-sign-in")
def _signed_in(sender: Any, request: Any, user: User, **kwargs: Any) -> None:
    method = "oidc" if getattr(user, "backend", "").endswith("OIDCBackend") else "password"
    provider = getattr(request, "signin_provider", None) if request is not None else None
    record(
        SignInEvent.Kind.SIGNED_IN,
        request=request,
        user=user,
        method=method,
        provider=provider if method == "oidc" else None,
    )


@receiver(user_login_failed, dispatch_uid="signin-record-failure")
def _failed(sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any) -> None:
    username = credentials.get("username")
    if not isinstance(username, str):  # an OIDC callback: its own refusal is recorded there
        return
    reason = getattr(request, "signin_refusal", "") if request is not None else ""
    record(
        SignInEvent.Kind.REFUSED,
        request=request,
        username=username,
        method="password",
        reason=reason or "invalid_credentials",
    )
