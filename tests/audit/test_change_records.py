"""Every write service of issuers, policies, tokens and sign-in records exactly one audit record,
in the change's own transaction: the event, the object, the actor and a diff without secrets; a
refused or failed change records nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from django.db import IntegrityError, transaction
from django.test import Client

from audit.context import Actor, acting_as
from audit.models import AuditEvent
from devtools.issuer import DevIssuer
from issuers.errors import IssuerConflict, IssuerInvalid
from issuers.models import Issuer
from issuers.services import (
    Outbound,
    issuer_regenerate_thumbprints,
    issuer_update,
)
from kernel.errors import PreconditionFailed
from policies.drafts import draft_discard, draft_publish, draft_restart, draft_stage
from policies.errors import DraftChanged, PolicyInvalid
from policies.models import AuthPolicy, PolicyDraft
from policies.registration import issuer_register
from policies.services import policy_rollback, policy_update
from signin.configuration import (
    mapping_delete,
    mapping_save,
    provider_delete,
    provider_save,
    sign_in_policy_save,
)
from signin.models import GroupMapping, IdentityProvider, OrganizationSignInPolicy
from signin.services import roles_apply
from tests.factories import PASSWORD, MembershipFactory, UserFactory
from tokens.errors import InvalidAccessToken, TokenInvalid
from tokens.filters import TokenFilters
from tokens.models import AccessToken
from tokens.retirement import issuer_delete, issuer_update_revoking
from tokens.services import (
    token_create,
    token_create_for_organization,
    token_create_personal,
    token_revoke,
    tokens_revoke_matching,
)
from trustportal.models import Membership, Organization, Role, User

pytestmark = pytest.mark.django_db

ACTOR = Actor(
    kind="user",
    user_id=4242,
    username="carol",
    client_ip="192.0.2.7",
    user_agent="audit-test",
    request_id="req-audit-1",
)
CERT_CHANGED = datetime(2026, 1, 2, tzinfo=UTC)
ALLOW = {
    "decision": "allow",
    "tokenType": "organization",
    "authorizedPermissions": ["standard"],
    "rules": {"sub": "repo:acme/infra:ref:refs/heads/main"},
}


@dataclass
class World:
    org: Organization
    local_issuer: DevIssuer
    outbound: Outbound

    def issuer(self, name: str = "dev") -> Issuer:
        return issuer_register(
            organization=self.org, url=self.local_issuer.url, name=name, outbound=self.outbound
        )

    def policy(self) -> AuthPolicy:
        return AuthPolicy.objects.get(issuer=self.issuer())

    def token(self, **kwargs: Any) -> AccessToken:
        fields = {"organization": self.org, "name": "ci", **kwargs}
        return token_create(token_type="organization", **fields)[0]

    def provider(self) -> IdentityProvider:
        return IdentityProvider.objects.create(
            organization=self.org, name="Okta", issuer="https://acme.okta.example", client_id="x"
        )


@pytest.fixture
def world(org: Organization, local_issuer: DevIssuer, outbound: Outbound) -> World:
    return World(org, local_issuer, outbound)


@dataclass(frozen=True)
class Expected:
    event: str
    object_type: str
    object_id: Callable[[Any], str]  # from what `write` returned
    changes: dict[str, list[Any]]  # a subset of the record's diff


# Each case: (prepare the objects, unrecorded) -> (the write, returning what identifies the object).
Case = Callable[[World], Callable[[], Any]]


def _pk(value: Any) -> str:
    return str(value.pk)


def _issuer_register(w: World) -> Callable[[], Any]:
    return lambda: w.issuer("registered")


def _issuer_rename(w: World) -> Callable[[], Any]:
    issuer = w.issuer()
    return lambda: issuer_update(issuer=issuer, data={"name": "renamed"}, outbound=w.outbound)


def _issuer_disable(w: World) -> Callable[[], Any]:
    issuer = w.issuer()
    data = {"name": "dev", "enabled": False}
    return lambda: issuer_update(issuer=issuer, data=data, outbound=w.outbound)


def _issuer_enable(w: World) -> Callable[[], Any]:
    issuer = w.issuer()
    Issuer.objects.filter(pk=issuer.pk).update(enabled=False)
    issuer.refresh_from_db()
    data = {"name": "dev", "enabled": True}
    return lambda: issuer_update(issuer=issuer, data=data, outbound=w.outbound)


def _issuer_disable_revoking(w: World) -> Callable[[], Any]:
    issuer = w.issuer()
    minted = w.token()
    AccessToken.objects.filter(pk=minted.pk).update(issuer_id=issuer.pk)
    data = {"name": "dev", "enabled": False}
    return lambda: issuer_update_revoking(
        issuer=issuer, data=data, revoke=True, outbound=w.outbound
    )[0]


def _issuer_delete(w: World) -> Callable[[], Any]:
    issuer = w.issuer()
    pk = issuer.pk

    def write() -> Any:
        issuer_delete(issuer=issuer)
        issuer.pk = pk  # delete() forgets it
        return issuer

    return write


def _issuer_thumbprints(w: World) -> Callable[[], Any]:
    issuer = w.issuer()
    Issuer.objects.filter(pk=issuer.pk).update(cert_changed_at=CERT_CHANGED)
    issuer.refresh_from_db()
    return lambda: issuer_regenerate_thumbprints(issuer=issuer, outbound=w.outbound)


def _policy_update(w: World) -> Callable[[], Any]:
    policy = w.policy()
    return lambda: policy_update(policy=policy, definitions=[ALLOW], expected_version=1)[0]


def _policy_rollback(w: World) -> Callable[[], Any]:
    policy = w.policy()
    policy_update(policy=policy, definitions=[ALLOW])
    return lambda: policy_rollback(policy=policy, version=1, expected_version=2)[0]


def _draft_stage(w: World) -> Callable[[], Any]:
    policy = w.policy()
    return lambda: (
        draft_stage(policy=policy, definitions=[ALLOW], expected_revision=0, note="allow main")[
            0
        ].policy
    )


def _draft_publish(w: World) -> Callable[[], Any]:
    policy = w.policy()
    draft = draft_stage(policy=policy, definitions=[ALLOW], expected_revision=0, note="x")[0]
    return lambda: draft_publish(policy=policy, expected_revision=draft.revision)[0]


def _draft_discard(w: World) -> Callable[[], Any]:
    policy = w.policy()
    draft = draft_stage(policy=policy, definitions=[ALLOW], expected_revision=0, note="x")[0]

    def write() -> Any:
        draft_discard(policy=policy, expected_revision=draft.revision)
        return policy

    return write


def _draft_restart(w: World) -> Callable[[], Any]:
    policy = w.policy()
    draft = draft_stage(policy=policy, definitions=[ALLOW], expected_revision=0, note="x")[0]
    policy_update(policy=policy, definitions=[])
    return lambda: draft_restart(policy=policy, expected_revision=draft.revision).policy


def _token_standard(w: World) -> Callable[[], Any]:
    return lambda: token_create_for_organization(
        organization=w.org, token_type="organization", name="deploy", permission="standard"
    )[0]


def _token_admin(w: World) -> Callable[[], Any]:
    return lambda: token_create_for_organization(
        organization=w.org, token_type="organization", name="root", permission="admin"
    )[0]


def _token_revoke(w: World) -> Callable[[], Any]:
    token = w.token()
    w.token(parent=token)

    def write() -> Any:
        token_revoke(token=token, reason="leaked")
        return token

    return write


def _tokens_revoke_matching(w: World) -> Callable[[], Any]:
    w.token()
    w.token()
    return lambda: tokens_revoke_matching(
        organization=w.org, filters=TokenFilters(type="organization"), by=None, reason="sweep"
    )


def _role_change(w: World) -> Callable[[], Any]:
    provider = w.provider()
    GroupMapping.objects.create(provider=provider, group="ops", organization=w.org, role="admin")
    user = UserFactory(username="dana")

    def write() -> Any:
        roles_apply(user, provider, {"ops"})
        return user

    return write


def _provider_create(w: World) -> Callable[[], Any]:
    provider = IdentityProvider(
        organization=w.org, name="Okta", issuer="https://acme.okta.example", client_id="x"
    )
    return lambda: provider_save(provider=provider, client_secret="the-client-secret")


def _provider_new_secret(w: World) -> Callable[[], Any]:
    provider = provider_save(provider=w.provider(), client_secret="the-old-secret")
    provider.scopes = "openid email"
    return lambda: provider_save(provider=provider, client_secret="the-client-secret")


def _provider_delete(w: World) -> Callable[[], Any]:
    provider = w.provider()
    pk = provider.pk

    def write() -> Any:
        provider_delete(provider=provider)
        provider.pk = pk
        return provider

    return write


def _mapping_create(w: World) -> Callable[[], Any]:
    mapping = GroupMapping(provider=w.provider(), group="ops", organization=w.org, role="admin")
    return lambda: mapping_save(mapping=mapping)


def _mapping_delete(w: World) -> Callable[[], Any]:
    mapping = GroupMapping.objects.create(
        provider=w.provider(), group="ops", organization=w.org, role="admin"
    )
    pk = mapping.pk

    def write() -> Any:
        mapping_delete(mapping=mapping)
        mapping.pk = pk
        return mapping

    return write


def _sign_in_policy(w: World) -> Callable[[], Any]:
    policy = OrganizationSignInPolicy(organization=w.org, require_sso=True)
    return lambda: sign_in_policy_save(policy=policy)


CASES: dict[str, tuple[Case, Expected]] = {
    "issuer register": (
        _issuer_register,
        Expected("issuer-registered", "issuer", _pk, {"name": [None, "registered"]}),
    ),
    "issuer rename": (
        _issuer_rename,
        Expected("issuer-updated", "issuer", _pk, {"name": ["dev", "renamed"]}),
    ),
    "issuer disable": (
        _issuer_disable,
        Expected("issuer-disabled", "issuer", _pk, {"enabled": [True, False]}),
    ),
    "issuer enable": (
        _issuer_enable,
        Expected("issuer-enabled", "issuer", _pk, {"enabled": [False, True]}),
    ),
    "issuer disable revoking": (
        _issuer_disable_revoking,
        Expected(
            "issuer-disabled",
            "issuer",
            _pk,
            {"enabled": [True, False], "tokens_revoked": [None, 1]},
        ),
    ),
    "issuer delete": (
        _issuer_delete,
        Expected("issuer-deleted", "issuer", _pk, {"name": ["dev", None]}),
    ),
    "issuer thumbprints": (
        _issuer_thumbprints,
        Expected(
            "issuer-thumbprints-regenerated",
            "issuer",
            _pk,
            {"cert_changed_at": [str(CERT_CHANGED), None]},
        ),
    ),
    "policy update": (
        _policy_update,
        Expected(
            "policy-published", "policy", _pk, {"version": [1, 2], "definitions": [[], [ALLOW]]}
        ),
    ),
    "policy rollback": (
        _policy_rollback,
        Expected(
            "policy-published", "policy", _pk, {"version": [2, 3], "definitions": [[ALLOW], []]}
        ),
    ),
    "draft stage": (
        _draft_stage,
        Expected(
            "policy-draft-updated",
            "policy",
            _pk,
            {"definitions": [[], [ALLOW]], "base_version": [None, 1]},
        ),
    ),
    "draft publish": (
        _draft_publish,
        Expected(
            "policy-published", "policy", _pk, {"version": [1, 2], "definitions": [[], [ALLOW]]}
        ),
    ),
    "draft discard": (
        _draft_discard,
        Expected("policy-draft-discarded", "policy", _pk, {"definitions": [[ALLOW], None]}),
    ),
    "draft restart": (
        _draft_restart,
        Expected("policy-draft-restarted", "policy", _pk, {"base_version": [1, 2]}),
    ),
    "token create": (
        _token_standard,
        Expected("token-created", "token", _pk, {"permission": [None, "standard"]}),
    ),
    "admin token create": (
        _token_admin,
        Expected("admin-token-created", "token", _pk, {"permission": [None, "admin"]}),
    ),
    "token revoke": (
        _token_revoke,
        Expected(
            "token-revoked",
            "token",
            _pk,
            {"revoked": [False, True], "descendants_revoked": [None, 1]},
        ),
    ),
    "tokens revoke by filter": (
        _tokens_revoke_matching,
        Expected(
            "tokens-revoked",
            "token",
            lambda _: "",
            {"tokens_revoked": [None, 2], "filters": [None, {"type": "organization"}]},
        ),
    ),
    "role change": (
        _role_change,
        Expected("signin-role-changed", "user", _pk, {"role": [None, "admin"]}),
    ),
    "provider create": (
        _provider_create,
        Expected(
            "signin-provider-created",
            "signin-provider",
            _pk,
            {"name": [None, "Okta"], "client_secret_sealed": [None, "[secret]"]},
        ),
    ),
    "provider new secret": (
        _provider_new_secret,
        Expected(
            "signin-provider-updated",
            "signin-provider",
            _pk,
            {
                "scopes": ["openid email profile", "openid email"],
                "client_secret_sealed": ["[secret]", "[secret]"],
            },
        ),
    ),
    "provider delete": (
        _provider_delete,
        Expected("signin-provider-deleted", "signin-provider", _pk, {"name": ["Okta", None]}),
    ),
    "mapping create": (
        _mapping_create,
        Expected("signin-mapping-created", "signin-mapping", _pk, {"role": [None, "admin"]}),
    ),
    "mapping delete": (
        _mapping_delete,
        Expected("signin-mapping-deleted", "signin-mapping", _pk, {"group": ["ops", None]}),
    ),
    "sign-in policy": (
        _sign_in_policy,
        Expected("signin-policy-created", "signin-policy", _pk, {"require_sso": [None, True]}),
    ),
}
SECRETS = ("the-client-secret", "the-old-secret")


def _after(mark: int) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(pk__gt=mark).order_by("pk"))


def _mark() -> int:
    last = AuditEvent.objects.order_by("-pk").first()
    return last.pk if last is not None else 0


@pytest.mark.parametrize("name", list(CASES))
def test_each_write_records_one_change_with_its_actor_and_diff(world: World, name: str) -> None:
    prepare, expected = CASES[name]
    write = prepare(world)
    mark = _mark()
    with acting_as(ACTOR):
        result = write()
    records = _after(mark)
    assert [r.event for r in records] == [expected.event]
    record = records[0]
    assert (record.object_type, record.object_id) == (
        expected.object_type,
        expected.object_id(result),
    )
    assert record.organization_id == world.org.pk
    assert record.category == "change" and record.description
    for field, change in expected.changes.items():
        assert record.changes.get(field) == change, (field, record.changes)
    stored = json.dumps(record.changes) + record.description + record.object_repr
    for secret in SECRETS:
        assert secret not in stored
    assert "token_hash" not in record.changes and "client_secret_sealed" not in stored.replace(
        '"client_secret_sealed"', ""
    )
    if expected.event == "signin-role-changed":  # applied by the sign-in of the person concerned
        assert (record.actor_user_id, record.actor_username) == (result.pk, "dana")
    else:
        assert (record.actor_kind, record.actor_user_id, record.actor_username) == (
            "user",
            4242,
            "carol",
        )
    assert (record.client_ip, record.user_agent, record.request_id) == (
        "192.0.2.7",
        "audit-test",
        "req-audit-1",
    )


class _AfterTheChange(Exception):
    pass


@pytest.mark.parametrize("name", list(CASES))
def test_a_transaction_failing_after_the_change_keeps_no_record(world: World, name: str) -> None:
    """The record is written in the change's transaction: when it rolls back, so does the record."""
    prepare, _ = CASES[name]
    write = prepare(world)
    mark = _mark()

    def change_then_fail() -> None:
        with transaction.atomic():
            write()
            assert len(_after(mark)) == 1
            raise _AfterTheChange()

    with pytest.raises(_AfterTheChange):
        change_then_fail()
    assert _after(mark) == []


