"""Authentication backends: passwords (refused where single sign-on is required) and OIDC.

`OIDCBackend` is mozilla-django-oidc's backend with the parts that must be stricter here: the
provider comes from the sign-in that started the flow (not from global settings); discovery, the
JWKS, the token request and userinfo all go through the outbound guard (`outbound/`); the ID
token is verified by `signin.idtoken` (signature, iss, aud, exp, nonce); users are matched by
(provider, sub) only; roles follow the group mapping at every sign-in.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote, urlencode

from django.contrib.auth.backends import ModelBackend
from django.utils import timezone
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.utils import import_from_settings

from issuers.services import Outbound, default_outbound
from kernel.secretbox import SecretError
from outbound.client import decode_json, post
from outbound.errors import FetchError
from signin.errors import SignInRefused
from signin.idtoken import verify_id_token
from signin.metadata import ProviderMetadata, provider_metadata
from signin.models import IdentityProvider, SignInEvent
from signin.security_log import record
from signin.selectors import sso_required_by
from signin.services import groups_of, provider_secret, roles_apply, user_for_identity
from trustportal.models import User

CALLBACK_URL_NAME = "signin:oidc-callback"


class PasswordBackend(ModelBackend):
    """Django's password backend, refusing members of organizations that require SSO."""

    def user_can_authenticate(self, user: Any) -> bool:
        if not super().user_can_authenticate(user):
            return False
        refusing = sso_required_by(user)
        if refusing:
            request = getattr(self, "_request", None)
            if request is not None:
                request.signin_refusal = "sso_required"
            return False
        return True

    def authenticate(
        self, request: Any, username: Any = None, password: Any = None, **kwargs: Any
    ) -> Any:
        self._request = request
        try:
            return super().authenticate(request, username=username, password=password, **kwargs)
        finally:
            self._request = None


def provider_settings(provider: IdentityProvider) -> dict[str, Any]:
    """The mozilla-django-oidc settings of one provider (the rest come from Django settings)."""
    return {
        "OIDC_RP_CLIENT_ID": provider.client_id,
        "OIDC_RP_SCOPES": provider.scopes,
        "OIDC_USE_NONCE": True,
        "OIDC_USE_PKCE": True,
        "OIDC_PKCE_CODE_CHALLENGE_METHOD": "S256",
        "OIDC_AUTHENTICATION_CALLBACK_URL": CALLBACK_URL_NAME,
        "OIDC_STORE_ACCESS_TOKEN": False,
        "OIDC_STORE_ID_TOKEN": False,
        "OIDC_CREATE_USER": True,
    }


class OIDCBackend(OIDCAuthenticationBackend):
    """Signs in the person an OpenID Provider vouches for (see the module docstring)."""

    outbound: Outbound | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # No global provider settings: they are the provider's, set in `authenticate`.
        self.UserModel = User
        self.provider: IdentityProvider | None = None
        self.metadata: ProviderMetadata | None = None

    def get_settings(self, attr: str, *args: Any) -> Any:
        if self.provider is not None and attr in (own := provider_settings(self.provider)):
            return own[attr]
        return import_from_settings(attr, *args)

    def authenticate(self, request: Any, **kwargs: Any) -> User | None:
        provider = getattr(request, "signin_provider", None) if request is not None else None
        if not isinstance(provider, IdentityProvider) or "code" not in request.GET:
            return None
        self.provider = provider
        try:
            self.metadata = provider_metadata(provider.issuer, self._outbound())
            self.OIDC_OP_TOKEN_ENDPOINT = self.metadata.token_endpoint
            self.OIDC_OP_USER_ENDPOINT = self.metadata.userinfo_endpoint
            self.OIDC_RP_CLIENT_ID = provider.client_id
            try:
                self.OIDC_RP_CLIENT_SECRET = provider_secret(provider)
            except SecretError as exc:
                raise SignInRefused("provider_misconfigured", f"client secret: {exc}") from exc
            user: User | None = super().authenticate(request, **kwargs)
            return user
        except SignInRefused as refused:
            request.signin_failure = refused
            return None

    def _outbound(self) -> Outbound:
        return self.outbound or default_outbound()

    def get_token(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The token request (client_secret_basic) through the outbound guard."""
        assert self.metadata is not None
        client_id = payload.pop("client_id")
        secret = payload.pop("client_secret")
        basic = base64.b64encode(f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode())
        try:
            status, headers, body = post(
                self.metadata.token_endpoint,
                body=urlencode(payload).encode(),
                content_type="application/x-www-form-urlencoded",
                policy=self._outbound().policy,
                resolve=self._outbound().resolve,
                headers={"Authorization": f"Basic {basic.decode()}"},
            )
            answer = decode_json(headers, body)
        except FetchError as exc:
            raise SignInRefused("token_exchange_failed", f"{exc.reason}: {exc.message}") from exc
        if status != 200:
            error = str(answer.get("error", ""))[:100]
            raise SignInRefused("token_exchange_failed", f"HTTP {status} {error}")
        return answer

    def verify_token(self, token: Any, **kwargs: Any) -> dict[str, Any]:
        assert self.metadata is not None and self.provider is not None
        return verify_id_token(
            token,
            issuer=self.metadata.issuer,
            client_id=self.provider.client_id,
            keys=self.metadata.keys,
            nonce=kwargs.get("nonce"),
            now=timezone.now(),
        )

    def get_userinfo(
        self, access_token: Any, id_token: str, payload: dict[str, Any]
    ) -> dict[str, Any]:
        """The ID token's claims, completed by userinfo (whose sub must be the same person)."""
        assert self.metadata is not None
        claims = dict(payload)
        if self.metadata.userinfo_endpoint and isinstance(access_token, str) and access_token:
            try:
                info = (
                    self._outbound()
                    .fetch(
                        self.metadata.userinfo_endpoint,
                        policy=self._outbound().policy,
                        resolve=self._outbound().resolve,
                        headers={"Authorization": f"Bearer {access_token}"},
                    )
                    .data
                )
            except FetchError as exc:
                raise SignInRefused("provider_unavailable", f"userinfo: {exc.message}") from exc
            if info.get("sub") != payload["sub"]:
                raise SignInRefused("subject_mismatch")
            claims.update({k: v for k, v in info.items() if k not in ("iss", "aud", "sub")})
        return claims

    def get_or_create_user(self, access_token: Any, id_token: str, payload: dict[str, Any]) -> User:
        assert self.provider is not None
        claims = self.get_userinfo(access_token, id_token, payload)
        user = user_for_identity(self.provider, claims)
        groups = groups_of(claims, self.provider.groups_claim)
        for change in roles_apply(user, self.provider, groups):
            record(
                SignInEvent.Kind.ROLE_CHANGED,
                request=self.request,
                user=user,
                method="oidc",
                provider=self.provider,
                organization=change.organization,
                detail=change.describe(),
            )
        return user
