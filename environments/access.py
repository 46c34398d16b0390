"""Who may do what to which environment: one place for the API, the pages and imports to ask.

    caller                               on every environment    plus, per environment
    organization token `admin`           admin, may create       -
    organization token `standard`        the org's default (*)   what it created: admin
    organization token, custom role id   -                       its role's scopes
    team token                           -                       its team's grants
    personal token or user: org admin    admin, may create       -
    personal token or user: auditor      read                    their teams' grants
    personal token or user: member       the org's default (*)   their teams' grants; created: admin
    runner token                         -                       its runner's grants (max open)

(*) `EnvironmentSettings.default_permission` (`write` unless the organization changes it);
they may create environments when `members_can_create` is on and that default is `none`,
`write` or `admin` (a `read` or `open` default makes the organization read-only for them).

Levels include each other: read < open < write < admin. A caller with no level on an
environment is told it does not exist (404); one with too low a level gets 403.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import reduce

from django.db.models import Exists, OuterRef, Q

from environments.models import (
    DefaultPermission,
    Environment,
    EnvironmentRole,
    EnvironmentSettings,
    Grant,
    Level,
    Scope,
)
from tokens.models import AccessToken, Permission, TokenType
from tokens.principal import Principal
from trustportal.models import Organization, Role, Team, User
from trustportal.selectors import role_of

RANK: dict[str, int] = {Level.READ: 1, Level.OPEN: 2, Level.WRITE: 3, Level.ADMIN: 4}
RUNNER_CEILING = Level.OPEN
SCOPE_LEVELS: dict[str, str] = {
    Scope.READ: Level.READ,
    Scope.OPEN: Level.OPEN,
    Scope.WRITE: Level.WRITE,
    Scope.DELETE: Level.WRITE,  # delete implies write; `may_delete` checks the scope itself
    Scope.ADMIN: Level.ADMIN,
}


@dataclass(frozen=True)
class ScopeRule:
    """One scope of a custom role: a level on every environment, a project's, or one."""

    scope: str
    project: str = ""
    environment: str = ""

    def matches(self, environment: Environment) -> bool:
        return (not self.project or self.project == environment.project) and (
            not self.environment or self.environment == environment.name
        )

    def q(self) -> Q:
        clause = Q()
        if self.project:
            clause &= Q(project=self.project)
        if self.environment:
            clause &= Q(name=self.environment)
        return clause


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
    scopes: tuple[ScopeRule, ...] = ()  # a custom role's, for organization tokens minted with it
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


def settings_of(organization: Organization) -> EnvironmentSettings:
    """The organization's environment settings (the defaults when it never changed them)."""
    found = EnvironmentSettings.objects.filter(organization=organization).first()
    return found or EnvironmentSettings(organization=organization)


def _default_level(settings: EnvironmentSettings) -> str | None:
    permission = settings.default_permission
    return None if permission == DefaultPermission.NONE else permission


def _members_create(settings: EnvironmentSettings) -> bool:
    return settings.members_can_create and settings.default_permission not in (
        DefaultPermission.READ,
        DefaultPermission.OPEN,
    )


def _blanket_for_role(role: str | None, organization: Organization) -> tuple[str | None, bool]:
    """The level on every environment and whether they may create, by organization role."""
    if role == Role.ADMIN:
        return Level.ADMIN, True
    if role == Role.AUDITOR:
        return Level.READ, False
    if role == Role.MEMBER:
        settings = settings_of(organization)
        return _default_level(settings), _members_create(settings)
    return None, False


def role_scopes(organization: Organization, role_id: str) -> tuple[ScopeRule, ...]:
    """The scopes of a custom role (none when the organization has no such role)."""
    role = EnvironmentRole.objects.filter(organization=organization, role_id=role_id).first()
    if role is None:
        return ()
    return tuple(ScopeRule(s.scope, s.project, s.environment) for s in role.scopes.all())


def actor_for_user(
    user: User, organization: Organization, *, token: AccessToken | None = None
) -> Actor:
    """A signed-in user (or a personal token's user): their role, plus their teams' grants."""
    role = Role.ADMIN if user.is_superuser else role_of(user, organization)
    blanket, can_create = _blanket_for_role(role, organization)
    return Actor(
        organization=organization,
        blanket=blanket,
        team_ids=_team_ids(user, organization),
        can_create=can_create,
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
    can_create = False
    scopes: tuple[ScopeRule, ...] = ()
    if token.token_type == TokenType.ORGANIZATION:
        if token.permission == Permission.ADMIN:
            blanket, can_create = Level.ADMIN, True
        elif token.permission == Permission.STANDARD:
            blanket, can_create = _blanket_for_role(Role.MEMBER, organization)
        else:  # a custom role id: exactly its scopes (none if the role does not exist)
            scopes = role_scopes(organization, token.permission)
    team = token.team_id if token.token_type == TokenType.TEAM else None
    runner = token.runner_id if token.token_type == TokenType.RUNNER else None
    return Actor(
        organization=organization,
        blanket=blanket,
        team_ids=frozenset({team}) if team is not None else frozenset(),
        runner_id=runner,
        can_create=can_create,
        scopes=scopes,
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


def _created_by(actor: Actor, environment: Environment) -> bool:
    """Whether the actor created the environment (a user, or the very token)."""
    if actor.user is not None and environment.created_by_id == actor.user.pk:
        return True
    return actor.token is not None and environment.created_by_token_id == actor.token.pk


def _own_level(actor: Actor, environment: Environment) -> str | None:
    """The level before grants: blanket, the role's scopes, and admin for its creator."""
    levels = [actor.blanket]
    levels += [SCOPE_LEVELS[r.scope] for r in actor.scopes if r.matches(environment)]
    if _created_by(actor, environment):
        levels.append(Level.ADMIN)
    return highest(levels)


def may_delete(actor: Actor, environment: Environment) -> bool:
    """Deleting needs admin, or a role's `environment:delete` scope on it."""
    if allows(level_of(actor, environment), Level.ADMIN):
        return True
    return any(r.scope == Scope.DELETE and r.matches(environment) for r in actor.scopes)


def levels_of(actor: Actor, environments: Iterable[Environment]) -> dict[object, str | None]:
    """Each environment's level for the actor (by environment id), in one query."""
    mine = [env for env in environments if env.organization_id == actor.organization.pk]
    ids = [env.pk for env in mine]
    levels: dict[object, str | None] = {env.pk: _own_level(actor, env) for env in mine}
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
    clauses = [rule.q() for rule in actor.scopes]
    if actor.user is not None:
        clauses.append(Q(created_by_id=actor.user.pk))
    if actor.token is not None:
        clauses.append(Q(created_by_token_id=actor.token.pk))
    grants = _grants(actor)
    if grants is not None:
        clauses.append(Q(Exists(Grant.objects.filter(grants, environment_id=OuterRef("pk")))))
    if not clauses:
        return Q(pk__in=[])
    return Q(reduce(operator.or_, clauses), in_org)
