"""Open sessions and decrypt: evaluate with secrets revealed, run `fn::open` providers, record.

`fn::open` providers run once, when a session is opened (`_ProviderRun`): each call is recorded
as a `CredentialIssuance`, ok or failed, and what the providers returned is kept only sealed
under a key derived from the session id (`OpenOutputs`), until the session expires. Reads of
the session evaluate the pinned revisions again and take the providers' values from there:
nothing is issued twice, and no credential is stored in a form the portal alone can open.
"""

from __future__ import annotations

import json
import logging
import secrets as random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from environments import evaluator, providers, rotators, sealing, selectors, signing
from environments.access import Actor
from environments.definitions import OpenerFor, RequestInfo, context_of, decrypter, loader
from environments.errors import DefinitionInvalid, EnvironmentInvalid
from environments.evaluator import Evaluation, OpenCall, Opener, OpenFailed, Source
from environments.models import (
    AccessEvent,
    AccessKind,
    CredentialIssuance,
    Environment,
    OpenOutputs,
    Outcome,
    Revision,
)
from environments.providers.base import Credentials, IdTokenRequest, OpenContext, ProviderError
from environments.providers.endpoints import ProviderEndpoints
from environments.providers.posting import HttpPoster
from kernel.errors import NotFound
from kernel.secretbox import SecretBox, SecretError, SecretKey, default_box
from tokens.models import ExchangeEvent

MAX_OPEN = timedelta(hours=24)
DEFAULT_OPEN = timedelta(hours=2)
# HKDF label of the key that seals an open session's provider outputs (from the session id).
OUTPUTS_LABEL = b"trustportal/environments/open-outputs/v1"

logger = logging.getLogger(__name__)


# --- open and decrypt ---------------------------------------------------------------------------
def _record(
    *,
    kind: str,
    environment: Environment,
    revision: Revision,
    actor: Actor,
    request: RequestInfo,
    now: datetime,
    imports: dict[str, int] | None = None,
    session_hash: str | None = None,
    expires: datetime | None = None,
) -> AccessEvent:
    """Write the open (or decrypt) record, with the token's exchange event if it has one."""
    token = actor.token
    exchange_event_id = _exchange_event_id(actor)
    return AccessEvent.objects.create(
        kind=kind,
        created=now,
        organization_id=environment.organization_id,
        environment_id=environment.pk,
        project=environment.project,
        name=environment.name,
        revision=revision.number,
        imports=imports or {},
        session_hash=session_hash,
        expires=expires,
        token_id=token.pk if token is not None else None,
        token_type=token.token_type if token is not None else "",
        token_label=actor.token_label[:300],
        exchange_event_id=exchange_event_id,
        user_id=actor.user.pk if actor.user is not None else None,
        login=actor.login[:200],
        request_id=request.request_id[:64],
        client_ip=request.client_ip,
        user_agent=request.user_agent[:512],
    )


def _exchange_event_id(actor: Actor) -> int | None:
    """The exchange that minted the caller's token, when it was exchanged."""
    if actor.token is None:
        return None
    found: int | None = (
        ExchangeEvent.objects.filter(token_id=actor.token.pk).values_list("pk", flat=True).first()
    )
    return found


def open_lifetime(
    requested: timedelta | None, *, token_expires: datetime | None, now: datetime
) -> timedelta:
    """An open session's lifetime: as asked (default 2 h), at most 24 h, never past the token."""
    lifetime = min(requested or DEFAULT_OPEN, MAX_OPEN)
    if token_expires is not None:
        lifetime = min(lifetime, token_expires - now)
    return max(lifetime, timedelta(seconds=1))


# --- fn::open providers -------------------------------------------------------------------------
def _output_key(call: OpenCall) -> str:
    """Where a call's outputs are kept in a session: environment and property path."""
    return f"{call.environment}:{call.path}"


def _json_safe(data: Any) -> Any:
    """Plain JSON data (dates and other objects as strings), as it will be stored and read."""
    return json.loads(json.dumps(data, default=str))


