"""Grants: a team's (or a runner's) level on one environment."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from environments.errors import EnvironmentInvalid
from environments.models import (
    Environment,
    Grant,
    Level,
)
from kernel.errors import NotFound
from trustportal.models import Runner, Team


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
    if permission is None:
        Grant.objects.filter(environment=environment, **lookup).delete()
        return None
    now = now or timezone.now()
    grant, created = Grant.objects.get_or_create(
        environment=environment,
        **lookup,
        defaults={"permission": permission, "created": now, "modified": now},
    )
    if not created and grant.permission != permission:
        grant.permission, grant.modified = permission, now
        grant.save(update_fields=["permission", "modified"])
    return grant
