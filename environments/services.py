"""Writes: create, update (new revision), delete, open, decrypt, tags, grants, the demo.

Services trust their caller about *access to the environment named* (views check it through
`environments.access`), but evaluation checks access to every *imported* environment itself:
opening needs `open` on each of them, so a writer cannot read secrets of an environment they
cannot open by importing it. Secrets are sealed before anything is stored; plaintext lives
only in local variables on the way in and in the response on the way out.

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

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from environments import access, evaluation, providers, selectors, signing
from environments.access import Actor
from environments.errors import DefinitionInvalid, EnvironmentConflict, EnvironmentInvalid
from environments.evaluation import Evaluation, Loader, OpenCall, Opener, OpenFailed, Source
from environments.models import (
    AccessEvent,
    AccessKind,
    CredentialIssuance,
    Environment,
    EnvironmentTag,
    Grant,
    Level,
    OpenOutputs,
    Outcome,
    Revision,
    RevisionTag,
)
from environments.providers.base import (
    Credentials,
    HttpPoster,
    IdTokenRequest,
    OpenContext,
    ProviderError,
)
from environments.providers.endpoints import ProviderEndpoints
from environments.secrets import environment_context
from kernel.errors import NotFound
from kernel.secretbox import SecretBox, SecretError, SecretKey, default_box
from tokens.models import ExchangeEvent
from trustportal.models import Organization, Runner, Team, User

RESERVED = {("yaml", "check")}  # `/environments/{org}/yaml/check` is the check endpoint
RESERVED_TAGS = {selectors.LATEST, "tags"}
MAX_OPEN = timedelta(hours=24)
DEFAULT_OPEN = timedelta(hours=2)
CHECK_NAME = "<draft>"
# HKDF label of the key that seals an open session's provider outputs (from the session id).
OUTPUTS_LABEL = b"trustportal/environments/open-outputs/v1"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RequestInfo:
    """Where a request came from, for the open record."""

    request_id: str = ""
    client_ip: str | None = None
    user_agent: str = ""


# --- names --------------------------------------------------------------------------------------
def _check_names(project: str, name: str) -> None:
    for label, value in (("project", project), ("name", name)):
        if not isinstance(value, str) or not evaluation.valid_name(value):
            raise EnvironmentInvalid(
                f"The {label} must be 1-100 letters, digits, '_', '.' or '-' (not only dots)."
            )
    if (project, name) in RESERVED:
        raise EnvironmentInvalid(f"'{project}/{name}' is reserved.")


def _check_tag_name(name: object) -> str:
    if (
        not isinstance(name, str)
        or not evaluation.valid_name(name)
        or name[0].isdigit()
        or name in RESERVED_TAGS
    ):
        raise EnvironmentInvalid(
            "A revision tag name is 1-100 letters, digits, '_', '.' or '-', does not start with "
            "a digit, and is not 'latest' or 'tags'."
        )
    return name


# --- evaluation plumbing ------------------------------------------------------------------------
def _decrypter(box: SecretBox, environment: Environment, *, reveal: bool) -> Callable[[str], str]:
    """Opens this environment's ciphertexts; without `reveal` it checks them and hides the text."""
    context = environment_context(environment.organization_id, environment.pk)

    def decrypt(ciphertext: str) -> str:
        plaintext = box.decrypt(ciphertext, context=context)
        return plaintext if reveal else evaluation.SECRET_MASK

    return decrypt


def _mask_only(ciphertext: str) -> str:
    """For drafts that belong to no environment: ciphertexts cannot be checked, only hidden."""
    return evaluation.SECRET_MASK


OpenerFor = Callable[[Environment], Opener]


