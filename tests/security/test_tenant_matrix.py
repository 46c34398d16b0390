"""Tenant isolation matrix over every URL pattern, and the security headers of every response.

The URL patterns come from `django.urls.get_resolver()`, so a new endpoint joins the matrix by
itself: its path parameters are filled with organization B's objects (B is the victim) and each
method it supports is called by every caller below. A pattern whose parameters or same-org role
expectations are unknown fails `test_every_url_pattern_is_covered_or_allow_listed` until it is
described here or allow-listed with a reason.

Callers: B's own admin, auditor, team token, member's personal token and a revoked token; the
same five from organization A; and no credentials at all. Every cell asserts:

- cross-org (A) and unauthenticated callers: the refusal (401 or 404 from the API, 404 or a
  sign-in redirect from pages; admin list pages answer with the caller's own rows only), no
  marker string of B's objects in the body or headers, and for writes B's rows unchanged;
- B's callers: the outcome their role allows (the 2xx/validation answer, or 403);
- everyone: the security headers (also checked per URL pattern by `test_security_headers`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.contenttypes.models import ContentType
from django.db import models, transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RegexPattern, RoutePattern
from django.utils import timezone

from devtools.issuer import SigningKey
from environments import grants, opens, tagging
from environments.models import Environment, Level
from issuers.models import Issuer
from issuers.services import Outbound
from notifications.services import webhook_create
from policies.models import AuthPolicy
from policies.registration import issuer_register
from policies.services import policy_update
from portal.orgs.admin import OrgScopedAdmin, ScopedUserAdmin
from signin.models import (
    ExternalIdentity,
    GroupMapping,
    IdentityProvider,
    OrganizationSignInPolicy,
    SignInEvent,
)
from tests.environments.conftest import make_environment, system_actor
from tests.factories import (
    MembershipFactory,
    RunnerFactory,
    UserFactory,
    make_event,
)
from tokens.models import AccessToken
from tokens.services import token_create, token_revoke
from trustportal.models import Organization, Role, Team, User

pytestmark = pytest.mark.django_db

# Every object of B that can show up in a response carries this in a name or value; URL
# parameters never do, so an error message echoing the URL cannot produce a false alarm.
MARK = "mkb7q"
VICTIM_LOGIN = "victim"
PROJECT, ENV, TAG = "vproj", "venv", "vtag"

ROLES = ("admin", "auditor", "team", "personal", "revoked")


@dataclass(frozen=True)
class Caller:
    org: str | None  # "A", "B", or None (no credentials)
    role: str

    @property
    def label(self) -> str:
        return f"{self.org}-{self.role}" if self.org else "anonymous"


CALLERS = (
    *(Caller("B", role) for role in ROLES),
    *(Caller("A", role) for role in ROLES),
    Caller(None, "anonymous"),
)


# --- the URL walk -------------------------------------------------------------------------------
_NAMED_GROUP = re.compile(r"\(\?P<(\w+)>(?:[^()]|\([^()]*\))*\)")


@dataclass(frozen=True)
class Route:
    """One URL pattern with its full route text, name and view."""

    route: str
    name: str
    callback: Callable[..., Any]
    parts: tuple[URLPattern | URLResolver, ...] = field(repr=False)

    @property
    def params(self) -> tuple[str, ...]:
        names: list[str] = []
        for part in self.parts:
            pattern = part.pattern
            if isinstance(pattern, RoutePattern):
                names += re.findall(r"<(?:\w+:)?(\w+)>", str(pattern))
            elif isinstance(pattern, RegexPattern):
                names += list(pattern.regex.groupindex)
        return tuple(names)

    @property
    def kind(self) -> str:
        if self.route.startswith("api/"):
            return "api"
        if self.route.startswith("admin/"):
            return "admin"
        return "page"

    def url(self, values: dict[str, str]) -> str:
        """The path with each parameter replaced by its value."""
        out = ""
        for part in self.parts:
            pattern = part.pattern
            if isinstance(pattern, RoutePattern):
                out += re.sub(r"<(?:\w+:)?(\w+)>", lambda m: values[m.group(1)], str(pattern))
            else:
                text = str(pattern).lstrip("^").rstrip("$")
                text = _NAMED_GROUP.sub(lambda m: values[m.group(1)], text)
                out += text.replace("/+", "/")
        return "/" + out

    @property
    def view_class(self) -> Any:
        return getattr(self.callback, "view_class", None) or getattr(self.callback, "cls", None)


def walk_urls(
    patterns: list[URLPattern | URLResolver] | None = None,
    parents: tuple[URLPattern | URLResolver, ...] = (),
    namespace: tuple[str, ...] = (),
) -> Iterator[Route]:
    """Every URL pattern reachable from the root resolver, resolvers followed recursively."""
    if patterns is None:
        patterns = get_resolver().url_patterns
    for entry in patterns:
        if isinstance(entry, URLResolver):
            space = namespace + ((entry.namespace,) if entry.namespace else ())
            yield from walk_urls(entry.url_patterns, (*parents, entry), space)
        else:
            route = "".join(str(p.pattern) for p in (*parents, entry))
            name = ":".join((*namespace, entry.name or ""))
            yield Route(route, name, entry.callback, (*parents, entry))


# URL patterns left out of the matrix, each with why no tenant data can be behind it.
ALLOW_LISTED: dict[str, str] = {
    "api/oauth/token": "the public token exchange: it takes a subject token, not an access "
    "token, and answers OAuth errors only (covered by tests/tokens/test_exchange.py)",
    "api/openapi.json": "the static OpenAPI document, the same for everyone, no tenant data",
    "login/": "the public sign-in form",
    "logout/": "signs the caller out; no data",
    "admin/login/": "the admin's public sign-in form",
    "admin/logout/": "signs the caller out; no data",
    "admin/password_change/": "changes the signed-in user's own password; no tenant data",
    "admin/password_change/done/": "a static confirmation page",
    "admin/jsi18n/": "the admin's static JavaScript translation catalog",
    "signin/oidc/<int:pk>/start/": "starts a public sign-in with a provider: a redirect to it, "
    "no tenant data (tests/signin)",
    "signin/oidc/callback/": "the providers' public answer to a sign-in this browser started "
    "(tests/signin/test_refusals.py)",
    "signin/mfa/enrol/": "the signed-in user's own second factor only (tests/browser)",
    "signin/mfa/verify/": "the signed-in user's own second factor only (tests/browser)",
    "admin/otp_totp/totpdevice/<int:pk>/config/": "django-otp's key page, turned off for everyone "
    "(OTP_ADMIN_HIDE_SENSITIVE_DATA)",
    "admin/otp_totp/totpdevice/<int:pk>/qrcode/": "django-otp's QR code, turned off for everyone "
    "(OTP_ADMIN_HIDE_SENSITIVE_DATA)",
}
# Public endpoints under these prefixes, allow-listed by prefix.
ALLOW_LISTED_PREFIXES: dict[str, str] = {
    "oidc/.well-known/": "the portal's own public OIDC discovery document and signing keys "
    "(what cloud providers fetch to verify credentials it issues): no tenant data",
}


def allow_listed(route: Route) -> str | None:
    if route.route in ALLOW_LISTED:
        return ALLOW_LISTED[route.route]
    for prefix, reason in ALLOW_LISTED_PREFIXES.items():
        if route.route.startswith(prefix):
            return reason
    return None


# --- what each role of B may do -----------------------------------------------------------------
ANY = frozenset({"admin", "auditor", "team", "personal"})
READ = frozenset({"admin", "auditor"})
ADMIN = frozenset({"admin"})
# Environment levels: the team holds `open` on B's environment and the member is in the team;
# auditors read every environment; the org admin token is an environment admin.
ENV_READ = ANY
ENV_OPEN = frozenset({"admin", "team", "personal"})
ENV_WRITE = ADMIN
PERSONAL_ONLY = frozenset({"auditor", "personal"})  # personal tokens (the auditor's is one too)
OWNER = frozenset({"personal"})  # the member's own personal token

API_NEEDS: dict[str, dict[str, frozenset[str]]] = {
    "api-user": {"GET": ANY},
    "api-user-tokens": {"GET": PERSONAL_ONLY, "POST": PERSONAL_ONLY},
    "api-user-token": {"DELETE": OWNER},
    "api-org": {"GET": ANY},
    "api-org-teams": {"GET": ANY},
    "api-exchanges": {"GET": READ},
    "api-exchanges-export": {"GET": READ},
    "api-exchange": {"GET": READ},
    "api-org-tokens": {"GET": READ, "POST": ADMIN},
    "api-org-tokens-revoke": {"POST": ADMIN},
    "api-org-token": {"GET": READ, "DELETE": ADMIN},
    "api-issuers": {"GET": READ, "POST": ADMIN},
    "api-issuer": {"GET": READ, "PATCH": ADMIN, "DELETE": ADMIN},
    "api-issuer-thumbprints": {"POST": ADMIN},
    "api-policy-for-issuer": {"GET": READ},
    "api-policy": {"PATCH": ADMIN},
    "api-policy-simulate": {"POST": READ},
    "api-policy-replay": {"POST": READ},
    "api-policy-versions": {"GET": READ},
    "api-policy-rollback": {"POST": ADMIN},
    "api-esc-all": {"GET": ANY},
    "api-esc-org": {"GET": ANY, "POST": ADMIN},
    "api-esc-check": {"POST": ANY},
    "api-esc-environment": {"GET": ENV_READ, "PATCH": ENV_WRITE, "DELETE": ENV_WRITE},
    "api-esc-decrypt": {"GET": ENV_WRITE},
    "api-esc-open": {"POST": ENV_OPEN},
    "api-esc-session": {"GET": ENV_OPEN},
    "api-esc-rotate": {"POST": ENV_WRITE},
    "api-esc-revisions": {"GET": ENV_READ},
    "api-esc-revision-tags": {"GET": ENV_READ, "POST": ENV_WRITE},
    "api-esc-revision-tag": {
        "GET": ENV_READ,
        "POST": ENV_WRITE,
        "PATCH": ENV_WRITE,
        "DELETE": ENV_WRITE,
    },
    "api-esc-version": {"GET": ENV_READ},
    "api-esc-version-open": {"POST": ENV_OPEN},
    "api-esc-version-decrypt": {"GET": ENV_WRITE},
    "api-esc-tags": {"GET": ENV_READ, "POST": ENV_WRITE},
    "api-esc-tag": {"GET": ENV_READ, "PATCH": ENV_WRITE, "DELETE": ENV_WRITE},
    "api-auditlogs": {"GET": READ},
    "api-auditlogs-export": {"GET": READ},
    "api-hooks": {"GET": READ, "POST": ADMIN},
    "api-hook": {"GET": READ, "PATCH": ADMIN, "DELETE": ADMIN},
    "api-hook-ping": {"POST": ADMIN},
    "api-hook-deliveries": {"GET": READ},
    "api-env-settings": {"GET": READ, "PATCH": ADMIN},
    "api-env-roles": {"GET": READ, "POST": ADMIN},
    "api-env-role": {"GET": READ, "PUT": ADMIN, "DELETE": ADMIN},
}
# How a refused B caller is answered when it is not 403.
API_REFUSAL: dict[tuple[str, str], int] = {("api-user-token", "auditor"): 404}

PAGE_NEEDS: dict[str, dict[str, frozenset[str]]] = {
    "home": {"GET": ANY},
    "issuers:list": {"GET": READ},
    "issuers:register": {"GET": ADMIN, "POST": ADMIN},
    "issuers:detail": {"GET": READ, "POST": ADMIN},
    "issuers:refresh": {"POST": ADMIN},
    "issuers:regenerate-thumbprints": {"POST": ADMIN},
    "issuers:set-enabled": {"POST": ADMIN},
    "issuers:disable": {"GET": ADMIN},
    "issuers:delete": {"GET": ADMIN, "POST": ADMIN},
    "policies:editor": {"GET": READ},
    "policies:add": {"POST": ADMIN},
    "policies:replace": {"POST": ADMIN},
    "policies:edit": {"GET": ADMIN, "POST": ADMIN},
    "policies:delete": {"POST": ADMIN},
    "policies:move": {"POST": ADMIN},
    "policies:publish": {"POST": ADMIN},
    "policies:discard": {"POST": ADMIN},
    "policies:restart": {"POST": ADMIN},
    "policies:simulate": {"GET": READ, "POST": READ},
    "policies:replay": {"GET": READ, "POST": READ},
    "policies:versions": {"GET": READ},
    "policies:rollback": {"POST": ADMIN},
    "environments:list": {"GET": ANY},
    "environments:new": {"POST": ADMIN},
    # The POST saves (`action=save`): write level.
    "environments:detail": {"GET": ENV_READ, "POST": ENV_WRITE},
    "environments:delete": {"POST": ENV_WRITE},
    "environments:revisions": {"GET": ENV_READ},
    "environments:permissions": {"GET": ENV_READ, "POST": ENV_WRITE},
    "environments:settings": {"GET": READ, "POST": ADMIN},
    "environments:role-delete": {"POST": ADMIN},
    "tokens:dashboard": {"GET": READ},
    "tokens:history": {"GET": READ},
    "tokens:history-export": {"GET": READ},
    "tokens:event": {"GET": READ},
    "tokens:credentials": {"GET": READ},
    "tokens:tokens": {"GET": READ},
    "tokens:token-create": {"GET": ADMIN, "POST": ADMIN},
    "tokens:revoke-matching": {"GET": ADMIN, "POST": ADMIN},
    "tokens:token": {"GET": READ},
    "tokens:token-revoke": {"POST": ADMIN},
    "audit:log": {"GET": READ},
    "notifications:page": {"GET": READ, "POST": ADMIN},
    "notifications:threshold": {"POST": ADMIN},
    "notifications:action": {"POST": ADMIN},
    "tokens:token-created": {"GET": ADMIN},
    "people": {"GET": READ},
    "people-member-add": {"POST": ADMIN},
    "people-member-created": {"GET": ADMIN},
    "people-member-role": {"POST": ADMIN},
    "people-member-remove": {"GET": ADMIN, "POST": ADMIN},
    "people-team-add": {"POST": ADMIN},
    "people-team-delete": {"GET": ADMIN, "POST": ADMIN},
    "people-team-member-add": {"POST": ADMIN},
    "people-team-member-remove": {"GET": ADMIN, "POST": ADMIN},
}
# Pages that show a secret once, right after it was made in the same session: any other GET
# (every caller here) is sent on to the object's page.
SHOWN_ONCE = frozenset({"tokens:token-created", "people-member-created"})

# Admin pages that are not a model's: what a signed-in admin or auditor gets.
ADMIN_SITE_PAGES: dict[str, frozenset[int]] = {
    "admin:index": frozenset({200}),
    "admin:app_list": frozenset({200, 404}),
    "admin:autocomplete": frozenset({403, 404}),
    "admin:view_on_site": frozenset({404}),
    "admin/(?P<url>.*)$": frozenset({301, 302, 404}),
}
ADMIN_ACTIONS = ("changelist", "add", "change", "delete", "history", "redirect", "password")

PAGE_METHODS = ("GET", "POST")


# --- the victim's world -------------------------------------------------------------------------
@dataclass
class Party:
    """One organization with an admin, an auditor, a member in a team, and their credentials."""

    organization: Organization
    admin: User
    auditor: User
    member: User
    team: Team
    tokens: dict[str, str]  # role -> plaintext


@dataclass
class World:
    a: Party
    b: Party
    values: dict[str, str]  # path parameter -> B's value
    member_token_id: str
    objects: dict[type[models.Model], models.Model]


def _party(login: str, mark: str) -> Party:
    organization = Organization.objects.create(login=login, name=f"{mark} org {login}")
    admin_user = MembershipFactory(
        organization=organization, role=Role.ADMIN, user=UserFactory(username=f"{mark}-admin")
    ).user
    auditor = MembershipFactory(
        organization=organization,
        role=Role.AUDITOR,
        user=UserFactory(username=f"{mark}-auditor"),
    ).user
    member = MembershipFactory(
        organization=organization, role=Role.MEMBER, user=UserFactory(username=f"{mark}-member")
    ).user
    team = Team.objects.create(
        organization=organization, name=f"{login}-team", display_name=f"{mark} t"
    )
    team.members.add(member)
    RunnerFactory(organization=organization, name=f"{login}-runner", description=f"{mark} r")
    tokens = {
        "admin": token_create(
            token_type="organization",
            organization=organization,
            permission="admin",
            name=f"{mark}-admin-token",
        )[1],
        "auditor": token_create(
            token_type="personal", user=auditor, description=f"{mark}-auditor-token"
        )[1],
        "team": token_create(token_type="team", team=team, name=f"{mark}-team-token")[1],
        "personal": token_create(
            token_type="personal", user=member, description=f"{mark}-member-token"
        )[1],
    }
    revoked, tokens["revoked"] = token_create(
        token_type="organization",
        organization=organization,
        permission="admin",
        name=f"{mark}-revoked-token",
    )
    token_revoke(token=revoked, reason="revoked")
    return Party(organization, admin_user, auditor, member, team, tokens)


ENV_TEXT = f"""\
values:
  app:
    name: {MARK}-value
  password:
    fn::secret: {MARK}-secret
