"""Identity providers, their group mappings, linked identities, org sign-in rules, the log."""

from __future__ import annotations

import uuid

from django.core.exceptions import ValidationError
from django.db import models

from trustportal.models import Organization, Role, Team, User

DEFAULT_SESSION_LIFETIME = 8 * 60 * 60


class IdentityProvider(models.Model):
    """An OpenID Provider people sign in with: one organization's, or the whole portal's."""

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    organization = models.ForeignKey(
        Organization,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="identity_providers",
        help_text="Empty: a provider for the whole portal (superusers only).",
    )
    name = models.CharField(max_length=100, help_text='Shown as "Sign in with <name>".')
    issuer = models.CharField(
        max_length=2048, help_text="The issuer URL; its discovery document must name it exactly."
    )
    client_id = models.CharField(max_length=255)
    # AES-GCM under TRUSTPORTAL_SECRETS_KEY, bound to this provider (signin/services.py).
    client_secret_sealed = models.TextField(blank=True, editable=False)
    scopes = models.CharField(max_length=300, default="openid email profile")
    groups_claim = models.CharField(
        max_length=100, default="groups", help_text="The claim that lists the person's groups."
    )
    session_lifetime = models.PositiveIntegerField(
        default=DEFAULT_SESSION_LIFETIME, help_text="Seconds a portal session lasts after sign-in."
    )
    enabled = models.BooleanField(default=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "issuer", "client_id"], name="identity_provider_unique"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if "openid" not in self.scopes.split():
            raise ValidationError({"scopes": "The scopes must include openid."})
        if not 300 <= self.session_lifetime <= 30 * 24 * 60 * 60:
            raise ValidationError(
                {"session_lifetime": "Between 300 seconds and 30 days, in seconds."}
            )


class GroupMapping(models.Model):
    """A group of the provider's groups claim gives a role in an organization and/or a team."""

    provider = models.ForeignKey(
        IdentityProvider, on_delete=models.CASCADE, related_name="mappings"
    )
    group = models.CharField(max_length=255)
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="group_mappings"
    )
    role = models.CharField(max_length=16, choices=Role.choices, blank=True)
    team = models.ForeignKey(
        Team, on_delete=models.CASCADE, null=True, blank=True, related_name="group_mappings"
    )

    class Meta:
        ordering = ["provider", "group"]

    def __str__(self) -> str:
        team = f" team {self.team}" if self.team else ""
        return f"{self.group} → {self.organization} {self.role or '-'}{team}"

    def clean(self) -> None:
        if not self.role and self.team_id is None:
            raise ValidationError("A mapping gives a role, a team, or both.")
        provider = getattr(self, "provider", None)
        if (
            provider is not None
            and provider.organization_id is not None
            and self.organization_id != provider.organization_id
        ):
            raise ValidationError("An organization's provider maps only to that organization.")
        if self.team is not None and self.team.organization_id != self.organization_id:
            raise ValidationError("The team belongs to another organization.")


class ExternalIdentity(models.Model):
    """A person at a provider, by the provider's stable `sub`: the only key sign-in matches."""

    provider = models.ForeignKey(
        IdentityProvider, on_delete=models.CASCADE, related_name="identities"
    )
    subject = models.CharField(max_length=255)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="external_identities")
    created = models.DateTimeField(auto_now_add=True)
    last_sign_in = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "subject"], name="external_identity_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider}:{self.subject}"


class OrganizationSignInPolicy(models.Model):
    """How an organization's members may sign in."""

    organization = models.OneToOneField(
        Organization, on_delete=models.CASCADE, related_name="sign_in_policy"
    )
    require_sso = models.BooleanField(
        default=False, help_text="Refuse password sign-in to members (but the break-glass account)."
    )
    break_glass_user = models.ForeignKey(
        User,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The one member who may still sign in with a password (and second factor).",
    )
    require_admin_mfa = models.BooleanField(
        default=False, help_text="Admins who sign in with a password need a second factor."
    )

    class Meta:
        verbose_name = "organization sign-in policy"
        verbose_name_plural = "organization sign-in policies"

    def __str__(self) -> str:
        return f"sign-in policy of {self.organization}"


class SignInEvent(models.Model):
    """The security log of sign-ins (also written to the `trustportal.security` logger)."""

    class Kind(models.TextChoices):
        SIGNED_IN = "signed_in", "Signed in"
        REFUSED = "refused", "Sign-in refused"
        ROLE_CHANGED = "role_changed", "Role changed by group mapping"
        MFA_ENROLLED = "mfa_enrolled", "Second factor enrolled"
        MFA_VERIFIED = "mfa_verified", "Second factor verified"
        MFA_FAILED = "mfa_failed", "Second factor refused"

    created = models.DateTimeField(auto_now_add=True, db_index=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    method = models.CharField(max_length=20, blank=True)  # password, oidc, totp, recovery
    user = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    username = models.CharField(max_length=150, blank=True)
    provider = models.ForeignKey(
        IdentityProvider, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    organization = models.ForeignKey(
        Organization, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    reason = models.CharField(max_length=64, blank=True)
    detail = models.CharField(max_length=500, blank=True)
    address = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-pk"]

    def __str__(self) -> str:
        return f"{self.created:%Y-%m-%d %H:%M:%S} {self.kind} {self.username}"
