"""POST /api/oauth/token end to end with the local issuer: grants, shapes, refusals, events."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
import time_machine
from django.utils import timezone

from tests.conftest import auth
from tests.tokens.conftest import AUDIENCE, REQUESTED, exchange_body
from tokens.format import hash_token, parse_token
from tokens.models import AccessToken, ExchangeEvent, RateLimitedWindow

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("trusted")]


def post_json(client, body):
    return client.post("/api/oauth/token", body, format="json")


def post_form(client, body):
    return client.generic(
        "POST", "/api/oauth/token", urlencode(body), "application/x-www-form-urlencoded"
    )


def test_json_exchange_for_an_org_admin_token(api_client, local_issuer) -> None:
    token = local_issuer.mint(audience=AUDIENCE)
    response = post_json(api_client, exchange_body(token, scope="admin"))
    assert response.status_code == 200, response.json()
    assert response["Cache-Control"] == "no-store" and response["Pragma"] == "no-cache"
    body = response.json()
    assert set(body) == {"access_token", "issued_token_type", "token_type", "expires_in", "scope"}
    assert body["issued_token_type"] == REQUESTED + "organization"
    assert body["token_type"] == "token"
    assert body["expires_in"] == 3600  # default 7200 clamped to the issuer's maximum
    assert body["scope"] == "admin"
    parsed = parse_token(body["access_token"])
    assert parsed is not None and parsed.token_type == "organization"
    row = AccessToken.objects.get(token_hash=hash_token(body["access_token"]))
    assert row.permission == "admin" and row.subject == "repo:acme/infra:ref:refs/heads/main"
    event = ExchangeEvent.objects.get()
    assert event.decision == "allow" and event.reason == "allowed" and event.token_id == row.pk
    assert event.policy_id == row.policy_id and event.policy_version == 2
    assert event.sub == "repo:acme/infra:ref:refs/heads/main"
    assert event.claims["repository"] == "acme/infra"
    assert event.subject_token_sha256 == hash_token(token)
    assert token not in str(event.claims)
    me = auth(api_client, body["access_token"]).get("/api/user").json()
    assert me["githubLogin"] == "acme-bot"


def test_form_exchange_as_the_pulumi_cli_sends_it(api_client, local_issuer) -> None:
    token = local_issuer.mint(
        {"sub": "repo:acme/app:ref:refs/heads/dev", "repository": "acme/app"}, audience=AUDIENCE
    )
    response = post_form(api_client, exchange_body(token, scope="", expiration="600"))
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["expires_in"] == 600 and body["scope"] == ""
    row = AccessToken.objects.get(token_hash=hash_token(body["access_token"]))
    assert row.permission == "standard"


@pytest.mark.parametrize("expiration", [600, "600", 600.0])
def test_expiration_as_number_or_string(api_client, local_issuer, expiration) -> None:
    token = local_issuer.mint(audience=AUDIENCE)
    response = post_json(api_client, exchange_body(token, expiration=expiration))
    assert response.json()["expires_in"] == 600


def test_expiration_is_clamped_never_refused(api_client, local_issuer) -> None:
    token = local_issuer.mint(audience=AUDIENCE)
    response = post_json(api_client, exchange_body(token, expiration=10**7))
    assert response.status_code == 200 and response.json()["expires_in"] == 3600


def test_team_personal_and_runner_tokens(api_client, local_issuer) -> None:
    cases = [
        ("team", "team:platform", "tpt_", "acme-platform-bot"),
        ("personal", "user:octocat", "tpp_", "octocat"),
        ("runner", "runner:deploy-eu", "tpr_", "acme-bot"),
    ]
    for token_type, scope, prefix, login in cases:
        token = local_issuer.mint(audience=AUDIENCE)
        response = post_json(
            api_client,
            exchange_body(token, requested_token_type=REQUESTED + token_type, scope=scope),
        )
        assert response.status_code == 200, (token_type, response.json())
        body = response.json()
        assert body["access_token"].startswith(prefix)
        assert body["issued_token_type"] == REQUESTED + token_type and body["scope"] == scope
        me = auth(api_client, body["access_token"]).get("/api/user").json()
        api_client.credentials()
        assert me["githubLogin"] == login


def test_issued_token_permissions_on_the_api(api_client, local_issuer) -> None:
    admin = post_json(
        api_client, exchange_body(local_issuer.mint(audience=AUDIENCE), scope="admin")
    )
    standard_token = local_issuer.mint({"sub": "repo:acme/app:ref:refs/heads/x"}, audience=AUDIENCE)
    standard = post_json(api_client, exchange_body(standard_token))
    auth(api_client, admin.json()["access_token"])
    assert api_client.get("/api/orgs/acme/oidc/issuers").status_code == 200
    auth(api_client, standard.json()["access_token"])
    assert api_client.get("/api/orgs/acme/oidc/issuers").status_code == 403
    assert api_client.get("/api/orgs/acme").status_code == 200


def test_admin_scope_needs_an_admin_grant(api_client, local_issuer) -> None:
    token = local_issuer.mint({"sub": "repo:acme/app:ref:refs/heads/x"}, audience=AUDIENCE)
    response = post_json(api_client, exchange_body(token, scope="admin"))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"
    assert response.json()["reason"] == "no_matching_policy"


def test_deny_wins_and_the_caller_sees_no_policy_detail(api_client, local_issuer) -> None:
    token = local_issuer.mint({"event_name": "pull_request"}, audience=AUDIENCE)
    response = post_json(api_client, exchange_body(token, scope="admin"))
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_request" and body["reason"] == "denied_by_policy"
    assert body["request_id"] and body["request_id"] in body["error_description"]
    assert "pull_request" not in response.content.decode()
    assert "policies[" not in response.content.decode()
    event = ExchangeEvent.objects.get()
    assert event.decision == "deny" and event.reason == "denied_by_policy"
    assert event.request_id == body["request_id"] == response["X-Request-Id"]
    deny = next(d for d in event.trace if d["decision"] == "deny")
    assert deny["applies"] is True
    assert not AccessToken.objects.exists()


@pytest.mark.parametrize(
    ("overrides", "status", "error", "reason"),
    [
        (
            {"grant_type": "client_credentials"},
            400,
            "unsupported_grant_type",
            "unsupported_grant_type",
        ),
        ({"grant_type": None}, 400, "unsupported_grant_type", "unsupported_grant_type"),
        ({"audience": "https://example.com"}, 400, "invalid_target", "bad_audience"),
        ({"audience": None}, 400, "invalid_request", "missing_audience"),
        ({"subject_token": None}, 400, "invalid_request", "missing_subject_token"),
        ({"subject_token_type": "urn:x"}, 400, "invalid_request", "bad_subject_token_type"),
        (
            {"requested_token_type": "urn:pulumi:token-type:access_token:root"},
            400,
            "invalid_request",
            "bad_requested_token_type",
        ),
        ({"scope": "team:platform"}, 400, "invalid_scope", "scope_mismatch"),
        (
            {"requested_token_type": REQUESTED + "team", "scope": ""},
            400,
            "invalid_scope",
            "scope_mismatch",
        ),
        (
            {"requested_token_type": REQUESTED + "team", "scope": "team:ghost"},
            400,
            "invalid_scope",
            "no_matching_policy",
        ),
        ({"expiration": "soon"}, 400, "invalid_request", "bad_expiration"),
        ({"expiration": -5}, 400, "invalid_request", "bad_expiration"),
        ({"expiration": True}, 400, "invalid_request", "malformed_body"),
        ({"scope": ["admin"]}, 400, "invalid_request", "malformed_body"),
    ],
)
def test_request_errors(api_client, local_issuer, overrides, status, error, reason) -> None:
    token = local_issuer.mint(audience=AUDIENCE)
    response = post_json(api_client, exchange_body(token, **overrides))
    assert response.status_code == status
    assert response.json()["error"] == error and response.json()["reason"] == reason
    assert ExchangeEvent.objects.count() == 1
    assert ExchangeEvent.objects.get().reason == reason
    assert not AccessToken.objects.exists()


def test_unknown_org_is_recorded_without_an_org(api_client, local_issuer) -> None:
    """The caller sees `untrusted_token`, not whether the org exists (test_exchange_oracle.py)."""
    response = post_json(
        api_client, exchange_body(local_issuer.mint(), audience="urn:pulumi:org:ghost")
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert response.json()["reason"] == "untrusted_token"
    event = ExchangeEvent.objects.get()
    assert event.organization_id is None and event.organization_login == "ghost"
    assert event.reason == "unknown_organization"


@pytest.mark.parametrize(
    ("raw", "content_type", "reason"),
    [
        (b"{not json", "application/json", "malformed_body"),
        (b"[1, 2]", "application/json", "malformed_body"),
        (b'{"audience": "a", "audience": "b"}', "application/json", "malformed_body"),
        (b"\xff\xfe", "application/json", "malformed_body"),
        (b"<xml/>", "application/xml", "unsupported_media_type"),
        (b"a=1&a=2", "application/x-www-form-urlencoded", "malformed_body"),
        (b"x" * 70000, "application/json", "request_too_large"),
    ],
)
def test_malformed_bodies_are_invalid_request_never_500(
    api_client, raw, content_type, reason
) -> None:
    response = api_client.generic("POST", "/api/oauth/token", raw, content_type)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request" and response.json()["reason"] == reason
    assert ExchangeEvent.objects.get().reason == reason


def test_wrong_method_is_405(api_client) -> None:
    assert api_client.get("/api/oauth/token").status_code == 405


def test_single_use_issuer_refuses_a_replayed_jti(api_client, local_issuer, trusted) -> None:
    trusted.single_use = True
    trusted.save()
    token = local_issuer.mint(audience=AUDIENCE)
    assert post_json(api_client, exchange_body(token)).status_code == 200
    again = post_json(api_client, exchange_body(token))
    assert again.status_code == 400 and again.json()["reason"] == "jti_replayed"
    no_jti = local_issuer.mint(audience=AUDIENCE, drop=("jti",))
    assert post_json(api_client, exchange_body(no_jti)).json()["reason"] == "missing_jti"


def test_rate_limit_per_subject(api_client, local_issuer, settings) -> None:
    import dataclasses

    from django.core.cache import cache

    cache.clear()
    settings.TRUSTPORTAL = dataclasses.replace(settings.TRUSTPORTAL, rate_limit_per_subject=2)
    with time_machine.travel(timezone.now().replace(second=5), tick=False):
        statuses = [
            post_json(api_client, exchange_body(local_issuer.mint(audience=AUDIENCE))).status_code
            for _ in range(3)
        ]
        assert statuses == [200, 200, 429]
        limited = post_json(api_client, exchange_body(local_issuer.mint(audience=AUDIENCE)))
    assert int(limited["Retry-After"]) > 0
    assert limited.json()["reason"] == "rate_limited"
    # The window's first refused attempt is an event; every one is counted in one row.
    assert ExchangeEvent.objects.filter(reason="rate_limited").count() == 1
    window = RateLimitedWindow.objects.get()
    assert window.attempts == 2 and window.bucket_kind == "sub"
    assert (
        window.organization_id == ExchangeEvent.objects.get(reason="rate_limited").organization_id
    )
    cache.clear()


def test_a_rate_limited_flood_writes_one_event_and_one_counter(
    api_client, local_issuer, settings
) -> None:
    import dataclasses

    from django.core.cache import cache

    cache.clear()
    settings.TRUSTPORTAL = dataclasses.replace(settings.TRUSTPORTAL, rate_limit_per_ip=1)
    with time_machine.travel(timezone.now().replace(second=5), tick=False):
        for _ in range(30):
            post_json(api_client, exchange_body("garbage", audience=AUDIENCE))
    assert ExchangeEvent.objects.count() == 2  # the allowed-through one and the first refusal
    assert ExchangeEvent.objects.filter(reason="rate_limited").count() == 1
    window = RateLimitedWindow.objects.get()
    assert window.attempts == 29 and window.bucket_kind == "ip"
    cache.clear()


def test_rate_limit_per_ip(api_client, local_issuer, settings) -> None:
    import dataclasses

    from django.core.cache import cache

    cache.clear()
    settings.TRUSTPORTAL = dataclasses.replace(settings.TRUSTPORTAL, rate_limit_per_ip=1)
    with time_machine.travel(timezone.now().replace(second=5), tick=False):
        post_json(api_client, exchange_body("garbage"))
        response = post_json(api_client, exchange_body(local_issuer.mint(audience=AUDIENCE)))
    assert response.status_code == 429 and response.json()["reason"] == "rate_limited"
    cache.clear()


def test_deeply_nested_payload_is_malformed_not_500(api_client) -> None:
    import base64
    import json as _json

    def seg(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    header = seg(_json.dumps({"alg": "RS256", "kid": "test-key-1"}).encode())
    payload = seg(b'{"sub":' + b"[" * 5000 + b"]" * 5000 + b"}")
    response = post_json(api_client, exchange_body(f"{header}.{payload}.c2ln"))
    assert response.status_code == 400
    assert response.json()["reason"] == "malformed_token"


def test_pulumi_go_clients_accept_header_gets_json(api_client, admin_token) -> None:
    # The pulumi and esc CLIs send this Accept; the API answers JSON rather than 406.
    api_client.credentials(HTTP_AUTHORIZATION=f"token {admin_token}")
    response = api_client.get("/api/user", HTTP_ACCEPT="application/vnd.pulumi+8")
    assert response.status_code == 200
    assert response.json()["githubLogin"] == "acme-bot"
