"""Environments: definitions with revisions, tags, per-team permissions and a record of opens.

Definitions are stored *sealed*: every `fn::secret` holds only AES-GCM ciphertext
(`kernel/secretbox.py`), so no column ever holds a secret's plaintext.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q

from trustportal.models import Organization, Runner, Team


class Level(models.TextChoices):
    """Permission on an environment; each level includes the ones before it."""

    READ = "read", "Read (definition, secrets as ciphertext)"
    OPEN = "open", "Open (resolved values, secrets included)"
    WRITE = "write", "Write (edit the definition and tags)"
    ADMIN = "admin", "Admin (delete, decrypt, permissions)"


class Environment(models.Model):
    """A named definition of configuration and secrets: organization / project / name."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="environments"
    )
    project = models.CharField(max_length=100)
    name = models.CharField(max_length=100)
    # The latest revision's number; revision 1 is the empty definition made on creation.
    revision = models.PositiveIntegerField(default=1)
    created = models.DateTimeField()
    modified = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    # The token that created it (its creator holds admin on it, as in Pulumi). DO_NOTHING: the
    # token purge deletes expired tokens in plain batched DELETEs, and a purged token's id never
    # comes back (PostgreSQL sequences do not reuse ids).
    created_by_token = models.ForeignKey(
        "tokens.AccessToken",
        on_delete=models.DO_NOTHING,
        null=True,
        blank=True,
        related_name="+",
        db_constraint=False,
    )

    class Meta:
        ordering = ["project", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "project", "name"], name="environment_unique_name"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.organization.login}/{self.project}/{self.name}"

    @property
    def full_name(self) -> str:
        """`project/name`, as imports and diagnostics name it."""
        return f"{self.project}/{self.name}"


class Revision(models.Model):
    """One saved definition; numbers start at 1 and grow by one on every update."""

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="revisions")
    number = models.PositiveIntegerField()
    definition = models.TextField(blank=True)  # sealed YAML: secrets as ciphertext only
    created = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    creator_login = models.CharField(max_length=200, blank=True)
    creator_name = models.CharField(max_length=200, blank=True)
    creator_token = models.CharField(max_length=300, blank=True)  # "tpo_ab12… (name)"

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["environment", "number"], name="revision_unique_number"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.environment} r{self.number}"


class RevisionTag(models.Model):
    """A name for a revision (`stable` → 4); `latest` is implicit and never stored."""

    environment = models.ForeignKey(
        Environment, on_delete=models.CASCADE, related_name="revision_tags"
    )
    name = models.CharField(max_length=100)
    revision = models.PositiveIntegerField()
    created = models.DateTimeField()
    modified = models.DateTimeField()
    editor_login = models.CharField(max_length=200, blank=True)
    editor_name = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["environment", "name"], name="revision_tag_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.name} → r{self.revision}"


class EnvironmentTag(models.Model):
    """A key/value label on an environment (`owner: platform`)."""

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="tags")
    name = models.CharField(max_length=100)
    value = models.CharField(max_length=1000, blank=True)
    created = models.DateTimeField()
    modified = models.DateTimeField()
    editor_login = models.CharField(max_length=200, blank=True)
    editor_name = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["environment", "name"], name="environment_tag_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.name}={self.value}"


class Grant(models.Model):
    """A team's (or a runner's) permission on one environment.

    Runner grants are capped at `open` when evaluated: runners never edit (docs/environments.md).
    """

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="grants")
    team = models.ForeignKey(
        Team, on_delete=models.CASCADE, null=True, blank=True, related_name="environment_grants"
    )
    runner = models.ForeignKey(
        Runner, on_delete=models.CASCADE, null=True, blank=True, related_name="environment_grants"
    )
    permission = models.CharField(max_length=8, choices=Level.choices)
    created = models.DateTimeField()
    modified = models.DateTimeField()

    class Meta:
        ordering = ["team__name", "runner__name"]
        constraints = [
            models.CheckConstraint(
                name="grant_team_xor_runner",
                condition=(
                    Q(team__isnull=False, runner__isnull=True)
                    | Q(team__isnull=True, runner__isnull=False)
                ),
            ),
            models.UniqueConstraint(
                fields=["environment", "team"],
                condition=Q(team__isnull=False),
                name="grant_unique_team",
            ),
            models.UniqueConstraint(
                fields=["environment", "runner"],
                condition=Q(runner__isnull=False),
                name="grant_unique_runner",
            ),
        ]

    def __str__(self) -> str:
        who = f"team {self.team}" if self.team_id else f"runner {self.runner}"
        return f"{who}: {self.permission}"