"""


def build_world(outbound: Outbound, *, victim: str = VICTIM_LOGIN) -> World:
    """Organization A (mka…) and organization B (the victim) with one of every object."""
    a = _party("attacker", "mka")
    b = _party(victim, MARK)
    organization = b.organization
    key = SigningKey.generate("ES256", kid=f"{MARK}-kid")
    issuer = issuer_register(
        organization=organization,
        url=f"https://{MARK}-issuer.example/oidc",
        name=f"{MARK}-issuer",
        jwks={"keys": [key.public_jwk()]},
        outbound=outbound,
    )
    policy = AuthPolicy.objects.get(issuer=issuer)
    policy_update(
        policy=policy,
        definitions=[
            {
                "decision": "allow",
                "tokenType": "organization",
                "authorizedPermissions": ["standard"],
                "rules": {"sub": f"repo:{MARK}/app:*"},
            }
        ],
    )
    actor = system_actor(organization)
    # B's members hold nothing by default, so their level is the team's grant (the default
    # permission and member creation have their own tests: tests/environments/test_org_access.py).
    grants.environment_settings_update(
        organization=organization, default_permission="none", members_can_create=False
    )
    grants.environment_role_save(
        organization=organization,
        role_id="deployer",  # in URLs: no mark (a login redirect repeats the path)
        name=f"{MARK}-role",
        scopes=[{"scope": "environment:read", "project": PROJECT}],
    )
    environment = make_environment(organization, PROJECT, ENV, text=ENV_TEXT)
    tagging.revision_tag_create(environment=environment, name=TAG, revision=1, actor=actor)
    tagging.environment_tag_create(
        environment=environment, name=TAG, value=f"{MARK}-tag-value", actor=actor
    )
    grants.grant_set(environment=environment, team=b.team, permission=Level.OPEN)
    revision = environment.revisions.get(number=environment.revision)
    session, _open_event = opens.environment_open(
        environment=environment, revision=revision, actor=actor, duration=timedelta(hours=1)
    )
    event = make_event(
        organization,
        sub=f"repo:{MARK}/app:ref:refs/heads/main",
        claims={"sub": f"repo:{MARK}/app:ref:refs/heads/main", "actor": f"{MARK}-actor"},
    )
    # A webhook named like the environment (the `name` path parameter), whose creation is also
    # an audit record of B; its address is refused before any connection (TEST-NET).
    webhook_create(
        organization=organization,
        values={"name": ENV, "displayName": f"{MARK}-hook", "payloadUrl": "https://192.0.2.1/h"},
    )
    org_token = AccessToken.objects.get(name=f"{MARK}-admin-token")
    member_token = AccessToken.objects.get(user=b.member)
    values = {
        "org": organization.login,
        "issuer_id": str(issuer.pk),
        "policy_id": str(policy.pk),
        "project": PROJECT,
        "env": ENV,
        "name": ENV,
        "token_id": str(org_token.pk),
        "event_id": str(event.pk),
        "session": session,
        "tag": TAG,
        "role_id": "deployer",
        "version": "1",
        "fmt": "csv",
        "index": "0",
        "id": str(b.admin.pk),
        "content_type_id": str(ContentType.objects.get_for_model(Environment).pk),
        "object_id": str(environment.pk),
        "app_label": "issuers",
        "url": "nothing-here/",
        "action": "deactivate",
        "membership_id": str(b.member.memberships.get(organization=organization).pk),
        "team_id": str(b.team.pk),
        "user_id": str(b.member.pk),
    }
    _sign_in_rows(b)
    victims: dict[type[models.Model], models.Model] = {}
    for model in _project_models():
        if _org_path(model) is None:
            continue
        victims[model] = _victim_object(model, b) or _make_row(model, victims, organization)
    return World(a, b, values, str(member_token.pk), victims)


def _sign_in_rows(party: Party) -> None:
    """B's identity provider, mapping, linked identity, sign-in policy and sign-in event."""
    organization = party.organization
    provider = IdentityProvider.objects.create(
        organization=organization,
        name=f"{MARK}-idp",
        issuer=f"https://{MARK}-idp.example",
        client_id=f"{MARK}-client",
    )
    GroupMapping.objects.create(
        provider=provider, group=f"{MARK}-group", organization=organization, role="member"
    )
    ExternalIdentity.objects.create(provider=provider, subject=f"{MARK}-sub", user=party.member)
    OrganizationSignInPolicy.objects.create(organization=organization)
    SignInEvent.objects.create(
        kind="signed_in", username=f"{MARK}-user", provider=provider, organization=organization
    )


