"""The token exchange as the real clients send it (SPEC §3), byte for byte where it matters.

- `pulumi/auth-actions` (src/oauth2.ts `exchangeIdToken`): axios POSTs a JSON object with
  `audience`, `grant_type`, `subject_token_type` (id_token), `requested_token_type`,
  `subject_token`, and `expiration` (a JSON number) / `scope` only when the inputs are set.
- `pulumi login --oidc-token` (pkg/backend/httpstate/client `ExchangeOidcToken`): Go's
  `url.Values{...}.Encode()` — form-encoded, keys sorted, always `scope` (empty for an org
  token) and `expiration` in seconds (`--oidc-expiration`, default 2 h = 7200); the requested
  token type follows the scope (`team:` → team, `user:` → personal). It then calls
  `GET /api/user` and fails with "unexpected response from server" on an empty `githubLogin`.
- `pulumi_cloud_sdk` (PyPI): `MiscellaneousApi.token(dict)` over urllib against a live server.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote_plus, urlencode

import pytest
from pulumi_cloud_sdk import ApiClient, Configuration
from pulumi_cloud_sdk.apis import MiscellaneousApi, UsersApi

from devtools.issuer import DevIssuer
from issuers.services import Outbound
from policies.models import AuthPolicy
from policies.registration import issuer_register
from policies.services import policy_update
from tests.conftest import auth
from tests.factories import (
    MembershipFactory,
    OrganizationFactory,
    RunnerFactory,
    TeamFactory,
    UserFactory,
)
from tests.tokens.conftest import AUDIENCE, DEFAULT_POLICY, GRANT, ID_TOKEN, REQUESTED
from tokens.format import hash_token, parse_token
from tokens.models import AccessToken, ExchangeEvent
from trustportal.models import Role

RESPONSE_FIELDS = {"access_token", "issued_token_type", "token_type", "expires_in", "scope"}
PREFIXES = {"organization": "tpo_", "team": "tpt_", "personal": "tpp_", "runner": "tpr_"}
AUTH_ACTIONS_UA = "axios/1.7.9"
# A subject only DEFAULT_POLICY's "standard" definition admits (the main branch of acme/infra is
# also admitted by the "admin" one; see test_an_empty_scope_never_yields_an_admin_token).
APP_BRANCH = {"sub": "repo:acme/app:ref:refs/heads/dev"}
PULUMI_CLI_UA = "pulumi-cli/1 (v3.150.0; linux)"


def assert_granted(response: Any, token_type: str, scope: str, expires_in: int) -> dict[str, Any]:
    """200 with SPEC §3's exact success shape and headers; the token row and its event exist."""
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("application/json")
    assert response["Cache-Control"] == "no-store" and response["Pragma"] == "no-cache"
    body = response.json()
    assert set(body) == RESPONSE_FIELDS
    assert body["issued_token_type"] == REQUESTED + token_type
    assert body["token_type"] == "token"
    assert body["expires_in"] == expires_in and isinstance(body["expires_in"], int)
    assert body["scope"] == scope
    assert body["access_token"].startswith(PREFIXES[token_type])
    parsed = parse_token(body["access_token"])
    assert parsed is not None and parsed.token_type == token_type
    row = AccessToken.objects.get(token_hash=hash_token(body["access_token"]))
    event = ExchangeEvent.objects.get(token=row)
    assert (event.decision, event.reason) == ("allow", "allowed")
    return body


# --- pulumi/auth-actions: JSON -----------------------------------------------------------------


def auth_actions_body(
    token: str, requested_token_type: str, *, scope: str | None, expiration: int | None
) -> bytes:
    """`exchangeIdToken`'s body, in its key order; optional inputs are left out when unset."""
    body: dict[str, Any] = {
        "audience": AUDIENCE,
        "grant_type": GRANT,
        "subject_token_type": ID_TOKEN,
        "requested_token_type": requested_token_type,
        "subject_token": token,
    }
    if expiration is not None:
        body["expiration"] = expiration
    if scope is not None:
        body["scope"] = scope
    return json.dumps(body, separators=(",", ":")).encode()


