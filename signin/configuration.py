"""Writes: an organization's sign-in configuration (providers, group mappings, the sign-in policy).

Each save or delete records one audit record in its own transaction; the client secret shows in
the record only as "[secret]" when it changed. Sign-ins themselves go to the sign-in log
(`signin.models.SignInEvent`), not here.
"""

from __future__ import annotations

from typing import Any

from django.db import models, transaction

from audit.diff import snapshot
from audit.services import audit_record
from kernel.secretbox import SecretBox
from signin.models import GroupMapping, IdentityProvider, OrganizationSignInPolicy
from signin.services import provider_set_secret

PROVIDER_FIELDS = (
    "organization",
    "name",
    "issuer",
    "client_id",
    "client_secret_sealed",
    "scopes",
    "groups_claim",
    "session_lifetime",
    "enabled",
)
MAPPING_FIELDS = ("provider", "group", "organization", "role", "team")
POLICY_FIELDS = ("require_sso", "break_glass_user", "require_admin_mfa")
# The sealed secret differs whenever the secret changes: shown as "[secret]", never stored.
SECRET_FIELDS = frozenset({"client_secret_sealed"})


def _stored(instance: models.Model, fields: tuple[str, ...]) -> dict[str, Any] | None:
    """The saved state of `instance` (None when it is new), read in the caller's transaction."""
    if instance.pk is None:
        return None
    saved = type(instance)._default_manager.filter(pk=instance.pk).first()
    return snapshot(saved, fields) if saved is not None else None


def _save(
    instance: models.Model, *, kind: str, label: str, organization: Any, fields: tuple[str, ...]
) -> None:
    before = _stored(instance, fields)
    instance.save()
    after = snapshot(instance, fields)
    if before == after:
        return
    verb = "created" if before is None else "updated"
    audit_record(
        event=f"{kind}-{verb}",
        description=f"{label} {instance} was {verb}.",
        organization=organization,
        target=instance,
        object_type=kind,
        before=before,
        after=after,
        secret_fields=SECRET_FIELDS,
    )


def _delete(
    instance: models.Model, *, kind: str, label: str, organization: Any, fields: tuple[str, ...]
) -> None:
    audit_record(
        event=f"{kind}-deleted",
        description=f"{label} {instance} was deleted.",
        organization=organization,
        target=instance,
        object_type=kind,
        before=snapshot(instance, fields),
        secret_fields=SECRET_FIELDS,
    )
    instance.delete()


@transaction.atomic
def provider_save(
    *, provider: IdentityProvider, client_secret: str = "", box: SecretBox | None = None
) -> IdentityProvider:
    """Save a provider's settings, sealing `client_secret` when one is given (empty keeps it)."""
    if client_secret:
        provider_set_secret(provider, client_secret, box=box)
    _save(
        provider,
        kind="signin-provider",
        label="The sign-in provider",
        organization=provider.organization,
        fields=PROVIDER_FIELDS,
    )
    return provider


@transaction.atomic
def provider_delete(*, provider: IdentityProvider) -> None:
    """Delete a provider (its mappings and linked identities go with it)."""
    _delete(
        provider,
        kind="signin-provider",
        label="The sign-in provider",
        organization=provider.organization,
        fields=PROVIDER_FIELDS,
    )


@transaction.atomic
def mapping_save(*, mapping: GroupMapping) -> GroupMapping:
    """Save what a group gives in an organization (a role, a team)."""
    _save(
        mapping,
        kind="signin-mapping",
        label="The group mapping",
        organization=mapping.organization,
        fields=MAPPING_FIELDS,
    )
    return mapping


@transaction.atomic
def mapping_delete(*, mapping: GroupMapping) -> None:
    """Delete a group mapping; roles it gave change at each person's next sign-in."""
    _delete(
        mapping,
        kind="signin-mapping",
        label="The group mapping",
        organization=mapping.organization,
        fields=MAPPING_FIELDS,
    )


@transaction.atomic
def sign_in_policy_save(*, policy: OrganizationSignInPolicy) -> OrganizationSignInPolicy:
    """Save an organization's sign-in policy (SSO required, break-glass account, admin MFA)."""
    _save(
        policy,
        kind="signin-policy",
        label="The sign-in policy",
        organization=policy.organization,
        fields=POLICY_FIELDS,
    )
    return policy


@transaction.atomic
def sign_in_policy_delete(*, policy: OrganizationSignInPolicy) -> None:
    """Delete an organization's sign-in policy (back to the defaults)."""
    _delete(
        policy,
        kind="signin-policy",
        label="The sign-in policy",
        organization=policy.organization,
        fields=POLICY_FIELDS,
    )