def _make_row(
    model: type[models.Model],
    victims: dict[type[models.Model], models.Model],
    organization: Organization,
) -> models.Model:
    """A row of B for a model nothing above created (a newly added one), its text marked."""
    fields: dict[str, Any] = {}
    for f in model._meta.concrete_fields:
        if f.primary_key or f.has_default() or f.null:
            continue
        if isinstance(f, models.ForeignKey):
            target = f.related_model
            fields[f.name] = organization if target is Organization else victims[target]  # type: ignore[index]
        elif f.choices:
            fields[f.name] = f.choices[0][0]
        elif isinstance(f, models.CharField | models.TextField):
            fields[f.name] = f"{MARK}-{f.name}"[: f.max_length or 100]
        elif isinstance(f, models.DateTimeField):
            fields[f.name] = timezone.now()
        elif isinstance(f, models.BooleanField):
            fields[f.name] = False
        elif isinstance(f, models.IntegerField):
            fields[f.name] = 1
    return model._default_manager.create(**fields)


# --- B's rows, for "nothing changed" ------------------------------------------------------------
def _project_models() -> list[type[models.Model]]:
    labels = ("trustportal", "tokens", "issuers", "policies", "environments", "signin")
    return [m for label in labels for m in apps.get_app_config(label).get_models()]