class AccessKind(models.TextChoices):
    """What an access record is about."""

    OPEN = "open", "Opened (values resolved)"
    DECRYPT = "decrypt", "Decrypted definition"


def _audit_reference(to: type[models.Model] | str) -> models.ForeignKey[Any, Any]:
    """A reference kept by an audit row: a plain id, no database constraint, no reverse name.

    Deleting what it points at (an environment, a token, an event) never touches the history.
    """
    return models.ForeignKey(
        to,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="+",
    )


class AccessEvent(models.Model):
    """One row per open (or decrypt) of an environment: who, with which token, from where.

    Append-only audit; references are plain ids without database constraints so that deleting
    an environment, a token or an exchange event never touches this history.
    """

    kind = models.CharField(max_length=8, choices=AccessKind.choices)
    created = models.DateTimeField()
    organization = models.ForeignKey(
        Organization,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    environment = _audit_reference(Environment)
    project = models.CharField(max_length=100)
    name = models.CharField(max_length=100)
    revision = models.PositiveIntegerField()
    # Revisions of every imported environment at open time, so reads see the same values.
    imports = models.JSONField(default=dict, blank=True)
    # SHA-256 of the open session id (the id itself goes only to the caller).
    session_hash = models.CharField(max_length=64, null=True, blank=True, unique=True)
    expires = models.DateTimeField(null=True, blank=True)
    token = _audit_reference("tokens.AccessToken")
    token_type = models.CharField(max_length=16, blank=True)
    token_label = models.CharField(max_length=300, blank=True)
    exchange_event = _audit_reference("tokens.ExchangeEvent")
    user = _audit_reference(settings.AUTH_USER_MODEL)
    login = models.CharField(max_length=200, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["environment", "-id"], name="access_env_id"),
            models.Index(fields=["organization", "-id"], name="access_org_id"),
        ]

    def __str__(self) -> str:
        return (
            f"{self.created:%Y-%m-%d %H:%M:%S} {self.kind} {self.project}/{self.name} {self.login}"
        )


class OpenOutputs(models.Model):
    """What `fn::open` providers returned for one open session, sealed, until it expires.

    Sealed under a key derived from the session id, which the portal never stores (only its
    SHA-256): without the id the caller holds, this row is noise. Deleted when the session
    expires (`environments.tasks.purge_open_outputs`).
    """

    access_event = models.OneToOneField(
        AccessEvent, on_delete=models.CASCADE, db_constraint=False, related_name="+"
    )
    sealed = models.TextField()
    expires = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"outputs of open #{self.access_event_id} until {self.expires:%Y-%m-%d %H:%M}"


# --- the portal as an OIDC issuer ---------------------------------------------------------------
class KeyState(models.TextChoices):
    """Where a signing key is in its life; see `environments.signing` for the rotation."""

    NEXT = "next", "Next (published, not signing yet)"
    CURRENT = "current", "Current (signing)"
    PREVIOUS = "previous", "Previous (published until its tokens expire)"
    RETIRED = "retired", "Retired (not published, private key erased)"


