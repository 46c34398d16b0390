"""Writes: provider secrets, just-in-time accounts and the roles the group mapping gives."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.context import current_actor
from audit.services import audit_record
from kernel.secretbox import SecretBox, default_box
from signin.errors import SignInRefused
from signin.models import ExternalIdentity, GroupMapping, IdentityProvider
from trustportal.models import Membership, Organization, Role, Team, User
from trustportal.services import membership_set

# Higher wins when several groups map to roles in one organization.
ROLE_RANK = {Role.MEMBER: 1, Role.AUDITOR: 2, Role.ADMIN: 3}
_USERNAME_CHARS = re.compile(r"[^A-Za-z0-9@.+_-]+")


def secret_context(provider: IdentityProvider) -> bytes:
    """AES-GCM associated data binding a client secret to its provider."""
    return f"trustportal:signin:identity-provider:{provider.uid}".encode()


def provider_set_secret(
    provider: IdentityProvider, secret: str, *, box: SecretBox | None = None
) -> None:
    """Seal the client secret (the caller saves the provider)."""
    box = box or default_box()
    provider.client_secret_sealed = (
        box.encrypt(secret, context=secret_context(provider)) if secret else ""
    )


def provider_secret(provider: IdentityProvider, *, box: SecretBox | None = None) -> str:
    """The plaintext client secret, for the token request only."""
    if not provider.client_secret_sealed:
        return ""
    box = box or default_box()
    return box.decrypt(provider.client_secret_sealed, context=secret_context(provider))


def _new_username(provider: IdentityProvider, claims: dict[str, Any]) -> str:
    """A readable username that is never an existing account's (which it must not take over)."""
    preferred: Any = claims.get("preferred_username") or claims.get("email") or claims["sub"]
    base = _USERNAME_CHARS.sub("-", str(preferred))[:120].strip("-") or "user"
    if not User.objects.filter(username__iexact=base).exists():
        return base
    digest = hashlib.sha256(f"{provider.uid}:{claims['sub']}".encode()).hexdigest()
    for length in (8, 16, 32):
        candidate = f"{base}-{digest[:length]}"
        if not User.objects.filter(username__iexact=candidate).exists():
            return candidate
    raise SignInRefused("username_taken", "no free username for this identity")


def user_for_identity(provider: IdentityProvider, claims: dict[str, Any]) -> User:
    """The account linked to (provider, sub), created on first sign-in; never matched by e-mail."""
    subject = claims["sub"]
    identity = (
        ExternalIdentity.objects.select_related("user")
        .filter(provider=provider, subject=subject)
        .first()
    )
    email = str(claims["email"]) if isinstance(claims.get("email"), str) else ""
    name = str(claims["name"]) if isinstance(claims.get("name"), str) else ""
    if identity is None:
        try:
            with transaction.atomic():
                user = User(username=_new_username(provider, claims), email=email[:254])
                user.first_name = name[:150]
                user.set_unusable_password()
                user.save()
                identity = ExternalIdentity.objects.create(
                    provider=provider, subject=subject, user=user
                )
        except IntegrityError:  # the same person's sign-in in another tab won the race
            identity = ExternalIdentity.objects.select_related("user").get(
                provider=provider, subject=subject
            )
    user = identity.user
    if not user.is_active:
        raise SignInRefused("account_disabled", f"user {user.pk} is inactive")
    if email and user.email != email[:254]:
        user.email = email[:254]
        user.save(update_fields=["email"])
    identity.last_sign_in = timezone.now()
    identity.save(update_fields=["last_sign_in"])
    return user


def groups_of(claims: dict[str, Any], claim: str) -> set[str]:
    """The groups claim as a set of strings (a single string counts as one group)."""
    value = claims.get(claim)
    if isinstance(value, str):
        return {value}
    if isinstance(value, list):
        return {v for v in value if isinstance(v, str)}
    return set()


@dataclass(frozen=True)
class RoleChange:
    organization: Organization
    before: str | None
    after: str | None
    team: Team | None = None

    def describe(self) -> str:
        if self.team is not None:
            verb = "added to" if self.after else "removed from"
            return f"{verb} team {self.team}"
        return f"{self.organization.login}: {self.before or 'none'} -> {self.after or 'none'}"


def managed_organizations(provider: IdentityProvider) -> list[Organization]:
    """The organizations whose roles this provider's mapping decides."""
    if provider.organization_id is not None:
        assert provider.organization is not None
        return [provider.organization]
    ids = GroupMapping.objects.filter(provider=provider).values("organization_id")
    return list(Organization.objects.filter(pk__in=ids))


def roles_apply(user: User, provider: IdentityProvider, groups: Iterable[str]) -> list[RoleChange]:
    """Set the user's roles and teams from the mapping, as it stands for `groups` now.

    In the organizations the provider manages, the mapping is the whole truth: a member of no
    mapped group loses their membership, and a team listed in the mapping keeps exactly the
    people in its groups. Returns what changed, for the security log; each organization whose
    role or teams changed gets one `signin-role-changed` audit record, acted by the person signing
    in (the mapping decided; their sign-in applied it).
    """
    held = set(groups)
    mappings = list(
        GroupMapping.objects.filter(provider=provider).select_related("organization", "team")
    )
    changes: list[RoleChange] = []
    with transaction.atomic():
        for organization in managed_organizations(provider):
            mine = [m for m in mappings if m.organization_id == organization.pk]
            roles = [m.role for m in mine if m.role and m.group in held]
            wanted = max(roles, key=lambda r: ROLE_RANK[Role(r)], default=None)
            current = (
                Membership.objects.filter(organization=organization, user=user)
                .values_list("role", flat=True)
                .first()
            )
            if wanted != current:
                if wanted is None:
                    Membership.objects.filter(organization=organization, user=user).delete()
                else:
                    membership_set(organization=organization, user=user, role=wanted)
                changes.append(RoleChange(organization, current, wanted))
            for team in {m.team for m in mine if m.team is not None}:
                should = wanted is not None and any(
                    m.team_id == team.pk and m.group in held for m in mine
                )
                present = team.members.filter(pk=user.pk).exists()
                if should and not present:
                    team.members.add(user)
                    changes.append(RoleChange(organization, None, "member", team))
                elif present and not should:
                    team.members.remove(user)
                    changes.append(RoleChange(organization, "member", None, team))
            _record_role_change(
                user, provider, [c for c in changes if c.organization == organization]
            )
    return changes


def _record_role_change(user: User, provider: IdentityProvider, changes: list[RoleChange]) -> None:
    """One audit record for what the mapping changed in one organization (nothing if nothing)."""
    if not changes:
        return
    role = next((c for c in changes if c.team is None), None)
    before: dict[str, Any] = {"teams_left": [], "teams_joined": []}
    after: dict[str, Any] = {
        "teams_left": sorted(str(c.team) for c in changes if c.team and c.before),
        "teams_joined": sorted(str(c.team) for c in changes if c.team and c.after),
    }
    if role is not None:
        before["role"], after["role"] = role.before, role.after
    audit_record(
        event="signin-role-changed",
        description=f"The group mapping of {provider.name} changed what {user.get_username()} "
        f"holds in {changes[0].organization.login}.",
        organization=changes[0].organization,
        target=user,
        object_type="user",
        before=before,
        after=after,
        actor=current_actor().with_user(user.pk, user.get_username()),
    )