def _org_path(model: type[models.Model], depth: int = 3) -> str | None:
    """The lookup from `model` to its Organization through foreign keys ("" for Organization)."""
    if model is Organization:
        return ""
    if model is User:
        return "memberships__organization"
    if depth == 0:
        return None
    for f in model._meta.get_fields():
        if isinstance(f, models.ForeignKey) and f.name not in ("created_by", "revoked_by", "user"):
            target = f.related_model
            assert isinstance(target, type)
            rest = _org_path(target, depth - 1)
            if rest is not None and target is not User:
                return f"{f.name}__{rest}" if rest else f.name
    return None


def _victim_object(model: type[models.Model], party: Party) -> models.Model | None:
    path = _org_path(model)
    if path is None:
        return None
    lookup = {path: party.organization} if path else {"pk": party.organization.pk}
    return model._default_manager.filter(**lookup).order_by("pk").first()


def snapshot(organization: Organization) -> dict[str, list[dict[str, Any]]]:
    """Every row of every project model that belongs to the organization, as values."""
    rows: dict[str, list[dict[str, Any]]] = {}
    for model in _project_models():
        path = _org_path(model)
        if path is None:
            continue
        lookup = {path: organization} if path else {"pk": organization.pk}
        queryset = model._default_manager.filter(**lookup).distinct().order_by("pk")
        if model is AccessToken:
            # Use is recorded off the hot path; the row's identity and state are what matter.
            rows[model.__name__] = list(queryset.values("pk", "revoked_at", "name", "expires"))
        else:
            rows[model.__name__] = list(queryset.values())
    return rows