# Each refusal: (prepare, unrecorded) -> the write that must be refused.
Refusal = Callable[[World], Callable[[], Any]]


def _refused_register_conflict(w: World) -> Callable[[], Any]:
    w.issuer("dev")
    return lambda: issuer_register(
        organization=w.org, url=w.local_issuer.url, name="dev", outbound=w.outbound
    )


def _refused_issuer_update(w: World) -> Callable[[], Any]:
    issuer = w.issuer()
    data = {"name": "dev", "maxExpiration": 5}
    return lambda: issuer_update(issuer=issuer, data=data, outbound=w.outbound)


def _refused_stale_policy_update(w: World) -> Callable[[], Any]:
    policy = w.policy()
    return lambda: policy_update(policy=policy, definitions=[ALLOW], expected_version=7)


def _refused_stale_rollback(w: World) -> Callable[[], Any]:
    policy = w.policy()
    policy_update(policy=policy, definitions=[ALLOW])
    return lambda: policy_rollback(policy=policy, version=1, expected_version=1)


def _refused_invalid_definitions(w: World) -> Callable[[], Any]:
    policy = w.policy()
    return lambda: draft_stage(
        policy=policy, definitions=[{"decision": "maybe"}], expected_revision=0, note=""
    )


def _refused_stale_publish(w: World) -> Callable[[], Any]:
    policy = w.policy()
    draft_stage(policy=policy, definitions=[ALLOW], expected_revision=0, note="x")
    return lambda: draft_publish(policy=policy, expected_revision=0)


