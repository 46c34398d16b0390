"""Second factor for password sign-ins: TOTP enrolment with recovery codes, and verification.

Built on django-otp: a `TOTPDevice` (confirmed by a first code) and a `StaticDevice` holding ten
single-use recovery codes, both throttled by django-otp after failed codes. `SecondFactorMiddleware`
sends whoever needs a second factor (`signin.selectors.second_factor_required`) and has not given
one in this session to these pages before anything else; sign-ins through an identity provider
leave second factors to the provider.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods
from django_otp import login as otp_login
from django_otp import match_token, user_has_device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from signin.models import SignInEvent
from signin.security_log import record
from signin.selectors import second_factor_required
from trustportal.models import User

RECOVERY_CODES = 10
DEVICE_NAME = "Authenticator app"
# Paths a person who still owes a second factor may reach (the API authenticates by token).
OPEN_PREFIXES = ("/signin/", "/logout/", "/static/", "/api/", "/oidc/", "/login/")


def _next(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return reverse("home")


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User) or hasattr(request.user, "_wrapped")
    return request.user  # type: ignore[return-value]


@login_required
@require_http_methods(["GET", "POST"])
def enrol(request: HttpRequest) -> HttpResponse:
    """Show a new TOTP key; a first valid code confirms it and shows the recovery codes once."""
    user = _user(request)
    if user_has_device(user, confirmed=True):
        return redirect(f"{reverse('signin:mfa-verify')}?{urlencode({'next': _next(request)})}")
    device = TOTPDevice.objects.filter(user=user, confirmed=False).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name=DEVICE_NAME, confirmed=False)
    error = ""
    if request.method == "POST":
        code = request.POST.get("code", "").strip().replace(" ", "")
        if code.isdigit() and device.verify_token(code):
            with transaction.atomic():
                device.confirmed = True
                device.save(update_fields=["confirmed"])
                static, _ = StaticDevice.objects.get_or_create(
                    user=user, name="Recovery codes", defaults={"confirmed": True}
                )
                static.token_set.all().delete()
                codes = [StaticToken.random_token() for _ in range(RECOVERY_CODES)]
                StaticToken.objects.bulk_create(
                    [StaticToken(device=static, token=c) for c in codes]
                )
            otp_login(request, device)
            record(SignInEvent.Kind.MFA_ENROLLED, request=request, user=user, method="totp")
            return render(
                request, "signin/recovery_codes.html", {"codes": codes, "next": _next(request)}
            )
        error = "That code is not right. Enter the current 6-digit code from your app."
        record(
            SignInEvent.Kind.MFA_FAILED,
            request=request,
            user=user,
            method="totp",
            reason="enrolment_code_wrong",
        )
    secret = _base32(device.bin_key)
    return render(
        request,
        "signin/enrol.html",
        {"secret": secret, "config_url": device.config_url, "error": error, "next": _next(request)},
        status=400 if error else 200,
    )


def _base32(key: bytes) -> str:
    raw = base64.b32encode(key).decode().rstrip("=")
    return " ".join(raw[i : i + 4] for i in range(0, len(raw), 4))


@login_required
@require_http_methods(["GET", "POST"])
def verify(request: HttpRequest) -> HttpResponse:
    """Ask for a TOTP code or a recovery code (each recovery code works once)."""
    user = _user(request)
    if not user_has_device(user, confirmed=True):
        return redirect(f"{reverse('signin:mfa-enrol')}?{urlencode({'next': _next(request)})}")
    error = ""
    if request.method == "POST":
        code = request.POST.get("code", "").strip().replace(" ", "")
        device = match_token(user, code) if code else None
        if device is not None:
            otp_login(request, device)
            method = "recovery" if isinstance(device, StaticDevice) else "totp"
            record(SignInEvent.Kind.MFA_VERIFIED, request=request, user=user, method=method)
            return redirect(_next(request))
        error = "That code is not right, or too many wrong codes were tried: wait and try again."
        record(
            SignInEvent.Kind.MFA_FAILED,
            request=request,
            user=user,
            method="totp",
            reason="code_wrong",
        )
    return render(
        request,
        "signin/verify.html",
        {"error": error, "next": _next(request)},
        status=400 if error else 200,
    )


class SecondFactorMiddleware:
    """After OTPMiddleware: who owes a second factor reaches only the second-factor pages."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if self._owes_second_factor(request) and not request.path.startswith(OPEN_PREFIXES):
            target = "signin:mfa-verify" if user_has_device(request.user) else "signin:mfa-enrol"
            return redirect(f"{reverse(target)}?{urlencode({'next': request.get_full_path()})}")
        return self.get_response(request)

    @staticmethod
    def _owes_second_factor(request: HttpRequest) -> bool:
        user: Any = request.user
        if not user.is_authenticated or user.is_verified():
            return False
        if str(request.session.get("signin_method", "")).startswith("oidc:"):
            return False
        return second_factor_required(user)
