"""Access tokens: list, create by hand (shown once), revoke one or by filter; pages, API, CLI."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any
from urllib.parse import urlencode

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from issuers.models import Issuer
from tests.conftest import auth
from tests.factories import RunnerFactory, TeamFactory, make_event, make_token
from tests.tokens.conftest import AUDIENCE, exchange_body, signed_in
from tokens.filters import token_filters_from
from tokens.format import hash_token
from tokens.models import AccessToken
from tokens.selectors import revocation_preview, tokens_matching
from tokens.services import token_create, tokens_revoke_matching
from trustportal.models import Organization

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
POLICY = uuid.uuid4()


def exchanged(
    organization: Organization,
    *,
    issuer: Issuer | None,
    subject: str,
    version: int = 1,
    policy: uuid.UUID = POLICY,
    created: datetime = T0,
    expires: datetime | None = None,
    definition: int | None = None,
    claims: dict[str, Any] | None = None,
) -> tuple[AccessToken, str]:
    """A token as an exchange mints it, with its event (for repository and definition filters)."""
    token, plaintext = token_create(
        token_type="organization",
        organization=organization,
        now=created,
        expires=expires or timezone.now() + timedelta(hours=1),
    )
    AccessToken.objects.filter(pk=token.pk).update(
        issuer=issuer, subject=subject, policy_id=policy, policy_version=version
    )
    make_event(
        organization,
        created=created,
        issuer=issuer,
        decision="allow",
        reason="allowed",
        sub=subject,
        claims=claims or {},
        token=token,
        policy_id=policy,
        policy_version=version,
        trace=[{"index": definition or 0, "decision": "allow", "applies": True, "rules": []}],
    )
    token.refresh_from_db()
    return token, plaintext


@pytest.fixture
def mixed(people) -> dict[str, Any]:
    """acme's tokens from two issuers, policy versions, repositories and times; one of beta."""
    acme = people["acme"]
    gh = Issuer.objects.create(organization=acme, name="gh", url="https://gh", issuer="https://gh")
    gl = Issuer.objects.create(organization=acme, name="gl", url="https://gl", issuer="https://gl")
    tokens = {
        "infra_main": exchanged(acme, issuer=gh, subject="repo:acme/infra:ref:refs/heads/main"),
        "infra_pr": exchanged(
            acme, issuer=gh, subject="repo:acme/infra:pull_request", version=2, definition=3
        ),
        "app": exchanged(
            acme,
            issuer=gh,
            subject="repo:acme/app:environment:prod",
            version=2,
            created=T0 + timedelta(days=2),
        ),
        "custom_sub": exchanged(  # a customised GitHub sub: only the claim names the repository
            acme,
            issuer=gh,
            subject="acme:deploy:prod",
            claims={"repository": "acme/infra"},
            created=T0 + timedelta(days=3),
        ),
        "gitlab": exchanged(acme, issuer=gl, subject="project_path:acme/infra:ref:main"),
        "expired": exchanged(
            acme, issuer=gh, subject="repo:acme/infra:old", expires=T0 + timedelta(hours=2)
        ),
    }
    revoked, _ = exchanged(acme, issuer=gh, subject="repo:acme/infra:revoked")
    AccessToken.objects.filter(pk=revoked.pk).update(revoked_at=T0)
    manual, _ = token_create(token_type="organization", organization=acme, name="deploy bot")
    other, _ = token_create(token_type="organization", organization=people["beta"])
    AccessToken.objects.filter(pk=other.pk).update(issuer=gh, subject="repo:acme/infra:x")
    rows: dict[str, Any] = {name: token for name, (token, _plain) in tokens.items()}
    rows.update(revoked=revoked, manual=manual, beta=other, gh=gh, gl=gl)
    return rows


