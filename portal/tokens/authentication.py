"""DRF authentication for `Authorization: token <t>` (and `Bearer <t>`)."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from audit.context import current_actor, set_actor
from tokens.errors import InvalidAccessToken
from tokens.models import AccessToken
from tokens.principal import Principal
from tokens.selectors import token_for_request, token_lineage
from tokens.services import token_touch

SCHEMES = ("token", "bearer")


class AccessTokenAuthentication(BaseAuthentication):
    """Authenticate API calls by access token; a missing header leaves the request anonymous."""

    def authenticate(self, request: Request) -> tuple[Principal, AccessToken] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() not in SCHEMES or not value.strip():
            raise InvalidAccessToken("bad_scheme", "Use 'Authorization: token <access token>'.")
        now = timezone.now()
        token = token_for_request(value.strip(), now=now)
        token_touch(token=token, now=now)
        set_actor(
            current_actor().with_token(
                token_id=token.pk,
                token_name=token.name,
                lineage=token_lineage(token),
                user_id=token.user_id,
                username=token.user.get_username() if token.user is not None else "",
            )
        )
        return Principal(token=token), token

    def authenticate_header(self, request: Any) -> str:
        return "token"
