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


class PolicyDraft(models.Model):
    """The issuer's pending change, shared by its organization's admins.

    Editor changes stage here and go live together, as one version, when an admin publishes;
    nothing here is ever evaluated by an exchange. The row outlives each draft: `revision`
    counts every staged edit, publish and discard, so a page showing an older state is told
    apart from the current one even after the draft was closed and a new one opened.
    """

    policy = models.OneToOneField(AuthPolicy, on_delete=models.CASCADE, related_name="draft")
    revision = models.PositiveIntegerField(default=0)
    # The live version the open draft started from; None while no draft is open.
    base_version = models.PositiveIntegerField(null=True, blank=True)
    definitions = models.JSONField(default=list, blank=True)
    # What each staged edit did, in order: the note of the version it is published as.
    changes = models.JSONField(default=list, blank=True)
    started = models.DateTimeField(null=True, blank=True)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    modified = models.DateTimeField(null=True, blank=True)
    modified_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    def __str__(self) -> str:
        state = f"from v{self.base_version}" if self.base_version is not None else "closed"
        return f"draft of {self.policy_id} ({state}, revision {self.revision})"
