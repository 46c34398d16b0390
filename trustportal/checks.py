"""System checks that refuse an unsafe production configuration at start-up."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks
from django.core.checks import CheckMessage, Error
from django.core.management.base import SystemCheckError

from trustportal.config import TrustPortalConfig


def production_errors(
    config: TrustPortalConfig, *, debug: bool, secret_key: str
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
                hint="Set SECRET_KEY to a long random value (e.g. `openssl rand -base64 48`).",
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
    return errors


@checks.register(checks.Tags.security, deploy=False)
def check_production_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    return production_errors(
        settings.TRUSTPORTAL, debug=settings.DEBUG, secret_key=settings.SECRET_KEY
    )


def raise_on_errors() -> None:
    """Run the checks and stop the process on any error (used where Django would not)."""
    errors = [m for m in checks.run_checks() if m.is_serious()]
    if errors:
        raise SystemCheckError("\n".join(str(e) for e in errors))
