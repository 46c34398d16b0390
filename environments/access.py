"""Who may do what to which environment: one place for the API, the pages and imports to ask.

    caller                               on every environment    plus, per environment
    organization token `admin`           admin, may create       -
    organization token `standard`        open                    -
    organization token, other role id    nothing                 -
    team token                           -                       its team's grants
    personal token or user: org admin    admin, may create       -
    personal token or user: auditor      read                    their teams' grants
    personal token or user: member       -                       their teams' grants
    runner token                         -                       its runner's grants (max open)

Levels include each other: read < open < write < admin. A caller with no level on an
environment is told it does not exist (404); one with too low a level gets 403.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import reduce

from django.db.models import Exists, OuterRef, Q

from environments.models import Environment, Grant, Level
from tokens.models import AccessToken, Permission, TokenType
from tokens.principal import Principal
from trustportal.models import Organization, Role, Team, User
from trustportal.selectors import role_of

RANK: dict[str, int] = {Level.READ: 1, Level.OPEN: 2, Level.WRITE: 3, Level.ADMIN: 4}
RUNNER_CEILING = Level.OPEN


@dataclass(frozen=True)
class Actor:
    """One caller in one organization: what their environment access depends on, and who they are.

    `blanket` is a level on every environment of the organization; team and runner grants add
    to it per environment. `user` and `token` say who acted, for revisions and the open record.
    """

    organization: Organization
    blanket: str | None = None
    team_ids: frozenset[int] = field(default_factory=frozenset)
    runner_id: int | None = None
    can_create: bool = False
    login: str = ""
    display_name: str = ""
    user: User | None = None
    token: AccessToken | None = None

    @property
    def token_label(self) -> str:
        """`tpo_ab12… (name)`: how records name the token without storing it."""
        token = self.token
        if token is None:
            return ""
        return f"{token.prefix}… ({token.name or token.token_type})"


def highest(levels: Iterable[str | None]) -> str | None:
    """The strongest of some levels, or None when there are none."""
    present = [level for level in levels if level]
    return max(present, key=RANK.__getitem__) if present else None


def allows(level: str | None, need: str) -> bool:
    """Whether holding `level` is enough for something that needs `need`."""
    return level is not None and RANK[level] >= RANK[need]


def _team_ids(user: User, organization: Organization) -> frozenset[int]:
    return frozenset(
        Team.objects.filter(organization=organization, members=user).values_list("pk", flat=True)
    )


def _blanket_for_role(role: str | None) -> str | None:
    if role == Role.ADMIN:
        return Level.ADMIN
    if role == Role.AUDITOR:
        return Level.READ
    return None


def actor_for_user(
    user: User, organization: Organization, *, token: AccessToken | None = None
) -> Actor:
    """A signed-in user (or a personal token's user): their role, plus their teams' grants."""
    role = Role.ADMIN if user.is_superuser else role_of(user, organization)
    return Actor(
        organization=organization,
        blanket=_blanket_for_role(role),
        team_ids=_team_ids(user, organization),
        can_create=role == Role.ADMIN,
        login=user.get_username(),
        display_name=user.get_full_name() or user.get_username(),
        user=user,
        token=token,
    )


def actor_for_principal(principal: Principal, organization: Organization) -> Actor:
    """The API caller in an organization it reaches (`trustportal.access.organization_for`)."""
    token = principal.token
    if token.token_type == TokenType.PERSONAL and principal.user is not None:
        return actor_for_user(principal.user, organization, token=token)
    blanket: str | None = None
    if token.token_type == TokenType.ORGANIZATION:
        # Any role id other than admin/standard gets nothing here: fail closed.
        blanket = {Permission.ADMIN: Level.ADMIN, Permission.STANDARD: Level.OPEN}.get(
            token.permission  # type: ignore[call-overload]
        )
    team = token.team_id if token.token_type == TokenType.TEAM else None
    runner = token.runner_id if token.token_type == TokenType.RUNNER else None
    return Actor(
        organization=organization,
        blanket=blanket,
        team_ids=frozenset({team}) if team is not None else frozenset(),
        runner_id=runner,
        can_create=blanket == Level.ADMIN,
        login=principal.login,
        display_name=token.name or principal.login,
        token=token,
    )


def _grants(actor: Actor) -> Q | None:
    """The filter for the grants that apply to the actor, or None when none can."""
    clauses: list[Q] = []
    if actor.team_ids:
        clauses.append(Q(team_id__in=actor.team_ids))
    if actor.runner_id is not None:
        clauses.append(Q(runner_id=actor.runner_id))
    return reduce(operator.or_, clauses) if clauses else None


def _grant_level(permission: str, runner_id: int | None) -> str:
    if runner_id is not None and RANK[permission] > RANK[RUNNER_CEILING]:
        return RUNNER_CEILING
    return permission


def levels_of(actor: Actor, environments: Iterable[Environment]) -> dict[object, str | None]:
    """Each environment's level for the actor (by environment id), in one query."""
    ids = [env.pk for env in environments if env.organization_id == actor.organization.pk]
    levels: dict[object, str | None] = {env_id: actor.blanket for env_id in ids}
    grants = _grants(actor)
    if grants is not None and ids:
        rows = Grant.objects.filter(grants, environment_id__in=ids).values_list(
            "environment_id", "permission", "runner_id"
        )
        for env_id, permission, runner_id in rows:
            levels[env_id] = highest([levels[env_id], _grant_level(permission, runner_id)])
    return levels


def level_of(actor: Actor, environment: Environment) -> str | None:
    """The actor's level on one environment, or None (then it must look nonexistent)."""
    return levels_of(actor, [environment]).get(environment.pk)


def visible(actor: Actor) -> Q:
    """A filter for `Environment` querysets: the ones the actor may at least read."""
    in_org = Q(organization_id=actor.organization.pk)
    if actor.blanket is not None:
        return in_org
    grants = _grants(actor)
    if grants is None:
        return Q(pk__in=[])
    return Q(Exists(Grant.objects.filter(grants, environment_id=OuterRef("pk"))), in_org)