@dataclass
class _ProviderRun:
    """The `fn::open` calls of one open: runs each provider once, records it, keeps its outputs.

    Provider failures become `OpenFailed` (a diagnostic at the call's line and column) with the
    provider's safe message; an unexpected exception is logged and told as a generic message.
    """

    root: Environment
    actor: Actor
    request: RequestInfo
    issuer: str | None
    now: datetime
    endpoints: ProviderEndpoints
    post: HttpPoster
    rotation_period: timedelta
    exchange_event_id: int | None
    find: Callable[[str], providers.Provider | None] = providers.provider_named
    outputs: dict[str, Any] = field(default_factory=dict)
    issuances: list[int] = field(default_factory=list)
    _key: signing.ActiveKey | None = None

    def opener(self, environment: Environment) -> Opener:
        """The `open` function for one environment's definition (the root or an import)."""

        def open_call(call: OpenCall) -> Mapping[str, Any]:
            return self.call(environment, call)

        return open_call

    def active_key(self) -> signing.ActiveKey:
        if self._key is None:
            self._key = signing.signing_key_active(
                rotation_period=self.rotation_period, now=self.now
            )
        return self._key

    @sensitive_variables("credentials", "values")
    def call(self, environment: Environment, call: OpenCall) -> Mapping[str, Any]:
        minted: list[signing.IdToken] = []

        def id_token(request: IdTokenRequest) -> str:
            token = signing.id_token_mint(
                request, context, issuer=self.issuer, key=self.active_key, now=self.now
            )
            minted.append(token)
            return token.token

        context = OpenContext(
            organization=self.root.organization.login,
            project=environment.project,
            environment=environment.name,
            root_project=self.root.project,
            root_environment=self.root.name,
            actor=self.actor.login,
            exchange_event_id=self.exchange_event_id,
            id_token=id_token,
            post=self.post,
            now=lambda: self.now,
            endpoints=self.endpoints,
        )
        provider = self.find(call.provider)
        try:
            if provider is None:
                raise ProviderError(
                    f"the {call.provider} provider is not available on this portal",
                    reason="provider_unavailable",
                )
            credentials = provider(context, call.arguments)
            if not isinstance(credentials, Credentials) or not isinstance(
                credentials.values, Mapping
            ):
                raise ProviderError("the provider returned no credentials")
            values = _json_safe(dict(credentials.values))
        except ProviderError as exc:
            self.record(environment, call, minted, None, reason=exc.reason, message=exc.message)
            raise OpenFailed(exc.message) from None
        except Exception:
            logger.exception("fn::open::%s failed in %s", call.provider, call.environment)
            message = "the provider failed unexpectedly (the portal's log has the details)"
            self.record(environment, call, minted, None, reason="provider_crashed", message=message)
            raise OpenFailed(message) from None
        self.record(environment, call, minted, credentials)
        self.outputs[_output_key(call)] = values
        return dict(values)

    def record(
        self,
        environment: Environment,
        call: OpenCall,
        minted: list[signing.IdToken],
        credentials: Credentials | None,
        *,
        reason: str = "",
        message: str = "",
    ) -> None:
        """Write the issuance record of one call (never a credential, never an ID token)."""
        expires = credentials.expires_at if credentials is not None else None
        if expires is None and minted:
            expires = max(token.expires_at for token in minted)
        token = self.actor.token
        issuance = CredentialIssuance.objects.create(
            created=self.now,
            organization_id=self.root.organization_id,
            environment_id=environment.pk,
            project=environment.project,
            name=environment.name,
            root_environment=self.root.full_name,
            path=call.path[:500],
            provider=call.provider[:64],
            role=(credentials.role if credentials is not None else "")[:500],
            audience=", ".join(dict.fromkeys(t.audience for t in minted))[:500],
            subject=", ".join(dict.fromkeys(t.subject for t in minted))[:1000],
            expires_at=expires,
            outcome=Outcome.OK if credentials is not None else Outcome.FAILED,
            reason=reason[:64],
            message=message[:500],
            details=_json_safe(dict(credentials.details)) if credentials is not None else {},
            login=self.actor.login[:200],
            token_id=token.pk if token is not None else None,
            token_label=self.actor.token_label[:300],
            exchange_event_id=self.exchange_event_id,
            request_id=self.request.request_id[:64],
        )
        self.issuances.append(issuance.pk)


