"""Trust policies: one per issuer, ordered definitions, every version kept."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from issuers.models import Issuer
from trustportal.models import Organization


class AuthPolicy(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="policies"
    )
    issuer = models.OneToOneField(Issuer, on_delete=models.CASCADE, related_name="policy")
    version = models.PositiveIntegerField(default=1)
    definitions = models.JSONField(default=list, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    modified = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "auth policies"

    def __str__(self) -> str:
        return f"policy of {self.issuer.name} v{self.version}"


class AuthPolicyVersion(models.Model):
    """One saved version of a policy: who, when, what, and why (e.g. a rollback)."""

    policy = models.ForeignKey(AuthPolicy, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    definitions = models.JSONField(default=list)
    created = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_by_token = models.CharField(max_length=200, blank=True)
    note = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["policy", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["policy", "version"], name="policy_version_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.policy_id} v{self.version}"