def _refused_stale_discard(w: World) -> Callable[[], Any]:
    policy = w.policy()
    draft_stage(policy=policy, definitions=[ALLOW], expected_revision=0, note="x")
    return lambda: draft_discard(policy=policy, expected_revision=0)


def _refused_token_name(w: World) -> Callable[[], Any]:
    return lambda: token_create_for_organization(
        organization=w.org, token_type="organization", name=" "
    )


def _refused_revoked_parent(w: World) -> Callable[[], Any]:
    parent = w.token()
    AccessToken.objects.filter(pk=parent.pk).update(revoked_reason="x", revoked_at=parent.created)
    return lambda: w.token(parent=parent)


def _refused_personal_description(w: World) -> Callable[[], Any]:
    user = UserFactory()
    return lambda: token_create_personal(user=user, description="x" * 1001)


def _refused_unfiltered_revocation(w: World) -> Callable[[], Any]:
    return lambda: tokens_revoke_matching(
        organization=w.org, filters=TokenFilters(), by=None, reason=""
    )


def _refused_duplicate_provider(w: World) -> Callable[[], Any]:
    first = w.provider()
    twin = IdentityProvider(
        organization=w.org, name="Twin", issuer=first.issuer, client_id=first.client_id
    )
    return lambda: provider_save(provider=twin, client_secret="the-client-secret")


