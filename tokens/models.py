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