@pytest.mark.django_db
@pytest.mark.usefixtures("trusted")
@pytest.mark.parametrize(
    ("token_type", "scope", "expiration", "granted_scope", "expires_in"),
    [
        pytest.param("organization", None, None, "", 3600, id="org-no-scope-no-expiration"),
        pytest.param("organization", "admin", 1800, "admin", 1800, id="org-admin-expiration-1800"),
        pytest.param("organization", "", 7200, "", 3600, id="org-empty-scope-clamped"),
        pytest.param("team", "team:platform", None, "team:platform", 3600, id="team"),
        pytest.param("personal", "user:octocat", 600, "user:octocat", 600, id="personal"),
        pytest.param("runner", "runner:deploy-eu", None, "runner:deploy-eu", 3600, id="runner"),
    ],
)
def test_auth_actions_json(
    api_client, local_issuer: DevIssuer, token_type, scope, expiration, granted_scope, expires_in
) -> None:
    subject = local_issuer.mint(APP_BRANCH if scope != "admin" else None, audience=AUDIENCE)
    response = api_client.generic(
        "POST",
        "/api/oauth/token",
        auth_actions_body(subject, REQUESTED + token_type, scope=scope, expiration=expiration),
        "application/json",
        HTTP_USER_AGENT=AUTH_ACTIONS_UA,
        HTTP_ACCEPT="application/json, text/plain, */*",
    )
    body = assert_granted(response, token_type, granted_scope, expires_in)
    event = ExchangeEvent.objects.get()
    assert event.user_agent == AUTH_ACTIONS_UA
    assert event.requested_expiration == expiration
    # The action only reads access_token and sets it as PULUMI_ACCESS_TOKEN; it must work.
    me = auth(api_client, body["access_token"]).get("/api/user")
    assert me.status_code == 200 and me.json()["githubLogin"]


@pytest.mark.django_db
@pytest.mark.usefixtures("trusted")
def test_auth_actions_error_body_is_what_the_action_prints(api_client, local_issuer) -> None:
    """The action formats `${res.data.error}: ${res.data.error_description}` on failure."""
    subject = local_issuer.mint({"sub": "repo:evil/fork:ref:refs/heads/main"}, audience=AUDIENCE)
    response = api_client.generic(
        "POST",
        "/api/oauth/token",
        auth_actions_body(subject, REQUESTED + "organization", scope="admin", expiration=None),
        "application/json",
        HTTP_USER_AGENT=AUTH_ACTIONS_UA,
    )
    assert response.status_code == 400
    body = response.json()
    assert isinstance(body["error"], str) and body["error"] in ("invalid_request", "invalid_scope")
    assert body["reason"] and body["reason"] in body["error_description"]
    assert body["request_id"] in body["error_description"]
    assert "repo:evil" not in response.content.decode()


# --- pulumi login --oidc-token: form ---------------------------------------------------------


def pulumi_cli_body(token: str, *, scope: str = "", expiration: int = 7200) -> str:
    """`ExchangeOidcToken`'s `url.Values.Encode()`: sorted keys, QueryEscape'd values."""
    requested = REQUESTED + "organization"
    if scope.startswith("team:"):
        requested = REQUESTED + "team"
    if scope.startswith("user:"):
        requested = REQUESTED + "personal"
    values = {
        "audience": AUDIENCE,
        "grant_type": GRANT,
        "requested_token_type": requested,
        "scope": scope,
        "subject_token_type": ID_TOKEN,
        "subject_token": token,
        "expiration": str(expiration),
    }
    return urlencode(sorted(values.items()), quote_via=quote_plus)