REFUSALS: dict[str, tuple[Refusal, type[Exception]]] = {
    "issuer register conflict": (_refused_register_conflict, IssuerConflict),
    "issuer update invalid": (_refused_issuer_update, IssuerInvalid),
    "policy update stale": (_refused_stale_policy_update, PreconditionFailed),
    "policy rollback stale": (_refused_stale_rollback, PreconditionFailed),
    "draft stage invalid": (_refused_invalid_definitions, PolicyInvalid),
    "draft publish stale": (_refused_stale_publish, DraftChanged),
    "draft discard stale": (_refused_stale_discard, DraftChanged),
    "token name missing": (_refused_token_name, TokenInvalid),
    "token under a revoked parent": (_refused_revoked_parent, InvalidAccessToken),
    "personal token description": (_refused_personal_description, TokenInvalid),
    "revocation without filter": (_refused_unfiltered_revocation, ValueError),
    "duplicate provider": (_refused_duplicate_provider, IntegrityError),
}


@pytest.mark.parametrize("name", list(REFUSALS))
def test_a_refused_write_records_nothing(world: World, name: str) -> None:
    prepare, error = REFUSALS[name]
    write = prepare(world)
    mark = _mark()
    with pytest.raises(error):
        write()
    assert _after(mark) == []


def test_the_rollback_publishes_only_over_the_version_it_was_given(world: World) -> None:
    policy = world.policy()
    policy_update(policy=policy, definitions=[ALLOW])
    with pytest.raises(PreconditionFailed):
        policy_rollback(policy=policy, version=1, expected_version=1)
    assert AuthPolicy.objects.get(pk=policy.pk).version == 2


