"""Single sign-on pages: start a sign-in with a provider, and its callback.

mozilla-django-oidc's views make `state`, `nonce` and the PKCE verifier, keep them in the session
(one entry per sign-in in progress, removed once used) and check `state` on the way back; these
subclasses add which provider the sign-in was started with, the provider's own settings, a clear
page (and a security-log row) for every refusal, and the provider's session lifetime.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from mozilla_django_oidc.utils import import_from_settings
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from issuers.discovery import issuer_matches_url
from portal.signin.forms import ThrottledAuthenticationForm
from signin.backends import provider_settings
from signin.errors import SignInRefused
from signin.metadata import provider_metadata
from signin.models import IdentityProvider, SignInEvent
from signin.security_log import record
from signin.selectors import enabled_provider, providers_for_login_page

SESSION_METHOD = "signin_method"


class PortalLoginView(LoginView):
    """The password form, and a "Sign in with <provider>" button per enabled provider."""

    authentication_form = ThrottledAuthenticationForm
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["identity_providers"] = list(providers_for_login_page())
        return context

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        self.request.session[SESSION_METHOD] = "password"
        return response


def refused_page(
    request: HttpRequest,
    refused: SignInRefused,
    *,
    provider: IdentityProvider | None = None,
    status: int = 400,
) -> HttpResponse:
    """Record the refusal and say what happened; nothing about the person is created."""
    record(
        SignInEvent.Kind.REFUSED,
        request=request,
        method="oidc",
        provider=provider,
        reason=refused.reason,
        detail=refused.detail,
    )
    return render(
        request,
        "signin/refused.html",
        {"message": refused.message, "reason": refused.reason, "provider": provider},
        status=status,
    )


class SignInStartView(OIDCAuthenticationRequestView):
    """Redirect to the provider's authorization endpoint (code flow, PKCE S256, nonce)."""

    def __init__(self, **kwargs: Any) -> None:  # no global settings: the provider's own
        super(OIDCAuthenticationRequestView, self).__init__(**kwargs)
        self.provider: IdentityProvider | None = None

    def get_settings(self, attr: str, *args: Any) -> Any:
        if self.provider is not None and attr in (own := provider_settings(self.provider)):
            return own[attr]
        return import_from_settings(attr, *args)

    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        self.provider = enabled_provider(pk)
        if self.provider is None:
            return refused_page(
                request, SignInRefused("provider_unavailable", f"no provider {pk}"), status=404
            )
        try:
            metadata = provider_metadata(self.provider.issuer)
        except SignInRefused as refused:
            return refused_page(request, refused, provider=self.provider, status=502)
        self.OIDC_OP_AUTH_ENDPOINT = metadata.authorization_endpoint
        self.OIDC_RP_CLIENT_ID = self.provider.client_id
        response: HttpResponse = super().get(request)
        # Tie the state to the provider it was started with: the callback uses no other.
        state = parse_qs(urlsplit(response["Location"]).query)["state"][0]
        request.session["oidc_states"][state]["provider"] = self.provider.pk
        request.session.modified = True
        return response


class SignInCallbackView(OIDCAuthenticationCallbackView):
    """The provider's answer: state, code exchange, ID token checks, the account and its roles."""

    def get(self, request: HttpRequest) -> HttpResponse:
        state = request.GET.get("state", "")
        states = request.session.get("oidc_states")
        entry = states.get(state) if isinstance(states, dict) and state else None
        if not isinstance(entry, dict) or "provider" not in entry:
            return refused_page(request, SignInRefused("state_mismatch", f"state {state[:64]!r}"))
        provider = enabled_provider(int(entry["provider"]))
        if provider is None:
            return refused_page(request, SignInRefused("provider_unavailable", "disabled"))
        if request.GET.get("error"):
            del states[state]  # type: ignore[union-attr]
            request.session.modified = True
            error = request.GET.get("error", "")[:100]
            detail = f"{error}: {request.GET.get('error_description', '')[:300]}"
            return refused_page(request, SignInRefused("provider_error", detail), provider=provider)
        answered_by = request.GET.get("iss")
        if answered_by is not None and not issuer_matches_url(provider.issuer, answered_by):
            # RFC 9207: the answer names its issuer; another one's answer is a mix-up attack.
            del states[state]  # type: ignore[union-attr]
            request.session.modified = True
            return refused_page(
                request,
                SignInRefused("issuer_mismatch", f"iss parameter {answered_by[:200]!r}"),
                provider=provider,
            )
        request.signin_provider = provider  # type: ignore[attr-defined]
        self.provider = provider
        response: HttpResponse = super().get(request)
        return response

    def login_failure(self) -> HttpResponse:
        refused = getattr(self.request, "signin_failure", None)
        if not isinstance(refused, SignInRefused):
            refused = SignInRefused("provider_error", "no code in the answer")
        return refused_page(
            self.request, refused, provider=getattr(self, "provider", None), status=403
        )

    def login_success(self) -> HttpResponse:
        response: HttpResponse = super().login_success()
        self.request.session.set_expiry(self.provider.session_lifetime)
        self.request.session[SESSION_METHOD] = f"oidc:{self.provider.pk}"
        return response