def _loader(
    actor: Actor,
    box: SecretBox,
    *,
    reveal: bool,
    pins: dict[str, int] | None = None,
    used: dict[str, int] | None = None,
    opener: OpenerFor | None = None,
) -> Loader:
    """Loads imports of the actor's organization that the actor may open.

    With `pins`, each environment is loaded at the revision pinned when it was opened; every
    revision loaded is written to `used`. With `opener`, their `fn::open` calls run.
    """

    def load(name: str) -> Source | str:
        project, _, env_name = name.partition("/")
        environment = selectors.environment_named(actor.organization.pk, project, env_name)
        level = access.level_of(actor, environment) if environment is not None else None
        if environment is None or level is None:
            return "environment not found"
        if not access.allows(level, Level.OPEN):
            return "importing it needs `open` permission on it"
        number = environment.revision if pins is None else pins.get(name)
        revision = selectors.revision_numbered(environment, number) if number else None
        if revision is None:
            return "that revision of it no longer exists"
        if used is not None:
            used[name] = revision.number
        return Source(
            name,
            revision.definition,
            _decrypter(box, environment, reveal=reveal),
            opener(environment) if opener is not None else None,
        )

    return load


@sensitive_variables("text")
def environment_check(
    *,
    actor: Actor,
    text: str,
    environment: Environment | None = None,
    box: SecretBox | None = None,
) -> Evaluation:
    """Evaluate a draft definition as it would be saved, secrets hidden; saves nothing.

    Inside an environment its existing ciphertexts are checked with its key; a free-standing
    draft (the `yaml/check` endpoint) can only hide them. `fn::open` calls are checked (the
    provider must exist, the arguments must evaluate) but not made: their values are unknown.
    """
    box = box or default_box()
    if environment is not None:
        source = Source(environment.full_name, text, _decrypter(box, environment, reveal=False))
    else:
        source = Source(CHECK_NAME, text, _mask_only)
    return evaluation.evaluate(
        source, _loader(actor, box, reveal=False), providers=providers.names()
    )


# --- create, update, delete ---------------------------------------------------------------------
def environment_create(
    *,
    organization: Organization,
    project: str,
    name: str,
    actor: Actor,
    now: datetime | None = None,
) -> Environment:
    """Create an environment with revision 1, the empty definition; 409 if the name is taken."""
    _check_names(project, name)
    now = now or timezone.now()
    try:
        with transaction.atomic():
            environment = Environment.objects.create(
                organization=organization,
                project=project,
                name=name,
                revision=1,
                created=now,
                modified=now,
                created_by=actor.user,
            )
            _revision_create(environment, 1, "", actor, now)
    except IntegrityError as exc:
        raise EnvironmentConflict(f"Environment '{project}/{name}' already exists.") from exc
    return environment


def _revision_create(
    environment: Environment, number: int, definition: str, actor: Actor, now: datetime
) -> Revision:
    return Revision.objects.create(
        environment=environment,
        number=number,
        definition=definition,
        created=now,
        created_by=actor.user,
        creator_login=actor.login[:200],
        creator_name=actor.display_name[:200],
        creator_token=actor.token_label[:300],
    )


@sensitive_variables("text")
def environment_update(
    *,
    environment: Environment,
    text: str,
    actor: Actor,
    expected_revision: int | None = None,
    box: SecretBox | None = None,
    now: datetime | None = None,
) -> Revision:
    """Save a definition as the next revision, secrets sealed; 400 with diagnostics if invalid.

    Refuses with 409 when `expected_revision` (from `If-Match`/`ETag`) is not the latest.
    Every update makes a new revision, even an identical one.
    """
    box = box or default_box()
    checked = environment_check(actor=actor, text=text, environment=environment, box=box)
    if checked.diagnostics:
        raise DefinitionInvalid(checked.diagnostics)
    context = environment_context(environment.organization_id, environment.pk)
    sealed, problems = evaluation.seal(
        text, environment.full_name, lambda plaintext: box.encrypt(plaintext, context=context)
    )
    if problems:
        raise DefinitionInvalid(problems)
    now = now or timezone.now()
    with transaction.atomic():
        locked = Environment.objects.select_for_update().get(pk=environment.pk)
        if expected_revision is not None and expected_revision != locked.revision:
            raise EnvironmentConflict(
                f"The environment is at revision {locked.revision}, not {expected_revision}; "
                "read it again and reapply your change."
            )
        locked.revision += 1
        locked.modified = now
        locked.save(update_fields=["revision", "modified"])
        revision = _revision_create(locked, locked.revision, sealed, actor, now)
    environment.revision, environment.modified = locked.revision, locked.modified
    return revision