class SigningKey(models.Model):
    """An RS256 key of the portal's OIDC issuer; the private key is kept only sealed."""

    kid = models.CharField(max_length=64, unique=True)
    state = models.CharField(max_length=8, choices=KeyState.choices)
    public_jwk = models.JSONField()
    # PKCS#8 PEM sealed with AES-256-GCM (environments.signing); emptied on retirement.
    private_key = models.TextField(blank=True)
    created = models.DateTimeField()  # published in the JWKS from this moment
    activated = models.DateTimeField(null=True, blank=True)  # began signing
    deactivated = models.DateTimeField(null=True, blank=True)  # stopped signing
    retired = models.DateTimeField(null=True, blank=True)  # left the JWKS

    class Meta:
        ordering = ["-created"]
        constraints = [
            models.UniqueConstraint(
                fields=["state"], condition=Q(state="current"), name="signing_key_one_current"
            ),
            models.UniqueConstraint(
                fields=["state"], condition=Q(state="next"), name="signing_key_one_next"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kid} ({self.state})"


class Outcome(models.TextChoices):
    OK = "ok", "Issued"
    FAILED = "failed", "Failed"


class CredentialIssuance(models.Model):
    """One `fn::open` provider call during an open: who, where, what was assumed, until when.

    Append-only audit like `AccessEvent`: plain ids without database constraints, so deleting
    an environment or a token never touches it. Never holds a credential.
    """

    created = models.DateTimeField()
    organization = models.ForeignKey(
        Organization, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    # The environment whose definition holds the fn::open (an import of the opened one, maybe).
    environment = _audit_reference(Environment)
    project = models.CharField(max_length=100)
    name = models.CharField(max_length=100)
    root_environment = models.CharField(max_length=201)  # `project/name` that was opened
    path = models.CharField(max_length=500, blank=True)
    provider = models.CharField(max_length=64)
    role = models.CharField(max_length=500, blank=True)
    audience = models.CharField(max_length=500, blank=True)
    subject = models.CharField(max_length=1000, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=8, choices=Outcome.choices)
    reason = models.CharField(max_length=64, blank=True)
    message = models.CharField(max_length=500, blank=True)
    details = models.JSONField(default=dict, blank=True)
    login = models.CharField(max_length=200, blank=True)
    token = _audit_reference("tokens.AccessToken")
    token_label = models.CharField(max_length=300, blank=True)
    exchange_event = _audit_reference("tokens.ExchangeEvent")
    access_event = _audit_reference(AccessEvent)
    request_id = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["organization", "-id"], name="issuance_org_id"),
            models.Index(fields=["organization", "provider", "-id"], name="issuance_provider_id"),
            models.Index(fields=["environment", "-id"], name="issuance_env_id"),
        ]

    def __str__(self) -> str:
        return (
            f"{self.created:%Y-%m-%d %H:%M:%S} {self.provider} {self.project}/{self.name} "
            f"{self.outcome}"
        )


class DefaultPermission(models.TextChoices):
    """What members and standard organization tokens hold on every environment (Pulumi's)."""

    NONE = "none", "None (only their teams' grants)"
    READ = "read", "Read"
    OPEN = "open", "Open"
    WRITE = "write", "Write"
    ADMIN = "admin", "Admin"


class EnvironmentSettings(models.Model):
    """An organization's environment settings; an organization without a row has the defaults."""

    organization = models.OneToOneField(
        Organization, on_delete=models.CASCADE, related_name="environment_settings"
    )
    default_permission = models.CharField(
        max_length=8, choices=DefaultPermission.choices, default=DefaultPermission.WRITE
    )
    members_can_create = models.BooleanField(default=True)
    modified = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.organization.login}: {self.default_permission}"


class Scope(models.TextChoices):
    """What an organization role grants on the environments it names."""

    READ = "environment:read", "environment:read"
    OPEN = "environment:open", "environment:open"
    WRITE = "environment:write", "environment:write"
    DELETE = "environment:delete", "environment:delete"
    ADMIN = "environment:admin", "environment:admin"


class EnvironmentRole(models.Model):
    """A custom role: organization tokens minted under its `roleID` get exactly its scopes."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="environment_roles"
    )
    role_id = models.CharField(max_length=100)  # the `roleID` of trust policies
    name = models.CharField(max_length=200)
    created = models.DateTimeField()
    modified = models.DateTimeField()

    class Meta:
        ordering = ["role_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "role_id"], name="environment_role_unique_id"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.organization.login}/{self.role_id}"


class RoleScope(models.Model):
    """One scope of a role, on every environment, a project's, or one environment's."""

    role = models.ForeignKey(EnvironmentRole, on_delete=models.CASCADE, related_name="scopes")
    scope = models.CharField(max_length=32, choices=Scope.choices)
    project = models.CharField(max_length=100, blank=True)  # blank: every project
    environment = models.CharField(max_length=100, blank=True)  # blank: every environment

    class Meta:
        ordering = ["scope", "project", "environment"]

    def __str__(self) -> str:
        where = "/".join(p or "*" for p in (self.project, self.environment))
        return f"{self.scope} on {where}"