# --- calling ------------------------------------------------------------------------------------
API_BODY: dict[str, Any] = {
    "name": "mka-pwned",
    "description": "mka-pwned",
    "url": "https://mka-pwned.example/oidc",
    "jwks": {"keys": []},
    "maxExpiration": 600,
    "policies": [],
    "project": "mkaproj",
    "revision": 1,
    "value": "mka-pwned",
    "reason": "mka-pwned",
    "since": "2000-01-01T00:00:00Z",
    "claims": {"sub": "repo:mka/app:ref:refs/heads/main"},
    "currentTag": {"value": f"{MARK}-tag-value"},
    "newTag": {"name": "mka-pwned", "value": "mka-pwned"},
}
YAML_BODY = "values:\n  pwned: mka-pwned\n"
YAML_ROUTES = {("api-esc-environment", "PATCH"), ("api-esc-check", "POST")}
PAGE_BODY: dict[str, str] = {
    "name": "mka-pwned",
    "username": "mka-pwned",
    "email": "mka-pwned@example.test",
    "display_name": "mka-pwned",
    "description": "mka-pwned",
    "project": "mkaproj",
    "definition": YAML_BODY,
    "base_revision": "2",
    "action": "save",
    "post": "yes",
    "url": "https://mka-pwned.example/oidc",
    "reason": "mka-pwned",
    "since": "2000-01-01T00:00",
    "enabled": "",
    "permission": "admin",
    "type": "organization",
    "claims": '{"sub": "repo:mka/app:ref:refs/heads/main"}',
    "policies": "[]",
    "direction": "down",
    "role": "admin",
    "login": "mka-pwned",
}


