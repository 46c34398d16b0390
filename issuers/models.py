"""Registered OIDC issuers (per organization), their cached signing keys and fetch history."""

from __future__ import annotations

import uuid

from django.db import models

from trustportal.models import Organization

DEFAULT_ALGORITHMS = [
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "EdDSA",
]
DEFAULT_MAX_EXPIRATION = 7200
MAX_EXPIRATION_LIMIT = 90_000


def default_algorithms() -> list[str]:
    return list(DEFAULT_ALGORITHMS)


class Issuer(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="issuers")
    name = models.CharField(max_length=200)
    url = models.CharField(max_length=2048, help_text="As entered at registration; immutable.")
    issuer = models.CharField(
        max_length=2048, help_text="The `issuer` from discovery; `iss` must equal it exactly."
    )
    jwks_uri = models.CharField(max_length=2048, blank=True)
    # Pinned by an admin: every fetch must present one of them (on top of CA verification).
    thumbprints = models.JSONField(default=list, blank=True)
    # Served when last fetched (discovery and JWKS hosts); recorded and shown, never enforced.
    observed_thumbprints = models.JSONField(default=list, blank=True)
    static_jwks = models.JSONField(null=True, blank=True)
    max_expiration = models.PositiveIntegerField(default=DEFAULT_MAX_EXPIRATION)
    audiences = models.JSONField(default=list, blank=True)
    algorithms = models.JSONField(default=default_algorithms)
    single_use = models.BooleanField(default=False)
    enabled = models.BooleanField(default=True)
    created = models.DateTimeField(auto_now_add=True)
    modified = models.DateTimeField(auto_now=True)
    last_used = models.DateTimeField(null=True, blank=True)

    # Key-fetch health.
    keys_version = models.PositiveIntegerField(default=0)
    keys_changed_at = models.DateTimeField(null=True, blank=True)
    last_fetch_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=1000, blank=True)
    last_error_reason = models.CharField(max_length=64, blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    jwks_etag = models.CharField(max_length=512, blank=True)
    refresh_interval = models.PositiveIntegerField(default=900)
    next_refresh_at = models.DateTimeField(null=True, blank=True)
    # The single-flight gate for on-demand refreshes (unknown kid): one per issuer per 60 s.
    on_demand_refresh_at = models.DateTimeField(null=True, blank=True)

    # The TLS certificate served by the discovery/JWKS host when last fetched.
    cert_sha256 = models.CharField(max_length=64, blank=True)
    cert_subject = models.CharField(max_length=1000, blank=True)
    cert_issuer = models.CharField(max_length=1000, blank=True)
    cert_not_after = models.DateTimeField(null=True, blank=True)
    cert_changed_at = models.DateTimeField(null=True, blank=True)
    cert_previous_sha256 = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["organization__login", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "issuer"], name="issuer_unique_per_org"
            ),
            models.UniqueConstraint(fields=["organization", "name"], name="issuer_unique_name"),
        ]
        indexes = [models.Index(fields=["next_refresh_at"], name="issuer_next_refresh")]

    def __str__(self) -> str:
        return f"{self.name} ({self.issuer})"

    @property
    def is_static(self) -> bool:
        return self.static_jwks is not None


class IssuerKey(models.Model):
    """One public key of an issuer's JWKS; inactive once it disappears from the issuer's set."""

    issuer = models.ForeignKey(Issuer, on_delete=models.CASCADE, related_name="keys")
    kid = models.CharField(max_length=128)
    kty = models.CharField(max_length=8)
    alg = models.CharField(max_length=16, blank=True)
    size = models.PositiveIntegerField(help_text="Key size in bits.")
    jwk = models.JSONField()
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    removed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["issuer", "-first_seen"]
        constraints = [
            models.UniqueConstraint(fields=["issuer", "kid"], name="issuer_key_unique_kid"),
        ]

    def __str__(self) -> str:
        return f"{self.kid} ({self.kty} {self.size}{', removed' if self.removed_at else ''})"


class KeyFetch(models.Model):
    """One attempt to fetch an issuer's keys (history shown on the issuer page)."""

    issuer = models.ForeignKey(Issuer, on_delete=models.CASCADE, related_name="fetches")
    at = models.DateTimeField()
    trigger = models.CharField(max_length=16)  # register, schedule, on_demand, manual
    ok = models.BooleanField()
    status = models.PositiveIntegerField(null=True, blank=True)
    reason = models.CharField(max_length=64, blank=True)
    message = models.CharField(max_length=1000, blank=True)
    keys_added = models.PositiveIntegerField(default=0)
    keys_removed = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-at"]
        indexes = [models.Index(fields=["issuer", "-at"], name="keyfetch_issuer_at")]

    def __str__(self) -> str:
        return f"{self.issuer_id} {self.at:%Y-%m-%d %H:%M} {'ok' if self.ok else self.reason}"