def test_a_write_that_changes_nothing_records_nothing(world: World) -> None:
    issuer = world.issuer()
    token = world.token()
    token_revoke(token=token)
    provider = world.provider()
    user = UserFactory()
    mark = _mark()
    issuer_update(issuer=issuer, data={"name": "dev"}, outbound=world.outbound)
    assert token_revoke(token=token) is False
    provider_save(provider=provider)
    roles_apply(user, provider, set())
    assert _after(mark) == []


def test_the_personal_token_and_a_role_lost_are_recorded(world: World) -> None:
    user = cast(User, UserFactory(username="erin"))
    provider = world.provider()
    GroupMapping.objects.create(
        provider=provider, group="ops", organization=world.org, role="admin"
    )
    MembershipFactory(organization=world.org, user=user, role=Role.MEMBER)
    mark = _mark()
    token, plaintext = token_create_personal(user=user)
    roles_apply(user, provider, set())
    personal, lost = _after(mark)
    assert (personal.event, personal.organization_id, personal.object_id) == (
        "token-created",
        None,
        str(token.pk),
    )
    assert plaintext not in json.dumps(personal.changes)
    assert (lost.event, lost.changes["role"]) == ("signin-role-changed", ["member", None])
    assert not Membership.objects.filter(organization=world.org, user=user).exists()


