"""The TRUSTPORTAL_* settings as one typed value, read once from the environment."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ENVIRONMENTS = ("production", "development", "test")
LOOPBACK_NETWORKS: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
)
LOG_FORMATS = ("plain", "json")


class ConfigError(ValueError):
    """A TRUSTPORTAL_* variable has a value the service cannot use."""


def parse_bool(name: str, value: str | None, *, default: bool) -> bool:
    """Parse a boolean environment variable; refuses anything but the usual spellings."""
    if value is None or value.strip() == "":
        return default
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, not {value!r}")


def parse_networks(name: str, value: str | None) -> tuple[IPNetwork, ...]:
    """Parse a comma-separated list of CIDRs."""
    if not value:
        return ()
    networks = []
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError as exc:
            raise ConfigError(f"{name}: {item!r} is not a network in CIDR form") from exc
    return tuple(networks)


@dataclass(frozen=True)
class ProviderEndpoint:
    """One entry of TRUSTPORTAL_PROVIDER_ENDPOINTS: a URL prefix (or a host) providers may call.

    `vault.internal:8200` stands for `https://vault.internal:8200` with any path. The entry is
    compared by parts (scheme, host, port, then whole path segments), never as raw text, so
    `https://vault.internal` does not cover `https://vault.internal.attacker.example`.
    """

    scheme: str
    host: str
    port: int
    path: str = ""  # without a trailing slash; "" covers every path

    def __str__(self) -> str:
        default = 443 if self.scheme == "https" else 80
        port = "" if self.port == default else f":{self.port}"
        return f"{self.scheme}://{self.host}{port}{self.path}"


def parse_provider_endpoint(name: str, item: str) -> ProviderEndpoint:
    """Parse one allow-list entry (`https://host[:port][/path]`, `http://…` or `host[:port]`)."""
    text = item if "://" in item else f"https://{item}"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"{name}: {item!r} is not a URL prefix or a host") from exc
    if (
        parts.scheme not in ("https", "http")
        or not parts.hostname
        or "@" in parts.netloc
        or parts.query
        or parts.fragment
        or any(not ("!" <= ch <= "~") or ch in "?#\\" for ch in text)
    ):
        raise ConfigError(
            f"{name}: {item!r} must be https://host[:port][/path] (or http:// for loopback), "
            "or a host, without a user name, query or fragment"
        )
    default = 443 if parts.scheme == "https" else 80
    return ProviderEndpoint(
        scheme=parts.scheme,
        host=parts.hostname.lower(),
        port=port if port is not None else default,
        path=parts.path.rstrip("/"),
    )


def parse_provider_endpoints(name: str, value: str | None) -> tuple[ProviderEndpoint, ...]:
    """Parse a comma-separated list of provider endpoint prefixes or hosts."""
    items = [item.strip() for item in (value or "").split(",")]
    return tuple(parse_provider_endpoint(name, item) for item in items if item)


@dataclass(frozen=True)
class TrustPortalConfig:
    """Everything the service reads from TRUSTPORTAL_* variables."""

    environment: str = "production"
    allow_http_issuers: bool = False
    issuer_allowed_networks: tuple[IPNetwork, ...] = ()
    issuer_ca_bundle: str | None = None
    secrets_key: str | None = None
    audience_prefix: str = "urn:pulumi:org:"
    public_url: str = "http://127.0.0.1:8000"
    rate_limit_per_ip: int = 600
    rate_limit_per_subject: int = 120
    # Exchange events older than this are purged daily; 0 keeps them forever.
    event_retention_days: int = 400
    # The portal's own OIDC issuer (ID tokens for `fn::open` providers); unset in development
    # means "from the request's host", and production warns at start-up (trustportal.W005).
    oidc_issuer_url: str | None = None
    oidc_key_rotation_days: int = 30
    # Reverse proxies whose X-Forwarded-For is believed (trustportal/clientaddr.py); empty means
    # the client address is REMOTE_ADDR.
    trusted_proxies: tuple[IPNetwork, ...] = ()
    # Who may read /metrics: a bearer token, and/or peers in these networks (neither: nobody).
    metrics_token: str | None = None
    metrics_allowed_networks: tuple[IPNetwork, ...] = ()
    # Networks webhook URLs may resolve to besides public addresses (never the issuers' list).
    webhook_allowed_networks: tuple[IPNetwork, ...] = ()
    # "plain" (one line of text a record) or "json" (one JSON object a line).
    log_format: str = "plain"
    # Where `fn::open` providers may send the portal's ID tokens besides each cloud's official
    # token endpoints (Vault addresses, private or regional endpoints). Issuer networks above
    # never widen it.
    provider_endpoints: tuple[ProviderEndpoint, ...] = ()

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    def non_loopback_networks(self) -> tuple[IPNetwork, ...]:
        """The allowed issuer networks that are not entirely loopback."""
        return tuple(
            net
            for net in self.issuer_allowed_networks
            if not any(
                net.version == lo.version and net.subnet_of(lo)  # type: ignore[arg-type]
                for lo in LOOPBACK_NETWORKS
            )
        )


def load_config(environ: Mapping[str, str] = os.environ) -> TrustPortalConfig:
    """Build the configuration from environment variables, refusing malformed values."""
    environment = environ.get("TRUSTPORTAL_ENV", "production").strip().lower()
    if environment not in ENVIRONMENTS:
        raise ConfigError(f"TRUSTPORTAL_ENV must be one of {', '.join(ENVIRONMENTS)}")
    ca_bundle = environ.get("TRUSTPORTAL_ISSUER_CA_BUNDLE") or None
    if ca_bundle is not None and not Path(ca_bundle).is_file():
        raise ConfigError(f"TRUSTPORTAL_ISSUER_CA_BUNDLE: no file at {ca_bundle}")
    log_format = (environ.get("TRUSTPORTAL_LOG_FORMAT") or "plain").strip().lower()
    if log_format not in LOG_FORMATS:
        raise ConfigError(f"TRUSTPORTAL_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}")
    return TrustPortalConfig(
        environment=environment,
        allow_http_issuers=parse_bool(
            "TRUSTPORTAL_ALLOW_HTTP_ISSUERS",
            environ.get("TRUSTPORTAL_ALLOW_HTTP_ISSUERS"),
            default=False,
        ),
        issuer_allowed_networks=parse_networks(
            "TRUSTPORTAL_ISSUER_ALLOWED_NETWORKS",
            environ.get("TRUSTPORTAL_ISSUER_ALLOWED_NETWORKS"),
        ),
        issuer_ca_bundle=ca_bundle,
        secrets_key=environ.get("TRUSTPORTAL_SECRETS_KEY") or None,
        audience_prefix=environ.get("TRUSTPORTAL_AUDIENCE_PREFIX") or "urn:pulumi:org:",
        public_url=(environ.get("TRUSTPORTAL_PUBLIC_URL") or "http://127.0.0.1:8000").rstrip("/"),
        rate_limit_per_ip=parse_int(
            "TRUSTPORTAL_RATE_LIMIT_PER_IP", environ.get("TRUSTPORTAL_RATE_LIMIT_PER_IP"), 600
        ),
        rate_limit_per_subject=parse_int(
            "TRUSTPORTAL_RATE_LIMIT_PER_SUBJECT",
            environ.get("TRUSTPORTAL_RATE_LIMIT_PER_SUBJECT"),
            120,
        ),
        event_retention_days=parse_int(
            "TRUSTPORTAL_EVENT_RETENTION_DAYS",
            environ.get("TRUSTPORTAL_EVENT_RETENTION_DAYS"),
            400,
        ),
        oidc_issuer_url=(environ.get("TRUSTPORTAL_OIDC_ISSUER_URL") or "").rstrip("/") or None,
        oidc_key_rotation_days=parse_int(
            "TRUSTPORTAL_OIDC_KEY_ROTATION_DAYS",
            environ.get("TRUSTPORTAL_OIDC_KEY_ROTATION_DAYS"),
            30,
        ),
        trusted_proxies=parse_networks(
            "TRUSTPORTAL_TRUSTED_PROXIES", environ.get("TRUSTPORTAL_TRUSTED_PROXIES")
        ),
        metrics_token=environ.get("TRUSTPORTAL_METRICS_TOKEN") or None,
        metrics_allowed_networks=parse_networks(
            "TRUSTPORTAL_METRICS_ALLOWED_NETWORKS",
            environ.get("TRUSTPORTAL_METRICS_ALLOWED_NETWORKS"),
        ),
        webhook_allowed_networks=parse_networks(
            "TRUSTPORTAL_WEBHOOK_ALLOWED_NETWORKS",
            environ.get("TRUSTPORTAL_WEBHOOK_ALLOWED_NETWORKS"),
        ),
        log_format=log_format,
        provider_endpoints=parse_provider_endpoints(
            "TRUSTPORTAL_PROVIDER_ENDPOINTS", environ.get("TRUSTPORTAL_PROVIDER_ENDPOINTS")
        ),
    )


def parse_int(name: str, value: str | None, default: int) -> int:
    """A non-negative whole number (0 turns a limit off)."""
    if value is None or not value.strip():
        return default
    try:
        number = int(value)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a whole number, not {value!r}") from exc
    if number < 0:
        raise ConfigError(f"{name} must not be negative")
    return number