def environment_delete(*, environment: Environment) -> None:
    """Delete an environment with its revisions, tags and grants (the open record stays)."""
    environment.delete()


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
    from django.conf import settings

    box = box or default_box()
    now = now or timezone.now()
    request = request or RequestInfo()
    config = settings.TRUSTPORTAL
    endpoints = ProviderEndpoints.from_config(config)
    run = _ProviderRun(
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
        if run.issuances:
            CredentialIssuance.objects.filter(pk__in=run.issuances).update(access_event=event)
        if run.outputs:
            OpenOutputs.objects.create(
                access_event=event,
                sealed=_outputs_box(session_id).encrypt(
                    json.dumps(run.outputs), context=_outputs_context(event)
                ),
                expires=now + lifetime,
            )
    return session_id, event


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
        _decrypter(box, environment, reveal=True),
        opener(environment) if opener is not None else None,
    )
    return evaluation.evaluate(
        source,
        _loader(actor, box, reveal=True, pins=pins, used=used, opener=opener),
        providers=providers.names(),
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
        text = evaluation.unseal(
            revision.definition,
            environment.full_name,
            _decrypter(box, environment, reveal=True),
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


# --- revision tags ------------------------------------------------------------------------------
def _existing_revision(environment: Environment, number: object) -> int:
    if not isinstance(number, int) or isinstance(number, bool):
        raise EnvironmentInvalid("`revision` must be a revision number.")
    if selectors.revision_numbered(environment, number) is None:
        raise NotFound(f"Revision {number} does not exist.")
    return number


def revision_tag_create(
    *,
    environment: Environment,
    name: object,
    revision: object,
    actor: Actor,
    now: datetime | None = None,
) -> RevisionTag:
    """Name a revision; 409 if the tag exists."""
    tag_name = _check_tag_name(name)
    number = _existing_revision(environment, revision)
    now = now or timezone.now()
    try:
        with transaction.atomic():
            return RevisionTag.objects.create(
                environment=environment,
                name=tag_name,
                revision=number,
                created=now,
                modified=now,
                editor_login=actor.login[:200],
                editor_name=actor.display_name[:200],
            )
    except IntegrityError as exc:
        raise EnvironmentConflict(f"The revision tag '{tag_name}' already exists.") from exc


def revision_tag_update(
    *, tag: RevisionTag, revision: object, actor: Actor, now: datetime | None = None
) -> RevisionTag:
    """Point a tag at another revision."""
    tag.revision = _existing_revision(tag.environment, revision)
    tag.modified = now or timezone.now()
    tag.editor_login, tag.editor_name = actor.login[:200], actor.display_name[:200]
    tag.save(update_fields=["revision", "modified", "editor_login", "editor_name"])
    return tag


def revision_tag_delete(*, tag: RevisionTag) -> None:
    """Remove a revision tag (the revision stays)."""
    tag.delete()


# --- environment tags ---------------------------------------------------------------------------
def _printable(text: str) -> bool:
    """No control characters (NUL breaks PostgreSQL) and no lone surrogates (break UTF-8)."""
    return text.isprintable()


def _check_label(name: object, value: object) -> tuple[str, str]:
    if not isinstance(name, str) or not name.strip() or len(name) > 100 or not _printable(name):
        raise EnvironmentInvalid("A tag name is 1-100 printable characters.")
    if not isinstance(value, str) or len(value) > 1000 or not _printable(value):
        raise EnvironmentInvalid("A tag value is at most 1000 printable characters.")
    return name.strip(), value


def environment_tag_create(
    *,
    environment: Environment,
    name: object,
    value: object,
    actor: Actor,
    now: datetime | None = None,
) -> EnvironmentTag:
    """Add a key/value tag; 409 if the name is taken."""
    tag_name, tag_value = _check_label(name, value)
    now = now or timezone.now()
    try:
        with transaction.atomic():
            return EnvironmentTag.objects.create(
                environment=environment,
                name=tag_name,
                value=tag_value,
                created=now,
                modified=now,
                editor_login=actor.login[:200],
                editor_name=actor.display_name[:200],
            )
    except IntegrityError as exc:
        raise EnvironmentConflict(f"The tag '{tag_name}' already exists.") from exc


def environment_tag_update(
    *,
    tag: EnvironmentTag,
    current_value: object,
    new_name: object,
    new_value: object,
    actor: Actor,
    now: datetime | None = None,
) -> EnvironmentTag:
    """Rename and/or change a tag; 409 if `current_value` is given and no longer matches."""
    if current_value is not None and current_value != tag.value:
        raise EnvironmentConflict(f"The tag '{tag.name}' no longer has that value.")
    name, value = _check_label(
        new_name if new_name not in (None, "") else tag.name,
        new_value if new_value is not None else tag.value,
    )
    tag.name, tag.value = name, value
    tag.modified = now or timezone.now()
    tag.editor_login, tag.editor_name = actor.login[:200], actor.display_name[:200]
    try:
        with transaction.atomic():
            tag.save(update_fields=["name", "value", "modified", "editor_login", "editor_name"])
    except IntegrityError as exc:
        raise EnvironmentConflict(f"The tag '{name}' already exists.") from exc
    return tag


def environment_tag_delete(*, tag: EnvironmentTag) -> None:
    """Remove a key/value tag."""
    tag.delete()


# --- grants -------------------------------------------------------------------------------------
def grant_set(
    *,
    environment: Environment,
    permission: str | None,
    team: Team | None = None,
    runner: Runner | None = None,
    now: datetime | None = None,
) -> Grant | None:
    """Give a team (or a runner) a level on the environment, change it, or remove it (None)."""
    if (team is None) == (runner is None):
        raise EnvironmentInvalid("Choose a team or a runner.")
    owner = team or runner
    assert owner is not None
    if owner.organization_id != environment.organization_id:
        raise NotFound("No such team or runner in this organization.")
    if permission is not None and permission not in Level.values:
        raise EnvironmentInvalid(f"The permission is one of {', '.join(Level.values)}.")
    lookup = {"team": team} if team is not None else {"runner": runner}
    if permission is None:
        Grant.objects.filter(environment=environment, **lookup).delete()
        return None
    now = now or timezone.now()
    grant, created = Grant.objects.get_or_create(
        environment=environment,
        **lookup,
        defaults={"permission": permission, "created": now, "modified": now},
    )
    if not created and grant.permission != permission:
        grant.permission, grant.modified = permission, now
        grant.save(update_fields=["permission", "modified"])
    return grant


# --- the demo -----------------------------------------------------------------------------------
DEMO_PROJECT = "demo"
DEMO_NAME = "dev"
DEMO_DEFINITION = """\
# The example environment `make run` seeds. Values can be plain, nested, interpolated or secret.
values:
  app:
    name: demo-app
    region: eu-west-1
    replicas: 2
  endpoints:
    - https://api.example.test
    - https://status.example.test
  greeting: Hello from ${app.name} in ${app.region}
  database:
    host: db.internal.example.test
    port: 5432
    password:
      fn::secret: @PASSWORD@
  environmentVariables:
    APP_NAME: ${app.name}
    DATABASE_URL: postgres://app:${database.password}@${database.host}:${database.port}/app
"""


def environment_seed_demo(
    organization: Organization,
    by: User | None = None,
    *,
    box: SecretBox | None = None,
    now: datetime | None = None,
) -> Environment:
    """Create `demo/dev` (plain, nested, interpolated and secret values) unless it exists.

    The demo password is random per installation and sealed like any other secret.
    """
    existing = selectors.environment_named(organization.pk, DEMO_PROJECT, DEMO_NAME)
    if existing is not None:
        return existing
    login = by.get_username() if by is not None else "make-run"
    actor = Actor(
        organization=organization,
        blanket=Level.ADMIN,
        can_create=True,
        login=login,
        display_name=(by.get_full_name() if by is not None else "") or login,
        user=by,
    )
    with transaction.atomic():
        environment = environment_create(
            organization=organization, project=DEMO_PROJECT, name=DEMO_NAME, actor=actor, now=now
        )
        environment_update(
            environment=environment,
            text=DEMO_DEFINITION.replace("@PASSWORD@", f"demo-{random.token_urlsafe(12)}"),
            actor=actor,
            box=box,
            now=now,
        )
    return environment
