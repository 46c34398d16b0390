"""Hardening: production settings, `check --deploy`, login throttling, CSRF on every page form.

Production settings are exercised in a child process started with `TRUSTPORTAL_ENV=production`
(settings are read once per process), with real requests through Django's test client there.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.test import Client
from django.urls import reverse

from devtools.issuer import SigningKey
from environments.models import Environment
from issuers.models import Issuer
from issuers.services import Outbound
from policies.registration import issuer_register
from tests.environments.conftest import make_environment
from tests.factories import PASSWORD, MembershipFactory, UserFactory
from tokens.models import AccessToken
from tokens.services import token_create
from trustportal.login_throttle import DEFAULT_THROTTLE
from trustportal.models import Organization, Role

ROOT = Path(__file__).resolve().parents[2]
HOST = "portal.example.com"


# --- production settings -----------------------------------------------------------------------
def production_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """The environment of a production process with every required setting given."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "REDIS_URL", "DEBUG") and not key.startswith("TRUSTPORTAL_")
    }
    env.update(
        DJANGO_SETTINGS_MODULE="trustportal.settings",
        TRUSTPORTAL_ENV="production",
        SECRET_KEY=secrets.token_urlsafe(64),
        ALLOWED_HOSTS=HOST,
        TRUSTPORTAL_SECRETS_KEY=secrets.token_urlsafe(48),
        TRUSTPORTAL_PUBLIC_URL=f"https://{HOST}",
        TRUSTPORTAL_OIDC_ISSUER_URL=f"https://{HOST}/oidc",
        TRUSTPORTAL_VAR_DIR=str(tmp_path / "var"),
        TRUSTPORTAL_STATIC_ROOT=str(tmp_path / "static"),
        # Production refuses to start without both; nothing here connects to them.
        DATABASE_URL="postgres://portal@127.0.0.1:9/portal",
        REDIS_URL="redis://127.0.0.1:9/0",
    )
    env.update(overrides)
    return env