def _replayer(outputs: Mapping[str, Any]) -> OpenerFor:
    """`open` functions that answer each call with what it returned when the session opened."""

    def opener_for(environment: Environment) -> Opener:
        def replay(call: OpenCall) -> Mapping[str, Any]:
            found = outputs.get(_output_key(call))
            if not isinstance(found, Mapping):
                raise OpenFailed(
                    "what this provider returned when the session was opened is no longer "
                    "available; open the environment again"
                )
            return found

        return replay

    return opener_for


def _outputs_box(session_id: str) -> SecretBox:
    """The box for one session's outputs: its key comes from the session id alone."""
    return SecretBox((SecretKey.derive(session_id, label=OUTPUTS_LABEL),))


def _outputs_context(event: AccessEvent) -> bytes:
    return (
        f"trustportal:open-outputs:{event.organization_id}:{event.environment_id}:"
        f"{event.session_hash}"
    ).encode()


@sensitive_variables("session_id")
def _outputs_of(event: AccessEvent, session_id: str | None) -> dict[str, Any]:
    """The providers' outputs kept for a session (empty when none or unreadable)."""
    row = OpenOutputs.objects.filter(access_event_id=event.pk).first()
    if row is None or session_id is None:
        return {}
    try:
        plain = _outputs_box(session_id).decrypt(row.sealed, context=_outputs_context(event))
    except (SecretError, ValueError):
        return {}
    found = json.loads(plain)
    return found if isinstance(found, dict) else {}


def open_outputs_purge(*, now: datetime | None = None) -> int:
    """Delete the sealed provider outputs of expired sessions; the count deleted."""
    deleted, _ = OpenOutputs.objects.filter(expires__lte=now or timezone.now()).delete()
    return deleted


# --- open and read ------------------------------------------------------------------------------
@sensitive_variables("result", "session_id")
def environment_open(
    *,
    environment: Environment,
    revision: Revision,
    actor: Actor,
    duration: timedelta | None = None,
    request: RequestInfo | None = None,
    box: SecretBox | None = None,
    issuer: str | None = None,
    post: HttpPoster | None = None,
    find: Callable[[str], providers.Provider | None] = providers.provider_named,
    now: datetime | None = None,
    rng: Callable[[int], bytes] = random.token_bytes,
) -> tuple[str, AccessEvent]:
    """Evaluate a revision and start an open session; returns the session id (shown once).

    The session stores no values: reads evaluate again at the revisions pinned here, so no
    resolved secret is ever written down. The one exception is what `fn::open` providers
    return: they run here, once, and their outputs are kept sealed under a key derived from
    the session id until the session expires. Refused with diagnostics if evaluation fails
    (a failing provider included); the issuance records stay either way.
    """
    box = box or default_box()
    now = now or timezone.now()
    request = request or RequestInfo()
    run = _provider_run(environment, actor, request, issuer=issuer, post=post, find=find, now=now)
    used: dict[str, int] = {}
    result = _evaluate_revision(
        environment, revision, actor, box, pins=None, used=used, opener=run.opener
    )
    if result.diagnostics:
        raise DefinitionInvalid(result.diagnostics)
    session_id = rng(16).hex()
    lifetime = open_lifetime(
        duration, token_expires=actor.token.expires if actor.token else None, now=now
    )
    with transaction.atomic():
        event = _record(
            kind=AccessKind.OPEN,
            environment=environment,
            revision=revision,
            actor=actor,
            request=request,
            now=now,
            imports=used,
            session_hash=selectors.session_hash(session_id),
            expires=now + lifetime,
        )
        _session_keep(event, run, session_id, expires=now + lifetime)
    return session_id, event