def _client(world: World, caller: Caller, kind: str) -> Client:
    client = Client()
    if caller.org is None:
        return client
    party = world.a if caller.org == "A" else world.b
    token = party.tokens[caller.role]
    if kind == "api" or caller.role in ("team", "revoked"):
        # Pages never take tokens: the header must not sign anyone in.
        client.defaults["HTTP_AUTHORIZATION"] = f"token {token}"
        return client
    user = {"admin": party.admin, "auditor": party.auditor, "personal": party.member}[caller.role]
    client.force_login(user)
    return client


def _call(client: Client, route: Route, method: str, url: str, extra_form: dict[str, str]) -> Any:
    if route.kind == "api":
        if method in ("GET", "HEAD", "DELETE"):
            return client.generic(method, url)
        if (route.name, method) in YAML_ROUTES:
            return client.generic(method, url, YAML_BODY, content_type="application/x-yaml")
        return client.generic(method, url, json.dumps(API_BODY), content_type="application/json")
    if method == "GET":
        return client.get(url)
    return client.post(url, {**PAGE_BODY, **extra_form})


def _body_text(response: Any) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode("utf-8", "replace")
    return bytes(response.content).decode("utf-8", "replace")


# --- expectations -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Expect:
    statuses: frozenset[int]
    login_redirect: str | None = None  # a 302 must go to this sign-in page


OK = {
    "GET": frozenset({200}),
    "HEAD": frozenset({200}),
    "POST": frozenset({200, 201, 204, 302, 400, 409}),
    "PATCH": frozenset({200, 204, 400, 409, 412}),
    "PUT": frozenset({200, 204, 400, 409, 412}),
    "DELETE": frozenset({204}),
}


def _api_methods(route: Route) -> tuple[str, ...]:
    view = route.view_class
    assert view is not None, route.route
    methods = [m.upper() for m in view.http_method_names if m not in ("options", "head")]
    found = tuple(m for m in methods if hasattr(view, m.lower()))
    return found + (("HEAD",) if "GET" in found else ())


def methods_of(route: Route) -> tuple[str, ...]:
    return _api_methods(route) if route.kind == "api" else PAGE_METHODS


def _admin_model(route: Route) -> tuple[type[models.Model], Any] | None:
    match = re.match(r"^admin/(\w+)/(\w+)/", route.route)
    if match is None:
        return None
    try:
        model = apps.get_model(match.group(1), match.group(2))
    except LookupError:
        return None
    return model, admin.site._registry.get(model)


def _admin_action(route: Route) -> str:
    if route.name.endswith("_password_change"):
        return "password"
    for action in ADMIN_ACTIONS:
        if route.name.endswith("_" + action):
            return action
    return "redirect"


def expect(route: Route, method: str, caller: Caller) -> Expect:
    """What the caller must get from `method` on the route filled with B's objects."""
    if route.kind == "api":
        return _expect_api(route, method, caller)
    if route.kind == "page":
        return _expect_page(route, method, caller)
    return _expect_admin(route, method, caller)


def _expect_api(route: Route, method: str, caller: Caller) -> Expect:
    if caller.org is None or caller.role == "revoked":
        return Expect(frozenset({401}))
    if "org" in route.params and caller.org == "A":
        return Expect(frozenset({404}))  # SPEC §9: cross-org access answers 404
    need = API_NEEDS[route.name]["GET" if method == "HEAD" else method]
    if caller.role in need:
        if route.name == "api-user-token" and caller.org == "A":
            return Expect(frozenset({404}))  # someone else's token
        return Expect(OK[method])
    return Expect(frozenset({API_REFUSAL.get((route.name, caller.role), 403)}))