def test_pulumi_cli_body_matches_go_url_values_encoding() -> None:
    encoded = pulumi_cli_body("a.b.c", scope="team:platform", expiration=900)
    assert encoded == (
        "audience=urn%3Apulumi%3Aorg%3Aacme"
        "&expiration=900"
        "&grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange"
        "&requested_token_type=urn%3Apulumi%3Atoken-type%3Aaccess_token%3Ateam"
        "&scope=team%3Aplatform"
        "&subject_token=a.b.c"
        "&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aid_token"
    )


@pytest.mark.django_db
@pytest.mark.usefixtures("trusted")
@pytest.mark.parametrize(
    ("scope", "expiration", "token_type", "expires_in", "github_login"),
    [
        pytest.param("", 7200, "organization", 3600, "acme-bot", id="org-default-2h-clamped"),
        pytest.param("admin", 900, "organization", 900, "acme-bot", id="org-admin-15m"),
        pytest.param("team:platform", 7200, "team", 3600, "acme-platform-bot", id="team"),
        pytest.param("user:octocat", 3600, "personal", 3600, "octocat", id="personal"),
    ],
)
def test_pulumi_cli_form(
    api_client, local_issuer: DevIssuer, scope, expiration, token_type, expires_in, github_login
) -> None:
    subject = local_issuer.mint(APP_BRANCH if scope != "admin" else None, audience=AUDIENCE)
    response = api_client.generic(
        "POST",
        "/api/oauth/token",
        pulumi_cli_body(subject, scope=scope, expiration=expiration),
        "application/x-www-form-urlencoded",
        HTTP_USER_AGENT=PULUMI_CLI_UA,
        HTTP_ACCEPT_ENCODING="gzip",
    )
    body = assert_granted(response, token_type, scope, expires_in)
    event = ExchangeEvent.objects.get()
    assert event.requested_expiration == expiration and event.requested_scope == scope

    # What the CLI does next (GetPulumiAccountDetails): GET /api/user with `token` auth; an
    # empty githubLogin (or organization githubLogin) is "unexpected response from server".
    me = auth(api_client, body["access_token"]).get("/api/user", HTTP_USER_AGENT=PULUMI_CLI_UA)
    assert me.status_code == 200, me.content
    user = me.json()
    assert user["githubLogin"] == github_login
    assert user["organizations"] and all(org["githubLogin"] for org in user["organizations"])
    assert "acme" in [org["githubLogin"] for org in user["organizations"]]


# --- pulumi_cloud_sdk against a live server ----------------------------------------------------


@pytest.fixture
def live_trusted(local_issuer: DevIssuer, outbound: Outbound, allow_local_issuers: None) -> None:
    """What `trusted` sets up, committed (the live server reads it from another thread)."""
    org = OrganizationFactory(login="acme", name="ACME Corp")
    TeamFactory(organization=org, name="platform")
    MembershipFactory(organization=org, user=UserFactory(username="octocat"), role=Role.MEMBER)
    RunnerFactory(organization=org, name="deploy-eu")
    issuer = issuer_register(
        organization=org, url=local_issuer.url, name="dev", max_expiration=3600, outbound=outbound
    )
    policy_update(policy=AuthPolicy.objects.get(issuer=issuer), definitions=DEFAULT_POLICY)


def sdk(live_server: Any, access_token: str | None = None) -> ApiClient:
    config = Configuration()
    config.host = live_server.url
    config.access_token = access_token
    return ApiClient(config)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("live_trusted")