def _provider_run(
    environment: Environment,
    actor: Actor,
    request: RequestInfo,
    *,
    issuer: str | None,
    post: HttpPoster | None,
    find: Callable[[str], providers.Provider | None],
    now: datetime,
) -> _ProviderRun:
    from django.conf import settings

    config = settings.TRUSTPORTAL
    endpoints = ProviderEndpoints.from_config(config)
    return _ProviderRun(
        root=environment,
        actor=actor,
        request=request,
        issuer=issuer or signing.issuer_url(config, base_url=config.public_url),
        now=now,
        endpoints=endpoints,
        post=post or endpoints.poster(),
        rotation_period=timedelta(days=max(config.oidc_key_rotation_days, 1)),
        exchange_event_id=_exchange_event_id(actor),
        find=find,
    )


@sensitive_variables("session_id")
def _session_keep(
    event: AccessEvent, run: _ProviderRun, session_id: str, *, expires: datetime
) -> None:
    """Link the session's issuances to it and keep the providers' outputs, sealed."""
    if run.issuances:
        CredentialIssuance.objects.filter(pk__in=run.issuances).update(access_event=event)
    if run.outputs:
        OpenOutputs.objects.create(
            access_event=event,
            sealed=_outputs_box(session_id).encrypt(
                json.dumps(run.outputs), context=_outputs_context(event)
            ),
            expires=expires,
        )


def _evaluate_revision(
    environment: Environment,
    revision: Revision,
    actor: Actor,
    box: SecretBox,
    *,
    pins: dict[str, int] | None,
    used: dict[str, int] | None = None,
    opener: OpenerFor | None = None,
) -> Evaluation:
    """Evaluate a stored revision with secrets revealed, imports checked for `open`."""
    source = Source(
        environment.full_name,
        revision.definition,
        decrypter(box, environment, reveal=True),
        opener(environment) if opener is not None else None,
        context_of(actor),
    )
    return evaluator.evaluate(
        source,
        loader(actor, box, reveal=True, pins=pins, used=used, opener=opener),
        providers=providers.schemas(),
        rotators=rotators.schemas(),
    )


@sensitive_variables("result", "session_id")
def environment_read_open(
    *,
    environment: Environment,
    event: AccessEvent,
    actor: Actor,
    session_id: str | None = None,
    box: SecretBox | None = None,
) -> Evaluation:
    """The values of an open session, evaluated again at the revisions it pinned.

    `fn::open` values come from what the providers returned at open time (unsealed with the
    session id); they are never computed again.
    """
    revision = selectors.revision_numbered(environment, event.revision)
    if revision is None:
        raise NotFound("The revision this session opened no longer exists.")
    result = _evaluate_revision(
        environment,
        revision,
        actor,
        box or default_box(),
        pins=dict(event.imports),
        opener=_replayer(_outputs_of(event, session_id)),
    )
    if result.diagnostics:
        raise DefinitionInvalid(
            result.diagnostics, "The environment can no longer be evaluated as it was opened."
        )
    return result


@sensitive_variables("text")
def environment_decrypt(
    *,
    environment: Environment,
    revision: Revision,
    actor: Actor,
    request: RequestInfo | None = None,
    box: SecretBox | None = None,
    now: datetime | None = None,
) -> str:
    """The definition with secrets in plaintext (admins only: the caller checks); recorded."""
    box = box or default_box()
    try:
        text = sealing.unseal(
            revision.definition,
            environment.full_name,
            decrypter(box, environment, reveal=True),
        )
    except SecretError as exc:
        raise EnvironmentInvalid(
            f"A secret of this environment cannot be decrypted: {exc}"
        ) from exc
    _record(
        kind=AccessKind.DECRYPT,
        environment=environment,
        revision=revision,
        actor=actor,
        request=request or RequestInfo(),
        now=now or timezone.now(),
    )
    return text
