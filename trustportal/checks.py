"""System checks that refuse an unsafe production configuration at start-up."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks
from django.core.checks import CheckMessage, Error, Warning
from django.core.management.base import SystemCheckError

from kernel.config import TrustPortalConfig


def production_errors(
    config: TrustPortalConfig,
    *,
    debug: bool,
    secret_key: str,
    database_engine: str,
    redis_url: str | None,
) -> list[CheckMessage]:
    """What makes a production configuration unsafe; nothing outside production."""
    if not config.is_production:
        return []
    errors: list[CheckMessage] = []
    if debug:
        errors.append(
            Error("DEBUG is on in production.", hint="Unset DEBUG.", id="trustportal.E001")
        )
    if not secret_key or secret_key.startswith("insecure-") or len(secret_key) < 50:
        errors.append(
            Error(
                "SECRET_KEY is missing, a development key, or shorter than 50 characters.",
                hint=(
                    "Set SECRET_KEY to a long random value (e.g. `openssl rand -base64 48`). "
                    "Running a development checkout? `export TRUSTPORTAL_ENV=development` "
                    "(TRUSTPORTAL_ENV defaults to production)."
                ),
                id="trustportal.E002",
            )
        )
    if config.allow_http_issuers and config.non_loopback_networks():
        errors.append(
            Error(
                "TRUSTPORTAL_ALLOW_HTTP_ISSUERS is on together with non-loopback allowed networks "
                + ", ".join(str(n) for n in config.non_loopback_networks())
                + ": issuer keys could be fetched in clear text from other machines.",
                hint="Turn TRUSTPORTAL_ALLOW_HTTP_ISSUERS off in production.",
                id="trustportal.E003",
            )
        )
    if not config.secrets_key or len(config.secrets_key) < 32:
        errors.append(
            Error(
                "TRUSTPORTAL_SECRETS_KEY is not set or shorter than 32 characters; environment "
                "secrets need it in production.",
                hint="Set it to a long random value and keep it in your secret store.",
                id="trustportal.E004",
            )
        )
    if "postgresql" not in database_engine:
        errors.append(
            Error(
                f"The database is {database_engine.rsplit('.', 1)[-1]}, not PostgreSQL: production "
                "needs PostgreSQL (concurrent writers, the append-only trigger on the exchange "
                "history, the durable single-use jti record shared by every process).",
                hint="Set DATABASE_URL to a postgres:// URL.",
                id="trustportal.E007",
            )
        )
    if not redis_url:
        errors.append(
            Error(
                "REDIS_URL is not set: exchange rate limits and sign-in throttling would count per "
                "process (each web worker its own local-memory cache), and Celery would use the "
                "local filesystem broker.",
                hint="Set REDIS_URL to the Redis every web and worker process shares.",
                id="trustportal.E008",
            )
        )
    return errors


def oidc_issuer_problems(config: TrustPortalConfig) -> list[CheckMessage]:
    """What is wrong with the portal's own OIDC issuer settings in production."""
    if not config.is_production:
        return []
    if not config.oidc_issuer_url:
        return [
            Warning(
                "TRUSTPORTAL_OIDC_ISSUER_URL is not set: the portal publishes no OIDC issuer and "
                "fn::open providers that need an ID token fail.",
                hint="Set it to the public https URL of /oidc, e.g. https://portal.example.com/oidc.",
                id="trustportal.W001",
            )
        ]
    problems: list[CheckMessage] = []
    if not config.oidc_issuer_url.startswith("https://"):
        problems.append(
            Error(
                "TRUSTPORTAL_OIDC_ISSUER_URL must be an https URL in production.",
                hint="Relying parties fetch the signing keys from it.",
                id="trustportal.E005",
            )
        )
    if config.oidc_key_rotation_days < 1:
        problems.append(
            Error(
                "TRUSTPORTAL_OIDC_KEY_ROTATION_DAYS must be at least 1.",
                hint="The default is 30.",
                id="trustportal.E006",
            )
        )
    return problems


@checks.register(checks.Tags.security, deploy=False)
def check_production_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    return production_errors(
        settings.TRUSTPORTAL,
        debug=settings.DEBUG,
        secret_key=settings.SECRET_KEY,
        database_engine=settings.DATABASES["default"]["ENGINE"],
        redis_url=settings.REDIS_URL,
    )


@checks.register(checks.Tags.security, deploy=False)
def check_oidc_issuer_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    return oidc_issuer_problems(settings.TRUSTPORTAL)


def raise_on_errors() -> None:
    """Run the checks and stop the process on any error (used where Django would not)."""
    errors = [m for m in checks.run_checks() if m.is_serious()]
    if errors:
        raise SystemCheckError("\n".join(str(e) for e in errors))