def names(mixed: dict[str, Any], tokens: Any) -> set[str]:
    by_id = {t.pk: name for name, t in mixed.items() if isinstance(t, AccessToken)}
    return {by_id[t.pk] for t in tokens}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "active"}, {"infra_main", "infra_pr", "app", "custom_sub", "gitlab", "manual"}),
        ({"status": "expired"}, {"expired"}),
        ({"status": "revoked"}, {"revoked"}),
        ({"subject": "repo:acme/infra:*"}, {"infra_main", "infra_pr", "expired", "revoked"}),
        (
            {"repository": "acme/infra", "status": "active"},
            {"infra_main", "infra_pr", "custom_sub"},
        ),
        ({"repository": "acme/a*"}, {"app"}),
        ({"version": "2"}, {"infra_pr", "app"}),
        ({"policy": str(POLICY), "version": "2", "definition": "3"}, {"infra_pr"}),
        ({"since": "2026-03-02"}, {"app", "custom_sub", "manual"}),  # manual: created now
        ({"until": "2026-03-01", "status": "active"}, {"infra_main", "infra_pr", "gitlab"}),
        ({"type": "team"}, set()),
    ],
)
def test_one_selector_for_every_filter(mixed, people, params, expected) -> None:
    filters = token_filters_from(params)
    found = tokens_matching(organization=people["acme"], filters=filters, now=timezone.now())
    assert names(mixed, found) == expected


def test_issuer_filter_and_other_orgs(mixed, people) -> None:
    filters = token_filters_from({"issuer": str(mixed["gl"].pk)})
    found = tokens_matching(organization=people["acme"], filters=filters, now=timezone.now())
    assert names(mixed, found) == {"gitlab"}
    everything = tokens_matching(
        organization=people["acme"], filters=token_filters_from({}), now=timezone.now()
    )
    assert "beta" not in names(mixed, everything)


# --- bulk revocation --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "params",
    [
        {"issuer": "gh"},
        {"repository": "acme/infra"},
        {"subject": "repo:acme/*"},
        {"version": "2"},
        {"since": "2026-03-02"},
    ],
)
def test_bulk_revocation_revokes_exactly_the_preview(mixed, people, params) -> None:
    if params.get("issuer") == "gh":
        params = {"issuer": str(mixed["gh"].pk)}
    acme = people["acme"]
    filters = token_filters_from(params)
    now = timezone.now()
    preview = revocation_preview(organization=acme, filters=filters, now=now, sample=100)
    before = set(AccessToken.objects.filter(revoked_at__isnull=False).values_list("pk", flat=True))
    count = tokens_revoke_matching(
        organization=acme, filters=filters, by=people["admin"], reason="test", upto=preview.upto
    )
    after = set(AccessToken.objects.filter(revoked_at__isnull=False).values_list("pk", flat=True))
    assert count == preview.count == len(preview.sample) > 0
    assert after - before == {t.pk for t in preview.sample}
    assert not AccessToken.objects.filter(pk=mixed["beta"].pk, revoked_at__isnull=False).exists()
    assert AccessToken.objects.get(pk=mixed["expired"].pk).revoked_at is None


def test_the_confirmation_leaves_tokens_minted_after_the_preview(mixed, people) -> None:
    acme = people["acme"]
    filters = token_filters_from({"issuer": str(mixed["gh"].pk)})
    preview = revocation_preview(organization=acme, filters=filters, now=timezone.now())
    late, _ = exchanged(acme, issuer=mixed["gh"], subject="repo:acme/infra:late")
    count = tokens_revoke_matching(
        organization=acme, filters=filters, by=None, reason="", upto=preview.upto
    )
    assert count == preview.count
    assert AccessToken.objects.get(pk=late.pk).revoked_at is None


def test_bulk_revocation_needs_a_filter(people) -> None:
    with pytest.raises(ValueError, match="at least one filter"):
        tokens_revoke_matching(
            organization=people["acme"],
            filters=token_filters_from({"status": "active"}),
            by=None,
            reason="",
        )


def test_revoked_by_filter_fails_on_the_next_api_call(trusted, local_issuer, api_client) -> None:
    token = local_issuer.mint(audience=AUDIENCE)
    body = api_client.post("/api/oauth/token", exchange_body(token), format="json").json()
    access = body["access_token"]
    assert auth(api_client, access).get("/api/user").status_code == 200
    filters = token_filters_from({"issuer": str(trusted.pk)})
    assert (
        tokens_revoke_matching(
            organization=trusted.organization, filters=filters, by=None, reason="x"
        )
        == 1
    )
    response = api_client.get("/api/user")
    assert response.status_code == 401


# --- API --------------------------------------------------------------------------------------
ORG_TOKENS = "/api/orgs/acme/tokens"


