"""Access tokens: only their SHA-256 is stored."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from trustportal.models import Organization, Runner, Team


class TokenType(models.TextChoices):
    ORGANIZATION = "organization", "Organization"
    TEAM = "team", "Team"
    PERSONAL = "personal", "Personal"
    RUNNER = "runner", "Runner"


class Permission(models.TextChoices):
    ADMIN = "admin", "Admin"
    STANDARD = "standard", "Standard"


class AccessToken(models.Model):
    token_type = models.CharField(max_length=16, choices=TokenType.choices)
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, null=True, blank=True, related_name="tokens"
    )
    team = models.ForeignKey(
        Team, on_delete=models.CASCADE, null=True, blank=True, related_name="tokens"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="tokens",
    )
    runner = models.ForeignKey(
        Runner, on_delete=models.CASCADE, null=True, blank=True, related_name="tokens"
    )
    # Organization tokens: "admin", "standard" or a custom role id. Empty for the other types.
    permission = models.CharField(max_length=100, blank=True)
    name = models.CharField(max_length=200, blank=True)
    description = models.CharField(max_length=1000, blank=True)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(max_length=16, editable=False)
    created = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    expires = models.DateTimeField(null=True, blank=True)
    last_used = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    revoked_reason = models.CharField(max_length=500, blank=True)
    # What produced an exchanged token (empty for tokens created by hand).
    issuer = models.ForeignKey(
        "issuers.Issuer", on_delete=models.SET_NULL, null=True, blank=True, related_name="tokens"
    )
    policy_id = models.UUIDField(null=True, blank=True)
    policy_version = models.PositiveIntegerField(null=True, blank=True)
    subject = models.CharField(max_length=1000, blank=True)

    class Meta:
        ordering = ["-created"]
        indexes = [
            models.Index(fields=["organization", "-created"], name="token_org_created"),
            models.Index(fields=["expires"], name="token_expires"),
        ]
        constraints = [
            models.CheckConstraint(
                name="token_subject_matches_type",
                condition=(
                    Q(token_type="organization", organization__isnull=False)
                    | Q(token_type="team", team__isnull=False, organization__isnull=False)
                    | Q(token_type="personal", user__isnull=False)
                    | Q(token_type="runner", runner__isnull=False, organization__isnull=False)
                ),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.token_type}{': ' + self.name if self.name else ''})"


class Decision(models.TextChoices):
    ALLOW = "allow", "Allowed"
    DENY = "deny", "Denied"


class ExchangeEvent(models.Model):
    """One row per exchange attempt, allowed or denied; append-only.

    References to the organization, issuer and token are plain ids without database
    constraints: deleting or purging them must never touch the audit history.
    """

    created = models.DateTimeField()
    request_id = models.CharField(max_length=64)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    organization = models.ForeignKey(
        Organization,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="+",
    )
    organization_login = models.CharField(max_length=200, blank=True)
    issuer = models.ForeignKey(
        "issuers.Issuer",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="+",
    )
    iss = models.CharField(max_length=1000, blank=True)
    sub = models.CharField(max_length=1000, blank=True)
    aud = models.CharField(max_length=1000, blank=True)
    jti = models.CharField(max_length=256, blank=True)
    kid = models.CharField(max_length=200, blank=True)
    alg = models.CharField(max_length=20, blank=True)
    claims = models.JSONField(default=dict, blank=True)
    subject_token_sha256 = models.CharField(max_length=64, blank=True)
    requested_token_type = models.CharField(max_length=16, blank=True)
    requested_scope = models.CharField(max_length=300, blank=True)
    requested_expiration = models.PositiveIntegerField(null=True, blank=True)
    decision = models.CharField(max_length=8, choices=Decision.choices)
    error = models.CharField(max_length=40, blank=True)
    reason = models.CharField(max_length=64)
    detail = models.CharField(max_length=1000, blank=True)
    trace = models.JSONField(default=list, blank=True)
    policy_id = models.UUIDField(null=True, blank=True)
    policy_version = models.PositiveIntegerField(null=True, blank=True)
    token = models.ForeignKey(
        AccessToken,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="+",
    )
    granted_scope = models.CharField(max_length=300, blank=True)
    granted_expires = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["organization", "-id"], name="event_org_id"),
            models.Index(fields=["organization", "decision", "-id"], name="event_org_decision"),
            models.Index(fields=["organization", "reason", "-id"], name="event_org_reason"),
            models.Index(fields=["organization", "issuer", "-id"], name="event_org_issuer"),
            models.Index(fields=["organization", "sub"], name="event_org_sub"),
            models.Index(fields=["organization", "created"], name="event_org_created"),
            models.Index(fields=["token"], name="event_token"),
            models.Index(fields=["created"], name="event_created"),
        ]

    def __str__(self) -> str:
        return f"{self.created:%Y-%m-%d %H:%M:%S} {self.decision} {self.reason} {self.sub[:60]}"


class UsedJti(models.Model):
    """A consumed `jti` of a single-use issuer (the embedded default's replay store)."""

    issuer_id = models.UUIDField()
    jti = models.CharField(max_length=256)
    expires = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["issuer_id", "jti"], name="used_jti_unique")]
        indexes = [models.Index(fields=["expires"], name="used_jti_expires")]

    def __str__(self) -> str:
        return f"{self.issuer_id}:{self.jti}"