@pytest.mark.parametrize(
    ("token_type", "scope", "expiration", "expires_in", "github_login"),
    [
        pytest.param("organization", "admin", 1200, 1200, "acme-bot", id="org-admin"),
        pytest.param("organization", "", None, 3600, "acme-bot", id="org-default"),
        pytest.param("team", "team:platform", 600, 600, "acme-platform-bot", id="team"),
    ],
)
def test_pulumi_cloud_sdk_token(
    live_server, local_issuer: DevIssuer, token_type, scope, expiration, expires_in, github_login
) -> None:
    request: dict[str, Any] = {
        "audience": AUDIENCE,
        "grant_type": GRANT,
        "subject_token_type": ID_TOKEN,
        "requested_token_type": REQUESTED + token_type,
        "subject_token": local_issuer.mint(
            APP_BRANCH if scope != "admin" else None, audience=AUDIENCE
        ),
        "scope": scope,
    }
    if expiration is not None:
        request["expiration"] = expiration
    granted = MiscellaneousApi(sdk(live_server)).token(request)

    assert granted.access_token.startswith(PREFIXES[token_type])
    assert granted.issued_token_type == REQUESTED + token_type
    assert granted.token_type == "token"
    assert granted.expires_in == expires_in
    assert granted.scope == scope
    assert granted.refresh_token is None  # never issued
    row = AccessToken.objects.get(token_hash=hash_token(granted.access_token))
    assert ExchangeEvent.objects.get(token=row).decision == "allow"

    # The access token works on the API: raw `Authorization: token`, and through the SDK.
    raw = urllib.request.Request(
        f"{live_server.url}/api/user",
        headers={"Authorization": f"token {granted.access_token}", "Accept": "application/json"},
    )
    with urllib.request.urlopen(raw, timeout=10) as response:
        assert response.status == 200
        me = json.loads(response.read())
    assert me["githubLogin"] == github_login
    assert "acme" in [org["githubLogin"] for org in me["organizations"]]
    assert me["tokenInfo"]["organization"] == "acme"


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("live_trusted")
def test_pulumi_cloud_sdk_refusal_is_an_oauth_error(live_server, local_issuer) -> None:
    request = {
        "audience": AUDIENCE,
        "grant_type": GRANT,
        "subject_token_type": ID_TOKEN,
        "requested_token_type": REQUESTED + "organization",
        "subject_token": local_issuer.mint(audience="urn:pulumi:org:other"),
    }
    with pytest.raises(urllib.error.HTTPError) as raised:
        MiscellaneousApi(sdk(live_server)).token(request)
    assert raised.value.code == 400
    body = json.loads(raised.value.read())
    # The caller sees the one "not for here" code; the event keeps the real reason.
    assert body["error"] == "invalid_request" and body["reason"] == "untrusted_token"
    assert not AccessToken.objects.exists()
    assert ExchangeEvent.objects.get().reason == "audience_mismatch"


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("live_trusted")
def test_pulumi_cloud_sdk_get_current_user(live_server, local_issuer) -> None:
    granted = MiscellaneousApi(sdk(live_server)).token(
        {
            "audience": AUDIENCE,
            "grant_type": GRANT,
            "subject_token_type": ID_TOKEN,
            "requested_token_type": REQUESTED + "organization",
            "subject_token": local_issuer.mint(APP_BRANCH, audience=AUDIENCE),
        }
    )
    user = UsersApi(sdk(live_server, granted.access_token)).get_current_user()
    assert user.github_login == "acme-bot"
    assert [org.github_login for org in user.organizations] == ["acme"]


# --- least privilege: what the CLI always sends ------------------------------------------------


@pytest.mark.django_db
@pytest.mark.usefixtures("trusted")
@pytest.mark.parametrize("client", ["auth-actions", "pulumi-cli"])
def test_an_empty_scope_never_yields_an_admin_token(api_client, local_issuer, client) -> None:
    # The main branch of acme/infra is admitted by DEFAULT_POLICY's admin definition (listed
    # first) and by its standard one; the caller did not ask for admin.
    subject = local_issuer.mint(audience=AUDIENCE)
    if client == "auth-actions":
        body: bytes | str = auth_actions_body(
            subject, REQUESTED + "organization", scope=None, expiration=None
        )
        content_type = "application/json"
    else:
        body, content_type = pulumi_cli_body(subject), "application/x-www-form-urlencoded"
    response = api_client.generic("POST", "/api/oauth/token", body, content_type)
    granted = assert_granted(response, "organization", "", 3600)
    row = AccessToken.objects.get(token_hash=hash_token(granted["access_token"]))
    assert row.permission == "standard"
