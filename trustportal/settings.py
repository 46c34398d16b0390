"""Django settings, read from environment variables (see README and docs/deploying.md)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import dj_database_url
import django_stubs_ext

from kernel.config import load_config, parse_bool
from kernel.logs import logging_config

# Lets generic Django classes be subscripted at run time (ModelAdmin[Model]) for type checking.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("TRUSTPORTAL_VAR_DIR", BASE_DIR / "var"))

TRUSTPORTAL = load_config()

DEBUG = parse_bool("DEBUG", os.environ.get("DEBUG"), default=False)

# The development/test key is random per checkout and kept in var/, so a checkout never shares
# a signing key with another; production must set SECRET_KEY (a system check refuses otherwise).
INSECURE_SECRET_KEY_PREFIX = "insecure-dev-"


def _development_secret_key() -> str:
    if TRUSTPORTAL.environment == "test":
        return INSECURE_SECRET_KEY_PREFIX + "test-key-not-for-production-use-0123456789"
    path = VAR_DIR / "secret_key"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(INSECURE_SECRET_KEY_PREFIX + secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


# In production a missing SECRET_KEY becomes a marker value the system check refuses by name.
SECRET_KEY = os.environ.get("SECRET_KEY") or (
    _development_secret_key() if not TRUSTPORTAL.is_production else "insecure-missing"
)

ALLOWED_HOSTS = [
    h.strip()
    for h in os.environ.get(
        "ALLOWED_HOSTS", "" if TRUSTPORTAL.is_production else "127.0.0.1,localhost,testserver"
    ).split(",")
    if h.strip()
]

INSTALLED_APPS = [
    "portal.apps.PortalAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "django_celery_beat",
    "trustportal",
    "audit",
    "tokens",
    "issuers",
    "policies",
    "environments",
    "notifications",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "signin",
    "portal",
]
# The development issuer and `make run`'s stack: never loaded by a production process.
if TRUSTPORTAL.environment in ("development", "test"):
    INSTALLED_APPS.append("devtools")

MIDDLEWARE = [
    "trustportal.middleware.SecurityHeadersMiddleware",
    "portal.operations.OperationsMiddleware",
    "trustportal.middleware.DatabaseUnavailableMiddleware",
    "portal.unstorable.UnstorableTextMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "portal.lean.LeanRouteMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "portal.signin.mfa.SecondFactorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "audit.context.AuditContextMiddleware",
    "trustportal.middleware.MethodNotAllowedPageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "trustportal.wsgi.application"
AUTH_USER_MODEL = "trustportal.User"
# Passwords (refused where an organization requires single sign-on), then OpenID Connect
# providers configured in the portal (signin/); see docs/sign-in.md.
AUTHENTICATION_BACKENDS = ["signin.backends.PasswordBackend", "signin.backends.OIDCBackend"]
OTP_TOTP_ISSUER = "Trust Portal"
# The admin never shows TOTP keys or their QR codes (the owner sees the key once, at enrolment).
OTP_ADMIN_HIDE_SENSITIVE_DATA = True

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.navigation.org_tab",
            ],
        },
    },
]

_default_sqlite = f"sqlite:///{VAR_DIR / 'trustportal.sqlite3'}"
DATABASES: dict[str, Any] = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or _default_sqlite,
        conn_max_age=60 if os.environ.get("DATABASE_URL") else 0,
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web server and the Celery worker read while the other writes.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL") or None

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "trustportal",
            # A Redis that hangs must not hang requests: rate limits then fail open and
            # single-use checks fail closed (docs/security.md), within about a second.
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if TRUSTPORTAL.environment == "test":
    # Tests create many users; a slow password hash only slows them down.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# Only production collects static files; elsewhere WhiteNoise serves them from the finders.
STATIC_ROOT = (
    Path(os.environ.get("TRUSTPORTAL_STATIC_ROOT", VAR_DIR / "static"))
    if TRUSTPORTAL.is_production
    else None
)
STATICFILES_DIRS = [BASE_DIR / "trustportal" / "static"]
# Tests and development serve static files from the finders; production from collectstatic.
WHITENOISE_USE_FINDERS = not TRUSTPORTAL.is_production
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if TRUSTPORTAL.is_production
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# Cookies and transport security: strict in production, usable over http://127.0.0.1 otherwise.
SESSION_COOKIE_SECURE = TRUSTPORTAL.is_production
CSRF_COOKIE_SECURE = TRUSTPORTAL.is_production
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if TRUSTPORTAL.is_production:
    SECURE_SSL_REDIRECT = parse_bool(
        "TRUSTPORTAL_SSL_REDIRECT", os.environ.get("TRUSTPORTAL_SSL_REDIRECT"), default=True
    )
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = 31536000
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    CSRF_TRUSTED_ORIGINS = [TRUSTPORTAL.public_url] if TRUSTPORTAL.public_url else []

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["portal.tokens.authentication.AccessTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
    ],
    "EXCEPTION_HANDLER": "portal.errors.exception_handler",
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "portal.negotiation.JsonWhateverAccept",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Trust Portal API",
    "DESCRIPTION": "OIDC token exchange, trust policies, access tokens and environments.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "portal.tokens.schema.document_errors",
        "exchange.schema.document_token_endpoint",
    ],
}


# Celery: Redis when REDIS_URL is set; otherwise kombu's filesystem transport under var/,
# which needs no server. Tests run tasks eagerly unless the integration suite starts a worker.
def filesystem_broker_options(var_dir: Path) -> dict[str, Any]:
    """Where kombu's filesystem transport keeps its messages and exchange tables: all under
    `var_dir` (its `control_folder` otherwise defaults to `control/` in the working directory)."""
    celery_dir = var_dir / "celery"
    return {
        "data_folder_in": str(celery_dir / "queue"),
        "data_folder_out": str(celery_dir / "queue"),
        "processed_folder": str(celery_dir / "processed"),
        "control_folder": str(celery_dir / "control"),
        "store_processed": False,
    }


CELERY_BROKER_URL = REDIS_URL or "filesystem://"
CELERY_RESULT_BACKEND = REDIS_URL or None
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, Any] = (
    {} if REDIS_URL else filesystem_broker_options(VAR_DIR)
)
CELERY_TASK_ALWAYS_EAGER = TRUSTPORTAL.environment == "test"
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"

LOGGING = logging_config(TRUSTPORTAL.log_format, os.environ.get("TRUSTPORTAL_LOG_LEVEL", "INFO"))

# Webhook and e-mail retries wait this long, then twice as long, … (6 attempts in all).
NOTIFICATION_RETRY_BASE_SECONDS = 30
EMAIL_BACKEND = os.environ.get(
    "TRUSTPORTAL_EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend"
)
EMAIL_HOST = os.environ.get("TRUSTPORTAL_EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("TRUSTPORTAL_EMAIL_PORT", "25"))
DEFAULT_FROM_EMAIL = os.environ.get("TRUSTPORTAL_EMAIL_FROM", "trustportal@localhost")

CELERY_BEAT_SCHEDULE: dict[str, Any] = {
    # Organizations whose denied exchanges exceed their threshold get an alert (once an hour).
    "check-denials": {"task": "notifications.tasks.check_denials", "schedule": 5 * 60.0},
    # Audit records not yet handed to webhooks and e-mail (a fan-out lost after its commit),
    # and failed deliveries whose backoff has passed.
    "fan-out-notifications": {"task": "notifications.tasks.fan_out_pending", "schedule": 60.0},
    "retry-notifications": {"task": "notifications.tasks.retry_due", "schedule": 15.0},
    # Checked every minute; each issuer is refreshed when its own interval (Cache-Control
    # max-age within 5 min-24 h, default 15 min) is due.
    "refresh-due-issuer-keys": {"task": "issuers.tasks.refresh_due_issuer_keys", "schedule": 60.0},
    "report-issuer-warnings": {
        "task": "issuers.tasks.report_issuer_warnings",
        "schedule": 24 * 60 * 60.0,
    },
    # Tokens expired or revoked over 7 days ago and used jtis past expiry, in 10,000-row batches.
    "purge-tokens": {"task": "tokens.tasks.purge_tokens", "schedule": 5 * 60.0},
    # Exchange events past TRUSTPORTAL_EVENT_RETENTION_DAYS (default 400).
    "purge-exchange-events": {
        "task": "tokens.tasks.purge_exchange_events",
        "schedule": 24 * 60 * 60.0,
    },
    # Buffered token uses to last_used (at most once a minute per token).
    "flush-token-usage": {"task": "tokens.tasks.flush_token_usage", "schedule": 60.0},
    # The portal's OIDC signing keys: a next key published a day before it signs, the previous
    # one kept in the JWKS until its last token expired (environments/signing.py).
    "rotate-signing-keys": {
        "task": "environments.tasks.rotate_signing_keys",
        "schedule": 15 * 60.0,
    },
    # Sealed fn::open outputs of open sessions that have expired.
    "purge-open-outputs": {
        "task": "environments.tasks.purge_open_outputs",
        "schedule": 15 * 60.0,
    },
}
