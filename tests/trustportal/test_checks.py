"""Configuration parsing and the production start-up checks."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kernel.config import ConfigError, TrustPortalConfig, load_config
from trustportal.checks import production_errors

GOOD_KEY = "k" * 64
POSTGRESQL = "django.db.backends.postgresql"
SQLITE = "django.db.backends.sqlite3"
REDIS = "redis://127.0.0.1:6379/0"
SHARED = {"database_engine": POSTGRESQL, "redis_url": REDIS}


def ids(errors) -> list[str]:
    return [e.id for e in errors]


def prod(**kwargs) -> TrustPortalConfig:
    return TrustPortalConfig(environment="production", secrets_key="s" * 40, **kwargs)


def test_safe_production_config_passes() -> None:
    assert production_errors(prod(), debug=False, secret_key=GOOD_KEY, **SHARED) == []


@pytest.mark.parametrize(
    ("config", "debug", "key", "expected"),
    [
        (prod(), True, GOOD_KEY, ["trustportal.E001"]),
        (prod(), False, "insecure-missing", ["trustportal.E002"]),
        (prod(), False, "insecure-dev-" + "x" * 60, ["trustportal.E002"]),
        (prod(), False, "short", ["trustportal.E002"]),
        (
            prod(
                allow_http_issuers=True,
                issuer_allowed_networks=(ipaddress.ip_network("10.0.0.0/8"),),
            ),
            False,
            GOOD_KEY,
            ["trustportal.E003"],
        ),
        (TrustPortalConfig(environment="production"), False, GOOD_KEY, ["trustportal.E004"]),
        (
            TrustPortalConfig(environment="production", secrets_key="short"),
            False,
            GOOD_KEY,
            ["trustportal.E004"],
        ),
    ],
)
def test_unsafe_production_configs_are_refused(config, debug, key, expected) -> None:
    assert ids(production_errors(config, debug=debug, secret_key=key, **SHARED)) == expected


@pytest.mark.parametrize(
    ("database_engine", "redis_url", "expected"),
    [
        (SQLITE, REDIS, ["trustportal.E007"]),
        (POSTGRESQL, None, ["trustportal.E008"]),
        (POSTGRESQL, "", ["trustportal.E008"]),
        (SQLITE, None, ["trustportal.E007", "trustportal.E008"]),
    ],
)
def test_production_needs_postgresql_and_redis(
    database_engine: str, redis_url: str | None, expected: list[str]
) -> None:
    """Rate limits and sign-in throttling are per process without them; SQLite is one file."""
    errors = production_errors(
        prod(),
        debug=False,
        secret_key=GOOD_KEY,
        database_engine=database_engine,
        redis_url=redis_url,
    )
    assert ids(errors) == expected
    assert all(e.hint for e in errors)


def test_production_server_refuses_to_start_without_postgresql_and_redis(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TRUSTPORTAL_", "DATABASE_URL", "REDIS_URL"))
    }
    env.update(
        {
            "TRUSTPORTAL_ENV": "production",
            "SECRET_KEY": GOOD_KEY,
            "TRUSTPORTAL_SECRETS_KEY": "s" * 40,
            "TRUSTPORTAL_VAR_DIR": str(tmp_path),
            "ALLOWED_HOSTS": "portal.example",
        }
    )
    result = subprocess.run(
        [sys.executable, "-c", "import trustportal.wsgi"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode != 0
    assert "trustportal.E007" in result.stderr and "trustportal.E008" in result.stderr


def test_http_issuers_with_only_loopback_networks_is_allowed_in_production() -> None:
    config = prod(
        allow_http_issuers=True,
        issuer_allowed_networks=(
            ipaddress.ip_network("127.0.0.0/8"),
            ipaddress.ip_network("::1/128"),
        ),
    )
    assert production_errors(config, debug=False, secret_key=GOOD_KEY, **SHARED) == []


def test_checks_do_not_apply_outside_production() -> None:
    config = TrustPortalConfig(environment="development")
    errors = production_errors(
        config, debug=True, secret_key="x", database_engine=SQLITE, redis_url=None
    )
    assert errors == []


def test_load_config_reads_the_environment() -> None:
    config = load_config(
        {
            "TRUSTPORTAL_ENV": "development",
            "TRUSTPORTAL_ALLOW_HTTP_ISSUERS": "true",
            "TRUSTPORTAL_ISSUER_ALLOWED_NETWORKS": "127.0.0.0/8, ::1/128",
            "TRUSTPORTAL_AUDIENCE_PREFIX": "urn:example:",
        }
    )
    assert config.allow_http_issuers is True
    assert [str(n) for n in config.issuer_allowed_networks] == ["127.0.0.0/8", "::1/128"]
    assert config.audience_prefix == "urn:example:"
    assert load_config({}).environment == "production"
    assert load_config({}).audience_prefix == "urn:pulumi:org:"


@pytest.mark.parametrize(
    "environ",
    [
        {"TRUSTPORTAL_ENV": "staging"},
        {"TRUSTPORTAL_ALLOW_HTTP_ISSUERS": "maybe"},
        {"TRUSTPORTAL_ISSUER_ALLOWED_NETWORKS": "10.0.0.0/33"},
        {"TRUSTPORTAL_ISSUER_CA_BUNDLE": "/nonexistent/ca.pem"},
    ],
)
def test_load_config_refuses_malformed_values(environ: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        load_config(environ)


def test_production_server_refuses_to_start_with_debug_on(tmp_path: Path) -> None:
    """The WSGI entry point (what gunicorn loads) runs the checks and stops."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("TRUSTPORTAL_", "DATABASE_URL"))
    }
    env.update(
        {
            "TRUSTPORTAL_ENV": "production",
            "DEBUG": "true",
            "SECRET_KEY": GOOD_KEY,
            "TRUSTPORTAL_SECRETS_KEY": "s" * 40,
            "TRUSTPORTAL_VAR_DIR": str(tmp_path),
            "ALLOWED_HOSTS": "portal.example",
        }
    )
    result = subprocess.run(
        [sys.executable, "-c", "import trustportal.wsgi"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode != 0
    assert "trustportal.E001" in result.stderr
