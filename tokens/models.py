"""Access tokens (only their SHA-256 is stored), exchange events (append-only), used `jti`s."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import connection, models, transaction
from django.db.models import Q

from kernel.appendonly import AppendOnlyModel, AppendOnlyQuerySet
from trustportal.fields import StoredJSONField
from trustportal.models import Organization, Runner, Team

# Pattern filters on long text columns use an index on the first INDEXED_PREFIX characters
# (PostgreSQL: created by migration 0004 with text_pattern_ops). A whole 1000-character value
# could exceed the 2704-byte limit of a B-tree entry and make the insert fail.
INDEXED_PREFIX = 200
EVENT_PURGE_BATCH = 10_000


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
        Organization,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="tokens",
        db_index=False,  # token_org_id leads with it
    )
    # The references that most tokens leave empty are indexed only where set (partial indexes
    # in Meta): an exchanged organization token then maintains five fewer index entries.
    team = models.ForeignKey(
        Team, on_delete=models.CASCADE, null=True, blank=True, related_name="tokens", db_index=False
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="tokens",
        db_index=False,
    )
    runner = models.ForeignKey(
        Runner,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="tokens",
        db_index=False,
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
        db_index=False,
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
        db_index=False,
    )
    revoked_reason = models.CharField(max_length=500, blank=True)
    # What produced an exchanged token (empty for tokens created by hand). A plain id without a
    # database constraint: deleting the issuer revokes its tokens (tokens/retirement.py) and
    # they keep its id for the record.
    issuer = models.ForeignKey(
        "issuers.Issuer",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="tokens",
    )
    # The token whose holder created this one through the API (tokens/lineage.py): it never
    # outlives it and is revoked with it. A plain id, kept for the record after a purge.
    parent = models.ForeignKey(
        "self",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,  # token_parent, partial
    )
    policy_id = models.UUIDField(null=True, blank=True)
    policy_version = models.PositiveIntegerField(null=True, blank=True)
    subject = models.CharField(max_length=1000, blank=True)

    class Meta:
        ordering = ["-created"]
        # Lists page by id (keyset); the subject prefix index (PostgreSQL only) is in 0004.
        indexes = [
            models.Index(fields=["organization", "-id"], name="token_org_id"),
            models.Index(fields=["expires"], name="token_expires"),
            models.Index(
                fields=["revoked_at"], name="token_revoked", condition=Q(revoked_at__isnull=False)
            ),
            models.Index(
                fields=["policy_id", "policy_version"],
                name="token_policy",
                condition=Q(policy_id__isnull=False),
            ),
            *(
                models.Index(
                    fields=[field],
                    name=f"token_{field}",
                    condition=Q(**{f"{field}__isnull": False}),
                )
                for field in ("team", "user", "runner", "created_by", "revoked_by", "parent")
            ),
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


class ExchangeEventQuerySet(AppendOnlyQuerySet["ExchangeEvent"]):
    """Exchange events through the ORM: read and insert only. The one way out is
    `ExchangeEvent.purge_before`, the retention purge; on PostgreSQL a trigger enforces the same
    rule for raw SQL (migration 0004)."""


class ExchangeEvent(AppendOnlyModel):
    """One row per exchange attempt, allowed or denied; append-only.

    References to the organization, issuer and token are plain ids without database
    constraints: deleting or purging them must never touch the audit history. Saving an
    existing row, deleting one, and queryset updates/deletes all raise AppendOnlyError.
    """

    created = models.DateTimeField()
    request_id = models.CharField(max_length=64)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    organization = models.ForeignKey(
        Organization,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,  # event_org_* indexes lead with it
        null=True,
        blank=True,
        related_name="+",
    )
    organization_login = models.CharField(max_length=200, blank=True)
    issuer = models.ForeignKey(
        "issuers.Issuer",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,  # event_org_issuer covers it
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
    claims = StoredJSONField(default=dict, blank=True)
    subject_token_sha256 = models.CharField(max_length=64, blank=True)
    requested_token_type = models.CharField(max_length=16, blank=True)
    requested_scope = models.CharField(max_length=300, blank=True)
    requested_expiration = models.PositiveIntegerField(null=True, blank=True)
    decision = models.CharField(max_length=8, choices=Decision.choices)
    error = models.CharField(max_length=40, blank=True)
    reason = models.CharField(max_length=64)
    detail = models.CharField(max_length=1000, blank=True)
    trace = StoredJSONField(default=list, blank=True)
    policy_id = models.UUIDField(null=True, blank=True)
    policy_version = models.PositiveIntegerField(null=True, blank=True)
    token = models.ForeignKey(
        AccessToken,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,  # event_token
        null=True,
        blank=True,
        related_name="+",
    )
    granted_scope = models.CharField(max_length=300, blank=True)
    granted_expires = models.DateTimeField(null=True, blank=True)

    objects = ExchangeEventQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        # Django's internal lookups use the same refusing queryset as `objects`.
        base_manager_name = "objects"
        # One index per history filter, each ending in the keyset order (-id). The subject and
        # repository pattern indexes are PostgreSQL expression indexes created in 0004.
        indexes = [
            models.Index(fields=["organization", "-id"], name="event_org_id"),
            models.Index(fields=["organization", "decision", "-id"], name="event_org_decision"),
            models.Index(fields=["organization", "reason", "-id"], name="event_org_reason"),
            models.Index(fields=["organization", "issuer", "-id"], name="event_org_issuer"),
            models.Index(
                fields=["organization", "requested_token_type", "-id"], name="event_org_type"
            ),
            models.Index(fields=["organization", "request_id", "-id"], name="event_org_request"),
            # Covers the dashboard's per-day and deny-reason counts (index-only on PostgreSQL).
            models.Index(
                fields=["organization", "created"],
                include=["decision", "reason"],
                name="event_org_created",
            ),
            models.Index(fields=["token"], name="event_token"),
            models.Index(fields=["created"], name="event_created"),
        ]

    def __str__(self) -> str:
        return f"{self.created:%Y-%m-%d %H:%M:%S} {self.decision} {self.reason} {self.sub[:60]}"

    @classmethod
    def purge_before(cls, cutoff: datetime, *, batch_size: int = EVENT_PURGE_BATCH) -> int:
        """Delete events created before `cutoff` (the retention purge), in short transactions.

        Each batch of at most `batch_size` rows is its own transaction, which sets the
        transaction-local flag the PostgreSQL trigger requires for a DELETE. Nothing else in
        the code base removes events.
        """
        total = 0
        while True:
            with transaction.atomic():
                if connection.vendor == "postgresql":
                    with connection.cursor() as cursor:
                        cursor.execute("SET LOCAL trustportal.purge = 'on'")
                ids = list(
                    cls.objects.filter(created__lt=cutoff).values_list("pk", flat=True)[:batch_size]
                )
                if not ids:
                    return total
                total += cls.objects.filter(pk__in=ids)._delete_rows()


class UsedJti(models.Model):
    """A consumed `jti` of a single-use issuer: the durable replay record (SHA-256 of the jti).

    Claimed by `exchange.replay.claim_jti` in one INSERT … ON CONFLICT; purged after `expires`.
    """

    issuer_id = models.UUIDField()
    jti_sha256 = models.CharField(max_length=64)
    expires = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["issuer_id", "jti_sha256"], name="used_jti_hash_unique")
        ]
        indexes = [models.Index(fields=["expires"], name="used_jti_expires")]

    def __str__(self) -> str:
        return f"{self.issuer_id}:{self.jti_sha256[:12]}…"


class RateLimitedWindow(models.Model):
    """Rate-limited exchange attempts of one bucket (client address or subject) in one window.

    The first refused attempt of the window is an `ExchangeEvent` like any other; this row
    counts all of them (`attempts`), so a flood writes one row per bucket and window, not one
    event per attempt. Purged with the events (same retention).
    """

    bucket_sha256 = models.CharField(max_length=64)
    bucket_kind = models.CharField(max_length=8)  # "ip" or "sub"
    window_start = models.DateTimeField()
    organization_id = models.BigIntegerField(null=True, blank=True)
    first_request_id = models.CharField(max_length=64)
    attempts = models.PositiveIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["bucket_sha256", "window_start"], name="rate_limited_window_unique"
            )
        ]
        indexes = [
            models.Index(fields=["organization_id", "-window_start"], name="rate_limited_org"),
            models.Index(fields=["window_start"], name="rate_limited_window"),
        ]

    def __str__(self) -> str:
        return f"{self.bucket_kind} {self.window_start:%Y-%m-%d %H:%M}: {self.attempts} attempts"
