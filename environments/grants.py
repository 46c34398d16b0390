"""Who may do what, as written by admins: grants, the organization's settings, custom roles.

Every write here records one audit event in its own transaction (`audit.services.audit_record`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.services import audit_record
from environments import syntax
from environments.access import settings_of
from environments.errors import EnvironmentConflict, EnvironmentInvalid
from environments.models import (
    DefaultPermission,
    Environment,
    EnvironmentRole,
    EnvironmentSettings,
    Grant,
    Level,
    RoleScope,
    Scope,
)
from kernel.errors import NotFound
from trustportal.models import Organization, Runner, Team

ROLE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}\Z")
MAX_SCOPES = 100
RESERVED_ROLE_IDS = frozenset({"admin", "standard"})


# --- grants -------------------------------------------------------------------------------------
def grant_set(
    *,
    environment: Environment,
    permission: str | None,
    team: Team | None = None,
    runner: Runner | None = None,
    now: datetime | None = None,
) -> Grant | None:
    """Give a team (or a runner) a level on the environment, change it, or remove it (None)."""
    if (team is None) == (runner is None):
        raise EnvironmentInvalid("Choose a team or a runner.")
    owner = team or runner
    assert owner is not None
    if owner.organization_id != environment.organization_id:
        raise NotFound("No such team or runner in this organization.")
    if permission is not None and permission not in Level.values:
        raise EnvironmentInvalid(f"The permission is one of {', '.join(Level.values)}.")
    lookup = {"team": team} if team is not None else {"runner": runner}
    who = f"team '{owner.name}'" if team is not None else f"runner '{owner.name}'"
    now = now or timezone.now()
    with transaction.atomic():
        existing = Grant.objects.filter(environment=environment, **lookup).first()
        before = {"permission": existing.permission} if existing is not None else None
        if permission is None:
            Grant.objects.filter(environment=environment, **lookup).delete()
            grant = None
        else:
            grant, created = Grant.objects.get_or_create(
                environment=environment,
                **lookup,
                defaults={"permission": permission, "created": now, "modified": now},
            )
            if not created and grant.permission != permission:
                grant.permission, grant.modified = permission, now
                grant.save(update_fields=["permission", "modified"])
        audit_record(
            event="environment-grant-set",
            description=f"The {who} now has {permission or 'no'} permission on {environment}.",
            organization=environment.organization,
            target=environment,
            before=before,
            after={"permission": permission} if permission is not None else None,
            now=now,
        )
    return grant


# --- organization settings ----------------------------------------------------------------------
def environment_settings_update(
    *,
    organization: Organization,
    default_permission: object = None,
    members_can_create: object = None,
    now: datetime | None = None,
) -> EnvironmentSettings:
    """Change the default permission and/or whether members may create; None leaves a field."""
    if default_permission is not None and default_permission not in DefaultPermission.values:
        raise EnvironmentInvalid(
            f"The default permission is one of {', '.join(DefaultPermission.values)}."
        )
    if members_can_create is not None and not isinstance(members_can_create, bool):
        raise EnvironmentInvalid("`membersCanCreate` is true or false.")
    now = now or timezone.now()
    with transaction.atomic():
        current = settings_of(organization)
        before = _settings_json(current)
        row, _created = EnvironmentSettings.objects.select_for_update().get_or_create(
            organization=organization,
            defaults={
                "default_permission": current.default_permission,
                "members_can_create": current.members_can_create,
            },
        )
        if default_permission is not None:
            row.default_permission = str(default_permission)
        if members_can_create is not None:
            row.members_can_create = members_can_create
        row.modified = now
        row.save()
        audit_record(
            event="environment-settings-updated",
            description="The organization's environment settings were changed.",
            organization=organization,
            target=row,
            before=before,
            after=_settings_json(row),
            now=now,
        )
    return row


def _settings_json(settings: EnvironmentSettings) -> dict[str, Any]:
    return {
        "defaultPermission": settings.default_permission,
        "membersCanCreate": settings.members_can_create,
    }


# --- custom roles -------------------------------------------------------------------------------
def _check_scopes(scopes: object) -> list[tuple[str, str, str]]:
    """`[{"scope", "project"?, "environment"?}]` → (scope, project, environment) rows."""
    if not isinstance(scopes, list) or len(scopes) > MAX_SCOPES:
        raise EnvironmentInvalid(f"`scopes` is a list of at most {MAX_SCOPES} scopes.")
    rows: list[tuple[str, str, str]] = []
    for item in scopes:
        item = {"scope": item} if isinstance(item, str) else item
        if not isinstance(item, Mapping) or item.get("scope") not in Scope.values:
            raise EnvironmentInvalid(f"Each scope is one of {', '.join(Scope.values)}.")
        project, name = item.get("project") or "", item.get("environment") or ""
        for value in (project, name):
            if value and (not isinstance(value, str) or not syntax.valid_name(value)):
                raise EnvironmentInvalid("A scope's project and environment are names.")
        if name and not project:
            raise EnvironmentInvalid("A scope on one environment names its project too.")
        rows.append((item["scope"], project, name))
    return sorted(set(rows))


def _scopes_json(rows: Iterable[tuple[str, str, str]]) -> list[dict[str, str]]:
    return [
        {k: v for k, v in (("scope", s), ("project", p), ("environment", e)) if v}
        for s, p, e in rows
    ]


def role_scope_rows(role: EnvironmentRole) -> list[tuple[str, str, str]]:
    return [(s.scope, s.project, s.environment) for s in role.scopes.all()]


def environment_role_save(
    *,
    organization: Organization,
    role_id: object,
    name: object,
    scopes: object,
    now: datetime | None = None,
) -> EnvironmentRole:
    """Create a role or replace its name and scopes (keyed by `role_id`, the policies' roleID)."""
    if not isinstance(role_id, str) or not ROLE_ID.match(role_id) or role_id in RESERVED_ROLE_IDS:
        raise EnvironmentInvalid(
            "A role id is 1-100 letters, digits, '_', '.', ':' or '-', and not admin or standard."
        )
    if not isinstance(name, str) or not name.strip() or len(name) > 200 or not name.isprintable():
        raise EnvironmentInvalid("A role name is 1-200 printable characters.")
    rows = _check_scopes(scopes)
    now = now or timezone.now()
    try:
        with transaction.atomic():
            role, created = EnvironmentRole.objects.select_for_update().get_or_create(
                organization=organization,
                role_id=role_id,
                defaults={"name": name.strip(), "created": now, "modified": now},
            )
            before = (
                None
                if created
                else {"name": role.name, "scopes": _scopes_json(role_scope_rows(role))}
            )
            role.name, role.modified = name.strip(), now
            role.save(update_fields=["name", "modified"])
            role.scopes.all().delete()
            RoleScope.objects.bulk_create(
                RoleScope(role=role, scope=s, project=p, environment=e) for s, p, e in rows
            )
            audit_record(
                event="environment-role-saved",
                description=f"The environment role '{role_id}' was "
                + ("created." if created else "changed."),
                organization=organization,
                target=role,
                before=before,
                after={"name": role.name, "scopes": _scopes_json(rows)},
                now=now,
            )
    except IntegrityError as exc:
        raise EnvironmentConflict(f"The role '{role_id}' was changed at the same time.") from exc
    return role


def environment_role_delete(*, role: EnvironmentRole, now: datetime | None = None) -> None:
    """Remove a role; tokens minted under its id hold nothing from then on."""
    with transaction.atomic():
        before = {"name": role.name, "scopes": _scopes_json(role_scope_rows(role))}
        audit_record(
            event="environment-role-deleted",
            description=f"The environment role '{role.role_id}' was deleted.",
            organization=role.organization,
            target=role,
            before=before,
            now=now,
        )
        role.delete()
