"""The contract between an environment open and a login provider (`fn::open::<name>`).

A provider is a function `(context, arguments) -> Credentials`. It receives the portal's ID-token
minter and the outbound HTTP client through the `OpenContext`, so it never reads settings, keys or
the clock itself, and tests hand it fakes in a line. It raises `ProviderError` with a message the
caller may read (never a credential or a response body that could hold one).

What a provider returns is secret: the open result marks every value secret, and nothing of it is
stored; only the `CredentialIssuance` record (who, which environment, which provider, which role,
expiry) is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from environments.providers.endpoints import ProviderEndpoints
from environments.providers.posting import HttpPoster

MIN_ID_TOKEN_LIFETIME = timedelta(minutes=1)
MAX_ID_TOKEN_LIFETIME = timedelta(hours=1)


class ProviderError(Exception):
    """A provider could not issue credentials; `message` is safe to show to the caller."""

    def __init__(self, message: str, *, reason: str = "provider_failed") -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason


@dataclass(frozen=True)
class IdTokenRequest:
    """What a provider asks of the portal's OIDC issuer."""

    audience: str
    subject_attributes: tuple[str, ...] = ()
    lifetime: timedelta = timedelta(minutes=5)


class IdTokenMinter(Protocol):
    def __call__(self, request: IdTokenRequest) -> str: ...


@dataclass(frozen=True)
class OpenContext:
    """Who opens which environment, and the portal services a provider may use.

    `project`/`environment` name the environment whose definition holds the call: the identity
    its ID tokens carry. `root_*` is the environment being opened (imports share it); it is
    recorded, and it names the token only when the call is in the root itself.
    """

    organization: str  # organization login
    project: str
    environment: str
    root_project: str
    root_environment: str
    actor: str  # user login, team name or token description
    exchange_event_id: int | None  # the exchange that authorized the caller, when known
    id_token: IdTokenMinter
    post: HttpPoster  # must only reach what `endpoints` allows (`ProviderEndpoints.poster`)
    now: Callable[[], datetime]
    endpoints: ProviderEndpoints  # where the definition's endpoints may point


@dataclass(frozen=True)
class Credentials:
    """A provider's result: `values` become the secret properties of the open result."""

    values: Mapping[str, Any]
    role: str  # what was assumed: role ARN, service account, Vault role, audience
    expires_at: datetime | None = None
    details: Mapping[str, Any] = field(default_factory=dict)  # recorded, never secret


Provider = Callable[[OpenContext, Mapping[str, Any]], Credentials]