def _expect_page(route: Route, method: str, caller: Caller) -> Expect:
    if caller.org is None or caller.role in ("team", "revoked"):
        return Expect(frozenset({302}), login_redirect="/login/")
    needs = PAGE_NEEDS[route.name]
    if method not in needs:
        return Expect(frozenset({405}))
    if "org" in route.params and caller.org == "A":
        return Expect(frozenset({404}))
    if caller.role in needs[method]:
        if route.name in SHOWN_ONCE:
            return Expect(frozenset({302}))
        return Expect(OK[method] if method == "GET" else frozenset({200, 302, 400}))
    return Expect(frozenset({403}))


def _expect_admin(route: Route, method: str, caller: Caller) -> Expect:
    if caller.org is None or caller.role in ("team", "revoked", "personal"):
        # Members are not admin users: the admin sends them to its sign-in page.
        return Expect(frozenset({302}), login_redirect="/admin/login/")
    found = _admin_model(route)
    if found is None:
        key = route.name if route.name in ADMIN_SITE_PAGES else route.route
        statuses = ADMIN_SITE_PAGES[key]
        return Expect(statuses if method == "GET" else statuses | {405})
    _model, model_admin = found
    action = _admin_action(route)
    if action == "redirect":
        return Expect(frozenset({302}))  # to the change page, which is checked on its own
    if not isinstance(model_admin, OrgScopedAdmin | ScopedUserAdmin):
        return Expect(frozenset({302, 403}))  # superusers only
    if caller.org == "A":
        if action in ("changelist", "add"):
            return Expect(frozenset({200, 302, 403}))  # their own organization's objects only
        return Expect(frozenset({302, 403, 404}))  # B's object does not exist for them
    if action in ("changelist", "change", "history") and method == "GET":
        return Expect(frozenset({200}))
    if caller.role == "auditor" and action in ("add", "delete", "password"):
        return Expect(frozenset({403}))
    if caller.role == "auditor" and action == "change":
        return Expect(frozenset({403}))  # POST: view only
    return Expect(frozenset({200, 302, 403}))


# --- coverage -----------------------------------------------------------------------------------
def _coverage_problem(route: Route) -> str | None:
    """Why the matrix cannot cover this route, or None when it does."""
    known = set(_PARAM_NAMES)
    unknown = [p for p in route.params if p not in known]
    if unknown:
        return f"no value of B for path parameter(s) {unknown}"
    if route.kind == "api":
        if route.name not in API_NEEDS:
            return "no same-org role expectations in API_NEEDS"
        table = {"GET" if m == "HEAD" else m for m in _api_methods(route)}
        if table != set(API_NEEDS[route.name]):
            return f"methods {sorted(table)} differ from API_NEEDS {sorted(API_NEEDS[route.name])}"
        return None
    if route.kind == "page":
        return None if route.name in PAGE_NEEDS else "no role expectations in PAGE_NEEDS"
    found = _admin_model(route)
    if found is None:
        if route.name in ADMIN_SITE_PAGES or route.route in ADMIN_SITE_PAGES:
            return None
        return "an admin page that is neither a model's nor in ADMIN_SITE_PAGES"
    if found[1] is None:
        return "an admin model URL without a registered ModelAdmin"
    return None


_PARAM_NAMES = (
    "org",
    "issuer_id",
    "policy_id",
    "project",
    "env",
    "name",
    "token_id",
    "event_id",
    "session",
    "tag",
    "role_id",
    "version",
    "fmt",
    "index",
    "id",
    "content_type_id",
    "object_id",
    "app_label",
    "url",
    "action",
    "membership_id",
    "team_id",
    "user_id",
)

ROUTES = list(walk_urls())
MATRIX_ROUTES = [r for r in ROUTES if allow_listed(r) is None]


def test_every_url_pattern_is_covered_or_allow_listed() -> None:
    problems = {r.route: p for r in MATRIX_ROUTES if (p := _coverage_problem(r)) is not None}
    assert problems == {}, "describe these URL patterns in the matrix or allow-list them"
    allowed = [r for r in ROUTES if allow_listed(r) is not None]
    print(
        f"\nURL patterns: {len(ROUTES)} found, {len(MATRIX_ROUTES)} covered, "
        f"{len(allowed)} allow-listed"
    )


def test_the_walk_finds_every_app() -> None:
    """The walk reaches nested resolvers: API, pages, namespaced apps and the admin."""
    names = {r.name for r in ROUTES}
    assert {"api-esc-session", "issuers:detail", "tokens:event", "admin:index"} <= names
    assert any(r.name.startswith("admin:issuers_issuer_") for r in ROUTES)


# --- the matrix ---------------------------------------------------------------------------------
@pytest.fixture
def world(outbound: Outbound) -> World:
    return build_world(outbound)


def _values_for(world: World, route: Route) -> dict[str, str]:
    values = dict(world.values)
    if route.name == "api-user-token":
        values["token_id"] = world.member_token_id
    found = _admin_model(route)
    if found is not None:
        model = found[0]
        obj = world.b.admin if model is User else world.objects.get(model)
        values["object_id"] = str(obj.pk) if obj is not None else "1"
    return values


def _extra_form(world: World) -> dict[str, str]:
    """Form fields naming B's own objects, so a cross-org POST would really change something."""
    return {
        "grantee": f"team:{world.b.team.pk}",
        "team": world.b.team.name,
        "index": "0",
        "user": str(world.b.member.pk),
    }