def test_api_list_in_pulumi_shape(api_client, mixed, people) -> None:
    auditor = make_token("personal", user=people["auditor"])
    body = auth(api_client, auditor).get(ORG_TOKENS, {"status": "active", "limit": "2"}).json()
    assert set(body) == {"tokens", "continuationToken"} and len(body["tokens"]) == 2
    token = body["tokens"][0]
    for key in (
        "id",
        "name",
        "description",
        "created",
        "lastUsed",
        "expires",
        "admin",
        "createdBy",
    ):
        assert key in token
    assert isinstance(token["lastUsed"], int) and isinstance(token["expires"], int)
    seen = [t["id"] for t in body["tokens"]]
    while body["continuationToken"]:
        body = api_client.get(
            ORG_TOKENS,
            {"status": "active", "limit": "2", "continuationToken": body["continuationToken"]},
        ).json()
        seen += [t["id"] for t in body["tokens"]]
    assert len(seen) == len(set(seen)) == 6


def test_api_create_shows_the_value_once_and_it_works(api_client, people) -> None:
    admin = make_token("organization", organization=people["acme"], permission="admin")
    response = auth(api_client, admin).post(
        ORG_TOKENS,
        {"name": "deploy", "description": "legacy deployer", "admin": False, "expires": 0},
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert set(body) == {"id", "tokenValue"}
    row = AccessToken.objects.get(pk=body["id"])
    assert row.token_hash == hash_token(body["tokenValue"]) and row.expires is None
    assert row.permission == "standard" and row.name == "deploy"
    listed = api_client.get(f"{ORG_TOKENS}/{body['id']}").json()
    assert "tokenValue" not in listed and body["tokenValue"] not in str(listed)
    assert auth(api_client, body["tokenValue"]).get("/api/orgs/acme").status_code == 200


def test_api_create_team_and_runner_tokens_and_refusals(api_client, people) -> None:
    TeamFactory(organization=people["acme"], name="platform")
    RunnerFactory(organization=people["acme"], name="deployer")
    auth(api_client, make_token("organization", organization=people["acme"], permission="admin"))
    expires = int((timezone.now() + timedelta(days=30)).timestamp())
    for body in (
        {"name": "t", "type": "team", "team": "platform", "expires": expires},
        {"name": "r", "type": "runner", "runner": "deployer"},
        {"name": "a", "admin": True},
    ):
        assert api_client.post(ORG_TOKENS, body, format="json").status_code == 201, body
    assert AccessToken.objects.filter(token_type="team", team__name="platform").exists()
    assert AccessToken.objects.filter(name="a", permission="admin").exists()
    refused: list[Any] = [
        {"name": ""},
        {"name": "x", "type": "personal"},
        {"name": "x", "type": "team", "team": "nope"},
        {"name": "x", "expires": 1},
        {"name": "x", "expires": "soon"},
        ["not", "an", "object"],
    ]
    for body in refused:
        response = api_client.post(ORG_TOKENS, body, format="json")
        assert response.status_code == 400, body
        assert response.json()["code"] == 400


def test_api_delete_revokes_and_the_token_fails_next(api_client, people) -> None:
    row, value = token_create(token_type="organization", organization=people["acme"])
    assert auth(api_client, value).get("/api/orgs/acme").status_code == 200
    auth(api_client, make_token("organization", organization=people["acme"], permission="admin"))
    assert api_client.delete(f"{ORG_TOKENS}/{row.pk}").status_code == 204
    assert api_client.delete(f"{ORG_TOKENS}/{row.pk}").status_code == 204  # idempotent
    assert api_client.delete(f"{ORG_TOKENS}/999999").status_code == 404
    assert auth(api_client, value).get("/api/orgs/acme").status_code == 401


def test_api_revoke_by_filter_with_a_dry_run(api_client, mixed, people) -> None:
    auth(api_client, make_token("organization", organization=people["acme"], permission="admin"))
    url = f"{ORG_TOKENS}/revoke"
    preview = api_client.post(
        url, {"repository": "acme/infra", "dryRun": True}, format="json"
    ).json()
    assert preview["count"] == 3 and preview["dryRun"] is True
    assert not AccessToken.objects.filter(revoked_reason="leak").exists()
    done = api_client.post(
        url, {"repository": "acme/infra", "upto": preview["upto"], "reason": "leak"}, format="json"
    ).json()
    assert done["count"] == 3
    assert set(AccessToken.objects.filter(revoked_reason="leak").values_list("pk", flat=True)) == {
        mixed["infra_main"].pk,
        mixed["infra_pr"].pk,
        mixed["custom_sub"].pk,
    }
    assert api_client.post(url, {"status": "active"}, format="json").status_code == 400
    assert api_client.post(url, {"issuer": "x"}, format="json").status_code == 400


def test_api_auditors_read_but_cannot_write(api_client, mixed, people) -> None:
    auth(api_client, make_token("personal", user=people["auditor"]))
    token = mixed["infra_main"]
    assert api_client.get(ORG_TOKENS).status_code == 200
    assert api_client.get(f"{ORG_TOKENS}/{token.pk}").json()["exchangeId"]
    assert api_client.post(ORG_TOKENS, {"name": "x"}, format="json").status_code == 403
    assert api_client.delete(f"{ORG_TOKENS}/{token.pk}").status_code == 403
    revoke = {"subject": "*", "dryRun": True}
    assert api_client.post(f"{ORG_TOKENS}/revoke", revoke, format="json").status_code == 403
    assert AccessToken.objects.get(pk=token.pk).revoked_at is None


def test_api_members_are_refused_and_other_orgs_not_found(api_client, mixed, people) -> None:
    auth(api_client, make_token("personal", user=people["member"]))
    assert api_client.get(ORG_TOKENS).status_code == 403
    auth(api_client, make_token("organization", organization=people["beta"], permission="admin"))
    assert api_client.get(ORG_TOKENS).status_code == 404
    assert api_client.delete(f"{ORG_TOKENS}/{mixed['app'].pk}").status_code == 404
    assert api_client.get(f"/api/orgs/beta/tokens/{mixed['app'].pk}").status_code == 404
    assert api_client.delete(f"/api/orgs/beta/tokens/{mixed['app'].pk}").status_code == 404
    assert AccessToken.objects.get(pk=mixed["app"].pk).revoked_at is None


def test_personal_tokens_api(api_client, people) -> None:
    user = people["member"]
    auth(api_client, make_token("personal", user=user, description="laptop"))
    created = api_client.post(
        "/api/user/tokens", {"description": "ci", "expires": 0}, format="json"
    )
    assert created.status_code == 201 and set(created.json()) == {"id", "tokenValue"}
    listed = api_client.get("/api/user/tokens").json()
    assert {t["description"] for t in listed["tokens"]} == {"laptop", "ci"}
    assert all(set(t) >= {"id", "name", "created", "lastUsed", "expires"} for t in listed["tokens"])
    someone_else, _ = token_create(token_type="personal", user=people["admin"])
    assert api_client.delete(f"/api/user/tokens/{someone_else.pk}").status_code == 404
    assert api_client.delete(f"/api/user/tokens/{created.json()['id']}").status_code == 204
    assert auth(api_client, created.json()["tokenValue"]).get("/api/user").status_code == 401
    org_token = make_token("organization", organization=people["acme"], permission="admin")
    assert auth(api_client, org_token).get("/api/user/tokens").status_code == 403


@pytest.mark.django_db(transaction=True)
def test_tokens_through_the_pulumi_sdk(live_server) -> None:
    from pulumi_cloud_sdk import ApiClient, Configuration
    from pulumi_cloud_sdk.apis import OrganizationsApi, UsersApi
    from pulumi_cloud_sdk.models import (
        CreateOrgAccessTokenRequest,
        CreatePersonalAccessTokenRequest,
    )

    from tests.factories import MembershipFactory, OrganizationFactory, UserFactory

    org = OrganizationFactory(login="acme")
    config = Configuration()
    config.host = live_server.url
    config.access_token = make_token("organization", organization=org, permission="admin")
    api = OrganizationsApi(ApiClient(config))
    created = api.create_org_token(
        "acme", CreateOrgAccessTokenRequest(name="deploy", description="d", expires=0, admin=False)
    )
    assert created.token_value.startswith("tpo_")
    listed = api.list_org_tokens("acme")
    assert created.id in [t.id for t in listed.tokens]
    api.delete_org_token("acme", created.id)
    assert AccessToken.objects.get(pk=created.id).revoked_at is not None

    user = UserFactory(username="dana")
    MembershipFactory(organization=org, user=user)
    personal = Configuration()
    personal.host = live_server.url
    personal.access_token = make_token("personal", user=user)
    users = UsersApi(ApiClient(personal))
    mine = users.create_personal_token(CreatePersonalAccessTokenRequest(description="x", expires=0))
    assert mine.token_value.startswith("tpp_")
    users.delete_personal_token(mine.id)
    assert AccessToken.objects.get(pk=mine.id).revoked_at is not None


# --- pages ------------------------------------------------------------------------------------
def tokens_url(name: str = "tokens", org: str = "acme", **kwargs: Any) -> str:
    return reverse(f"tokens:{name}", kwargs={"org": org, **kwargs})


def test_token_list_page_filters(mixed, people) -> None:
    page = signed_in("audrey").get(tokens_url(), {"subject": "repo:acme/app:*"}).content.decode()
    assert mixed["app"].prefix in page and mixed["infra_main"].prefix not in page
    assert mixed["beta"].prefix not in signed_in("audrey").get(tokens_url()).content.decode()


def test_create_page_warns_and_shows_the_token_once(people) -> None:
    client = signed_in("alice")
    form = client.get(tokens_url("token-create")).content.decode()
    assert "Prefer exchanged tokens" in form
    response = client.post(
        tokens_url("token-create"),
        {"type": "organization", "name": "legacy", "permission": "standard", "lifetime": "90"},
        follow=True,
    )
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    value = re.search(r'<code class="secret">(tpo_\w+)</code>', response.content.decode())
    assert value is not None
    row = AccessToken.objects.get(token_hash=hash_token(value.group(1)))
    assert row.created_by == people["admin"] and row.expires is not None
    assert (row.expires - timezone.now()).days in (89, 90)
    detail = client.get(tokens_url("token", token_id=row.pk)).content.decode()
    assert value.group(1) not in detail and row.prefix in detail


def test_create_page_explains_refusals(people) -> None:
    response = signed_in("alice").post(
        tokens_url("token-create"), {"type": "team", "name": "t", "team": "", "lifetime": "30"}
    )
    assert response.status_code == 400
    assert "No team" in response.content.decode()


def test_revoke_one_on_its_page(people, api_client) -> None:
    row, value = token_create(token_type="organization", organization=people["acme"])
    client = signed_in("alice")
    url = tokens_url("token-revoke", token_id=row.pk)
    assert client.post(url, {"reason": "left"}).status_code == 400  # not confirmed
    response = client.post(url, {"reason": "left", "confirm": "on"})
    assert response.status_code == 302
    row.refresh_from_db()
    assert row.revoked_reason == "left" and row.revoked_by == people["admin"]
    assert auth(api_client, value).get("/api/user").status_code == 401


def test_revoke_matching_page_previews_then_revokes_the_same_set(mixed, people) -> None:
    client = signed_in("alice")
    url = tokens_url("revoke-matching") + "?" + urlencode({"issuer": str(mixed["gh"].pk)})
    page = client.get(url).content.decode()
    expected = {"infra_main", "infra_pr", "app", "custom_sub"}
    assert f"{len(expected)} active tokens will be revoked" in page
    upto = re.search(r'name="upto" value="(\d+)"', page)
    assert upto is not None
    response = client.post(
        tokens_url("revoke-matching"),
        {"issuer": str(mixed["gh"].pk), "upto": upto.group(1), "confirm": "on", "reason": "off"},
    )
    assert response.status_code == 302 and "status=revoked" in response["Location"]
    revoked = AccessToken.objects.filter(revoked_reason="off")
    assert names(mixed, revoked) == expected


def test_revoke_matching_page_needs_a_filter_and_a_confirmation(mixed, people) -> None:
    client = signed_in("alice")
    assert (
        "Choose at least one filter" in client.get(tokens_url("revoke-matching")).content.decode()
    )
    response = client.post(tokens_url("revoke-matching"), {"issuer": str(mixed["gh"].pk)})
    assert response.status_code == 400
    assert not AccessToken.objects.filter(revoked_reason="revoked by filter").exists()


@pytest.mark.parametrize("username", ["audrey", "mallory"])
def test_pages_refuse_writes_to_auditors_and_members(mixed, people, username: str) -> None:
    client = signed_in(username)
    token = mixed["app"]
    requests = [
        ("get", tokens_url("token-create"), {}),
        (
            "post",
            tokens_url("token-create"),
            {"type": "organization", "name": "x", "lifetime": "30"},
        ),
        ("post", tokens_url("token-revoke", token_id=token.pk), {"confirm": "on"}),
        ("get", tokens_url("revoke-matching") + f"?issuer={mixed['gh'].pk}", {}),
        ("post", tokens_url("revoke-matching"), {"issuer": str(mixed["gh"].pk), "confirm": "on"}),
    ]
    for method, url, data in requests:
        assert getattr(client, method)(url, data).status_code == 403, url
    assert (
        not AccessToken.objects.filter(revoked_at__isnull=False)
        .exclude(pk=mixed["revoked"].pk)
        .exists()
    )
    assert not AccessToken.objects.filter(name="x").exists()
    reads = (tokens_url(), tokens_url("token", token_id=token.pk))
    for url in reads:
        assert client.get(url).status_code == (200 if username == "audrey" else 403)


def test_pages_of_another_org_are_not_found(mixed, people) -> None:
    client = signed_in("bob")
    token = mixed["app"]
    for url in (
        tokens_url(),
        tokens_url("token", token_id=token.pk),
        tokens_url("token-create"),
        tokens_url("revoke-matching"),
    ):
        assert client.get(url).status_code == 404
    assert (
        client.post(tokens_url("token-revoke", token_id=token.pk), {"confirm": "on"}).status_code
        == 404
    )
    # beta's own pages do not show acme's token either.
    assert client.get(tokens_url("token", org="beta", token_id=token.pk)).status_code == 404


def test_token_pages_follow_the_csp(mixed, people) -> None:
    client = signed_in("alice")
    for url in (
        tokens_url(),
        tokens_url("token", token_id=mixed["app"].pk),
        tokens_url("token-create"),
        tokens_url("revoke-matching") + f"?issuer={mixed['gh'].pk}",
    ):
        page = client.get(url).content.decode()
        assert "style=" not in page and "<script" not in page, url


# --- revoketokens -----------------------------------------------------------------------------
def run(*args: str, stdin: str | None = None, monkeypatch: Any = None) -> str:
    out = StringIO()
    call_command("revoketokens", *args, stdout=out)
    return out.getvalue().strip()


def test_revoketokens_dry_run_then_revoke(mixed) -> None:
    issuer = str(mixed["gh"].pk)
    assert run("--org", "acme", "--issuer", issuer, "--dry-run") == "4 token(s) would be revoked"
    assert not AccessToken.objects.filter(revoked_reason="cli").exists()
    assert (
        run("--org", "acme", "--issuer", issuer, "--yes", "--reason", "cli") == "4 token(s) revoked"
    )
    assert AccessToken.objects.filter(revoked_reason="cli").count() == 4


@pytest.mark.parametrize(
    ("args", "count"),
    [
        (["--subject", "repo:acme/infra:*"], 2),
        (["--repository", "acme/infra"], 3),
        (["--policy-version", f"{POLICY}:2"], 2),
        (["--since", "2026-03-02", "--until", "2026-03-03"], 1),
    ],
)
def test_revoketokens_filters(mixed, args: list[str], count: int) -> None:
    assert run("--org", "acme", *args, "--dry-run") == f"{count} token(s) would be revoked"


def test_revoketokens_asks_and_refuses(mixed, monkeypatch) -> None:
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)  # someone at a terminal answers "n"
    with pytest.raises(CommandError, match="nothing revoked"):
        run("--org", "acme", "--subject", "repo:*")
    assert not AccessToken.objects.filter(revoked_reason="revoked with revoketokens").exists()
    with pytest.raises(CommandError, match="at least one filter"):
        run("--org", "acme")
    with pytest.raises(CommandError, match="no organization"):
        run("--org", "nope", "--subject", "*")
    with pytest.raises(CommandError, match="issuer"):
        run("--org", "acme", "--issuer", "not-a-uuid")


# --- admin ------------------------------------------------------------------------------------
def test_admin_revokes_tokens_with_an_action_and_never_edits_them(mixed, people) -> None:
    client = signed_in("alice")
    changelist = reverse("admin:tokens_accesstoken_changelist")
    token = mixed["app"]
    response = client.post(
        changelist, {"action": "revoke_selected", "_selected_action": [token.pk]}
    )
    assert response.status_code == 302
    assert AccessToken.objects.get(pk=token.pk).revoked_at is not None
    change = reverse("admin:tokens_accesstoken_change", args=[token.pk])
    assert client.post(change, {"name": "renamed"}).status_code == 403
    assert client.get(reverse("admin:tokens_accesstoken_add")).status_code == 403
    auditor = signed_in("audrey")
    other = mixed["infra_main"]
    auditor.post(changelist, {"action": "revoke_selected", "_selected_action": [other.pk]})
    assert AccessToken.objects.get(pk=other.pk).revoked_at is None
    assert "token_hash" not in client.get(change).content.decode()