def test_an_admin_token_can_be_subscribed_to_alone(world: World) -> None:
    from notifications.services import subscribers, webhook_create

    hook = webhook_create(
        organization=world.org,
        values={
            "displayName": "Admin tokens",
            "payloadUrl": "https://hooks.example/x",
            "filters": ["admin-token-created"],
        },
    )
    mark = _mark()
    token_create_for_organization(
        organization=world.org, token_type="organization", name="a", permission="admin"
    )
    token_create_for_organization(organization=world.org, token_type="organization", name="b")
    admin, standard = _after(mark)
    assert subscribers(admin) == [hook] and subscribers(standard) == []


@pytest.mark.parametrize(
    ("page", "object_type"),
    [("issuer", "issuer"), ("policy", "policy"), ("token", "token")],
)
def test_the_object_pages_link_their_history(world: World, page: str, object_type: str) -> None:
    MembershipFactory(organization=world.org, role=Role.ADMIN, user__username="admin")
    browser = Client()
    assert browser.login(username="admin", password=PASSWORD)
    issuer = world.issuer()
    token = world.token()
    pk, url = {
        "issuer": (issuer.pk, f"/orgs/acme/issuers/{issuer.pk}/"),
        "policy": (issuer.policy.pk, f"/orgs/acme/policies/{issuer.pk}/"),
        "token": (token.pk, f"/orgs/acme/tokens/{token.pk}/"),
    }[page]
    html = browser.get(url).content.decode()
    link = f"/orgs/acme/audit/?object_type={object_type}&amp;object_id={pk}"
    assert link in html, html[:2000]
    history = browser.get(link.replace("&amp;", "&")).content.decode()
    assert ("issuer-registered" if page != "token" else "token-created") in history


def _state() -> list[list[dict[str, Any]]]:
    """Every row a write service here may change."""
    models = (
        Issuer,
        AuthPolicy,
        PolicyDraft,
        AccessToken,
        IdentityProvider,
        GroupMapping,
        OrganizationSignInPolicy,
        Membership,
    )
    return [list(model.objects.order_by("pk").values()) for model in models]


class _RecordFailed(Exception):
    pass


@pytest.mark.parametrize("name", list(CASES))
def test_a_change_whose_record_fails_is_undone(
    world: World, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The record and the change commit together: a change is never left without its record."""
    prepare, _ = CASES[name]
    write = prepare(world)
    before = _state()

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise _RecordFailed()

    monkeypatch.setattr(AuditEvent, "save", refuse)
    with pytest.raises(_RecordFailed):
        write()
    assert _state() == before