def _check_cell(world: World, route: Route, method: str, caller: Caller, url: str) -> None:
    expected = expect(route, method, caller)
    before = snapshot(world.b.organization) if caller.org != "B" and method != "GET" else None
    with transaction.atomic():
        client = _client(world, caller, route.kind)
        response = _call(client, route, method, url, _extra_form(world))
        body = _body_text(response)
        cell = f"{method} {url} as {caller.label}"
        assert response.status_code in expected.statuses, (
            f"{cell}: {response.status_code}, expected {sorted(expected.statuses)}: {body[:300]}"
        )
        if expected.login_redirect and response.status_code == 302:
            assert response["Location"].startswith(expected.login_redirect), cell
        if caller.org != "B":
            assert MARK not in body.lower(), f"{cell}: B's data in the response"
            for name, value in response.items():
                assert MARK not in value.lower(), f"{cell}: B's data in header {name}"
        _assert_security_headers(response, cell)
        if before is not None:
            assert snapshot(world.b.organization) == before, f"{cell} changed B's rows"
        transaction.set_rollback(True)


@pytest.mark.parametrize("route", MATRIX_ROUTES, ids=lambda r: r.route or "/")
def test_tenant_matrix(world: World, route: Route) -> None:
    if _coverage_problem(route) is not None:
        pytest.fail(f"{route.route} is not described: see the coverage test")
    url = route.url(_values_for(world, route))
    for method in methods_of(route):
        for caller in CALLERS:
            _check_cell(world, route, method, caller, url)


def test_markers_are_visible_to_their_own_organization(world: World) -> None:
    """The marker search can fail: B's own admin does see B's marked data on the same URLs."""
    values = world.values
    org = values["org"]
    urls = [
        f"/api/orgs/{org}/oidc/issuers/{values['issuer_id']}",
        f"/api/orgs/{org}/oidc/exchanges/{values['event_id']}",
        f"/api/esc/environments/{org}/{PROJECT}/{ENV}/open/{values['session']}",
        f"/api/orgs/{org}/teams",
    ]
    for url in urls:
        client = _client(world, Caller("B", "admin"), "api")
        response = client.get(url)
        assert response.status_code == 200 and MARK in _body_text(response), url
    client = _client(world, Caller("B", "admin"), "page")
    response = client.get(f"/orgs/{org}/issuers/{values['issuer_id']}/")
    assert response.status_code == 200 and MARK in _body_text(response)


def test_cross_org_write_would_be_seen(world: World) -> None:
    """The snapshot notices a change to B's rows (so "unchanged" means something)."""
    before = snapshot(world.b.organization)
    Issuer.objects.filter(organization=world.b.organization).update(name=f"{MARK}-renamed")
    assert snapshot(world.b.organization) != before


def test_print_matrix_size() -> None:
    """The number of cells the matrix runs (printed with -s)."""
    per_route = 0
    for route in MATRIX_ROUTES:
        per_route += len(methods_of(route)) * len(CALLERS)
    print(f"\ntenant matrix: {len(MATRIX_ROUTES)} URL patterns, {per_route} cells")
    assert per_route > 1000


# --- security headers ---------------------------------------------------------------------------
def _assert_security_headers(response: Any, where: str) -> None:
    csp = response.get("Content-Security-Policy", "")
    directives = {
        d.strip().split(" ", 1)[0]: d.strip() for d in csp.split(";") if d.strip()
    }
    script = directives.get("script-src") or directives.get("default-src", "")
    assert script, f"{where}: no CSP script-src/default-src"
    assert "'unsafe-inline'" not in script and "'unsafe-eval'" not in script, where
    assert response.get("X-Content-Type-Options") == "nosniff", where
    assert response.get("Referrer-Policy"), where
    frame = directives.get("frame-ancestors", "")
    assert response.get("X-Frame-Options") in ("DENY", "SAMEORIGIN") or frame, where


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.route or "/")
def test_security_headers(world: World, route: Route) -> None:
    """Every URL pattern, allow-listed or not, answers with the security headers."""
    values = _values_for(world, route)
    try:
        url = route.url(values)
    except KeyError:
        url = route.url({p: "x" for p in route.params})
    for caller in (Caller("B", "admin"), Caller(None, "anonymous")):
        client = _client(world, caller, route.kind)
        method = "POST" if route.name == "oauth-token" else "GET"
        response = client.generic(method, url)
        _assert_security_headers(response, f"{method} {url} as {caller.label}")


def test_header_check_refuses_inline_script() -> None:
    """The header check itself fails on a policy that allows inline script."""
    from django.http import HttpResponse

    response = HttpResponse()
    response["Content-Security-Policy"] = "default-src 'self'; script-src 'self' 'unsafe-inline'"
    response["X-Content-Type-Options"] = "nosniff"
    response["Referrer-Policy"] = "same-origin"
    response["X-Frame-Options"] = "DENY"
    with pytest.raises(AssertionError):
        _assert_security_headers(response, "test")