PROBE = """
import json, django
django.setup()
from django.conf import settings as configured
from django.core.management import call_command
# The sign-in page lists the identity providers, so the database must exist.
configured.VAR_DIR.mkdir(parents=True, exist_ok=True)
call_command("migrate", verbosity=0)
from django.conf import settings
from django.test import Client
from django.test.utils import override_settings

# Only the static files storage differs: production's needs `collectstatic` to have run.
simple = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
with override_settings(STORAGES={**settings.STORAGES, "staticfiles": simple}):
    client = Client(HTTP_HOST="portal.example.com")
    https = client.get("/login/", HTTP_X_FORWARDED_PROTO="https")
    plain = client.get("/login/")
cookie = https.cookies["csrftoken"]
print(json.dumps({
    "settings": {name: getattr(settings, name) for name in (
        "DEBUG", "SESSION_COOKIE_SECURE", "SESSION_COOKIE_HTTPONLY", "CSRF_COOKIE_SECURE",
        "CSRF_COOKIE_HTTPONLY", "SECURE_PROXY_SSL_HEADER", "SECURE_SSL_REDIRECT",
        "SECURE_HSTS_SECONDS", "X_FRAME_OPTIONS", "CSRF_TRUSTED_ORIGINS",
    )},
    "https": {"status": https.status_code, "headers": dict(https.headers.items())},
    "csrf_cookie": {"secure": cookie["secure"], "httponly": cookie["httponly"],
                    "samesite": cookie["samesite"]},
    "plain": {"status": plain.status_code, "location": plain.get("Location", "")},
}))
"""


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What a production process answers for the login page over https and plain http."""
    folder = tmp_path_factory.mktemp("production")
    # The probe renders pages only (no system checks run): a local database file is enough
    # for the sign-in page's provider list, where a real server would need PostgreSQL.
    env = production_env(folder, DATABASE_URL=f"sqlite:///{folder / 'probe.sqlite3'}")
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_production_cookies_are_secure_and_http_only(production: dict[str, Any]) -> None:
    settings = production["settings"]
    assert settings["DEBUG"] is False
    assert settings["SESSION_COOKIE_SECURE"] and settings["SESSION_COOKIE_HTTPONLY"]
    assert settings["CSRF_COOKIE_SECURE"] and settings["CSRF_COOKIE_HTTPONLY"]
    assert production["csrf_cookie"]["secure"] is True
    assert production["csrf_cookie"]["httponly"] is True
    assert production["csrf_cookie"]["samesite"] == "Lax"
    assert settings["CSRF_TRUSTED_ORIGINS"] == [f"https://{HOST}"]


def test_production_sends_hsts_and_trusts_the_documented_proxy_header(
    production: dict[str, Any],
) -> None:
    # docs/deploying.md: behind a TLS-terminating proxy that sets X-Forwarded-Proto.
    assert production["settings"]["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert production["https"]["status"] == 200
    hsts = production["https"]["headers"]["Strict-Transport-Security"]
    assert hsts == "max-age=31536000; includeSubDomains; preload"
    assert production["settings"]["SECURE_HSTS_SECONDS"] >= 31536000


def test_production_redirects_plain_http_to_https(production: dict[str, Any]) -> None:
    assert production["settings"]["SECURE_SSL_REDIRECT"] is True
    assert production["plain"]["status"] == 301
    assert production["plain"]["location"] == f"https://{HOST}/login/"


def test_production_pages_carry_the_strict_headers(production: dict[str, Any]) -> None:
    headers = production["https"]["headers"]
    assert production["settings"]["X_FRAME_OPTIONS"] == "DENY"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"
    assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
    csp = headers["Content-Security-Policy"]
    for directive in ("default-src 'self'", "script-src 'self'", "frame-ancestors 'none'"):
        assert directive in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp


def check_deploy(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`manage.py check --deploy`, failing on warnings too."""
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_production_settings(tmp_path: Path) -> None:
    done = check_deploy(production_env(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues" in done.stdout


@pytest.mark.parametrize(
    ("overrides", "check_id"),
    [
        ({"TRUSTPORTAL_SSL_REDIRECT": "false"}, "security.W008"),
        ({"DEBUG": "true"}, "trustportal.E001"),
        ({"SECRET_KEY": "too-short"}, "trustportal.E002"),
        ({"TRUSTPORTAL_SECRETS_KEY": ""}, "trustportal.E004"),
        ({"DATABASE_URL": ""}, "trustportal.E007"),
        ({"REDIS_URL": ""}, "trustportal.E008"),
    ],
)
def test_check_deploy_refuses_a_weakened_production_setting(
    tmp_path: Path, overrides: dict[str, str], check_id: str
) -> None:
    done = check_deploy(production_env(tmp_path, **overrides))
    assert done.returncode != 0
    assert check_id in done.stdout + done.stderr


# --- security headers on representative pages --------------------------------------------------
@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/login/", "/admin/login/", "/", "/orgs/acme/", "/api/user"])
def test_pages_and_api_answers_carry_the_security_headers(org: Organization, path: str) -> None:
    client = Client()
    client.force_login(MembershipFactory(organization=org, role=Role.ADMIN).user)
    response = client.get(path)
    assert response.status_code in (200, 302, 401)
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "object-src 'none'" in csp
    assert "unsafe-inline" not in csp
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


# --- login throttling --------------------------------------------------------------------------
def unique_address() -> str:
    """A client address no other test (nor an earlier run sharing the cache) has used."""
    return f"2001:db8:{secrets.token_hex(2)}:{secrets.token_hex(2)}::{secrets.token_hex(2)}"


@pytest.fixture
def clock() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(datetime.now(UTC), tick=False) as traveller:
        yield traveller


def sign_in(path: str, username: str, password: str, address: str) -> Any:
    return Client(REMOTE_ADDR=address).post(path, {"username": username, "password": password})


def signed_in(response: Any) -> bool:
    return response.status_code == 302 and "_auth_user_id" in response.client.session


LOGIN_PATHS = ["/login/", "/admin/login/"]


@pytest.mark.django_db
@pytest.mark.parametrize("path", LOGIN_PATHS)
def test_failed_sign_ins_lock_the_username_out_even_with_the_right_password(
    path: str, org: Organization, clock: time_machine.Traveller
) -> None:
    username = f"victim-{uuid.uuid4().hex[:8]}"
    MembershipFactory(organization=org, role=Role.ADMIN, user=UserFactory(username=username))
    attacker = unique_address()
    for _ in range(DEFAULT_THROTTLE.per_username):
        response = sign_in(path, username, "wrong password", attacker)
        assert response.status_code == 200 and not signed_in(response)
    # Refused from any address, with the right password, and the page says why.
    refused = sign_in(path, username, PASSWORD, unique_address())
    assert refused.status_code == 200 and not signed_in(refused)
    assert "Too many failed sign-in attempts. Try again in 15 minutes." in refused.content.decode()
    # Another user from the attacker's address is not locked out by the username limit.
    other = f"bystander-{uuid.uuid4().hex[:8]}"
    MembershipFactory(organization=org, role=Role.ADMIN, user=UserFactory(username=other))
    assert signed_in(sign_in(path, other, PASSWORD, attacker))
    # Still refused just before the window ends; allowed once it has passed.
    clock.shift(timedelta(seconds=DEFAULT_THROTTLE.window - 5))
    assert not signed_in(sign_in(path, username, PASSWORD, unique_address()))
    clock.shift(timedelta(seconds=10))
    assert signed_in(sign_in(path, username, PASSWORD, unique_address()))


@pytest.mark.django_db
def test_failed_sign_ins_from_one_address_lock_that_address_out(
    org: Organization, clock: time_machine.Traveller
) -> None:
    attacker = unique_address()
    for n in range(DEFAULT_THROTTLE.per_address):
        # A different username each time: only the address limit can catch this.
        sign_in("/login/", f"guess-{n}-{uuid.uuid4().hex[:6]}", "wrong", attacker)
    username = f"user-{uuid.uuid4().hex[:8]}"
    UserFactory(username=username)
    refused = sign_in("/login/", username, PASSWORD, attacker)
    assert not signed_in(refused)
    assert "Too many failed sign-in attempts" in refused.content.decode()
    assert signed_in(sign_in("/login/", username, PASSWORD, unique_address()))
    clock.shift(timedelta(seconds=DEFAULT_THROTTLE.window + 1))
    assert signed_in(sign_in("/login/", username, PASSWORD, attacker))


@pytest.mark.django_db
def test_failures_straddling_a_window_boundary_still_count_together(
    clock: time_machine.Traveller,
) -> None:
    window = DEFAULT_THROTTLE.window
    now = datetime.now(UTC).timestamp()
    clock.move_to(datetime.fromtimestamp((now // window + 1) * window - 10, tz=UTC))
    username = f"edge-{uuid.uuid4().hex[:8]}"
    UserFactory(username=username)
    half = DEFAULT_THROTTLE.per_username // 2
    for _ in range(half):
        sign_in("/login/", username, "wrong", unique_address())
    clock.shift(timedelta(seconds=20))  # into the next fixed window
    for _ in range(DEFAULT_THROTTLE.per_username - half):
        sign_in("/login/", username, "wrong", unique_address())
    assert not signed_in(sign_in("/login/", username, PASSWORD, unique_address()))


@pytest.mark.django_db
def test_failed_sign_ins_are_logged_without_the_password(caplog: pytest.LogCaptureFixture) -> None:
    username = f"logged-{uuid.uuid4().hex[:8]}"
    UserFactory(username=username)
    password = "hunter2-" + secrets.token_hex(8)
    address = unique_address()
    with caplog.at_level(logging.INFO):
        sign_in("/login/", username, password, address)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert f"sign-in failed username='{username}' address={address}" in text
    assert password not in text
    assert password not in repr([r.__dict__ for r in caplog.records])


@pytest.mark.django_db
def test_a_line_break_in_the_username_cannot_forge_a_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO):
        sign_in("/login/", "x\nsign-in ok username=admin", "wrong", unique_address())
    failed = [r.getMessage() for r in caplog.records if "sign-in failed" in r.getMessage()]
    assert failed and all("\n" not in message for message in failed)


@pytest.mark.django_db
def test_sign_in_is_not_throttled_when_the_cache_is_unreachable(
    settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # Port 9 (discard) on loopback: nothing listens, every cache call fails at once.
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:9/0",
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
    username = f"outage-{uuid.uuid4().hex[:8]}"
    UserFactory(username=username)
    address = unique_address()
    with caplog.at_level(logging.WARNING):
        for _ in range(DEFAULT_THROTTLE.per_username + 1):
            assert not signed_in(sign_in("/login/", username, "wrong", address))
        assert signed_in(sign_in("/login/", username, PASSWORD, address))
    assert "login throttle store unavailable" in caplog.text


# --- CSRF --------------------------------------------------------------------------------------
@pytest.fixture
def forms_world(org: Organization, outbound: Outbound) -> dict[str, Any]:
    """An org admin's browser, an issuer with a static key set, a token and an environment."""
    admin = MembershipFactory(organization=org, role=Role.ADMIN).user
    jwks = {"keys": [SigningKey.generate("ES256", kid="k1").public_jwk()]}
    issuer: Issuer = issuer_register(
        organization=org, url="https://issuer.example.test", jwks=jwks, outbound=outbound
    )
    token = token_create(token_type="organization", organization=org, name="ci")[0]
    environment: Environment = make_environment(org, "app", "dev", "values: {a: 1}\n")
    return {"admin": admin, "issuer": issuer, "token": token, "environment": environment}


def form_posts(world: dict[str, Any]) -> dict[str, str]:
    """One representative form of each page family, by what it does."""
    issuer, token, env = world["issuer"], world["token"], world["environment"]
    return {
        "issuer wizard": reverse("issuers:register", kwargs={"org": "acme"}),
        "issuer enable/disable": reverse(
            "issuers:set-enabled", kwargs={"org": "acme", "issuer_id": issuer.pk}
        ),
        "policy editor save": reverse(
            "policies:add", kwargs={"org": "acme", "issuer_id": issuer.pk}
        ),
        "token revoke": reverse(
            "tokens:token-revoke", kwargs={"org": "acme", "token_id": token.pk}
        ),
        "token create": reverse("tokens:token-create", kwargs={"org": "acme"}),
        "environment edit": reverse(
            "environments:detail",
            kwargs={"org": "acme", "project": env.project, "name": env.name},
        ),
        "sign out": "/logout/",
    }


FORMS = [
    "issuer wizard",
    "issuer enable/disable",
    "policy editor save",
    "token revoke",
    "token create",
    "environment edit",
    "sign out",
]


@pytest.mark.django_db
@pytest.mark.parametrize("form", FORMS)
def test_a_page_form_post_without_a_csrf_token_is_refused(
    forms_world: dict[str, Any], form: str
) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(forms_world["admin"])
    url = form_posts(forms_world)[form]
    refused = client.post(url, {"action": "save", "reason": "x"})
    assert refused.status_code == 403
    # The same post with the token gets past the CSRF check (the refusal above was CSRF's).
    client.get(reverse("tokens:tokens", kwargs={"org": "acme"}))
    csrf = client.cookies["csrftoken"].value
    accepted = client.post(url, {"csrfmiddlewaretoken": csrf, "reason": "x"})
    assert accepted.status_code != 403


@pytest.mark.django_db
def test_a_session_cookie_alone_does_not_authenticate_the_api(
    forms_world: dict[str, Any], org: Organization
) -> None:
    """The API authenticates by access token only, so cookie-borne CSRF cannot reach it."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(forms_world["admin"])
    before = AccessToken.objects.filter(organization=org).count()
    created = client.post(
        "/api/orgs/acme/tokens",
        {"description": "csrf", "name": "csrf"},
        content_type="application/json",
    )
    assert created.status_code == 401
    assert created.json()["code"] == 401
    assert client.get("/api/user").status_code == 401
    assert AccessToken.objects.filter(organization=org).count() == before
