"""Writes: registering issuers, refreshing their keys, pinning their certificates."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.diff import snapshot
from audit.services import audit_record
from issuers import alerts, limits
from issuers.certificates import note_fetch_refused, record_served_certificate
from issuers.discovery import (
    Deadline,
    Discovered,
    DiscoveryError,
    Fetch,
    KeySet,
    discover,
    fetch_keys,
)
from issuers.errors import IssuerConflict, IssuerInvalid
from issuers.jwks import KTY_ALGORITHMS, JwksError, ParsedKey, parse_jwks
from issuers.models import (
    DEFAULT_MAX_EXPIRATION,
    MAX_EXPIRATION_LIMIT,
    Issuer,
    IssuerKey,
    KeyFetch,
)
from kernel.config import TrustPortalConfig
from outbound.addresses import Resolver, system_resolve
from outbound.client import fetch_json
from outbound.policy import OutboundPolicy
from outbound.transport import Certificate, normalize_thumbprint
from trustportal.models import Organization

ALLOWED_ALGORITHMS = frozenset().union(*KTY_ALGORITHMS.values())
MIN_REFRESH = 5 * 60
MAX_REFRESH = 24 * 60 * 60
DEFAULT_REFRESH = 15 * 60
MAX_AUDIENCES = 20
# What an audit record shows of an issuer (its public keys by id: `static_kids`).
AUDITED_FIELDS = (
    "name",
    "url",
    "issuer",
    "jwks_uri",
    "max_expiration",
    "audiences",
    "algorithms",
    "single_use",
    "enabled",
    "thumbprints",
)


def issuer_snapshot(issuer: Issuer) -> dict[str, Any]:
    """The issuer's settings as an audit record's before/after."""
    values = snapshot(issuer, AUDITED_FIELDS)
    if issuer.static_jwks is not None:
        values["static_kids"] = sorted(
            str(key.get("kid", "")) for key in issuer.static_jwks.get("keys", [])
        )
    return values


def outbound_policy(config: TrustPortalConfig | None = None) -> OutboundPolicy:
    """The outbound guard's settings from the TRUSTPORTAL_* configuration."""
    config = config or settings.TRUSTPORTAL
    return OutboundPolicy(
        allow_http=config.allow_http_issuers,
        allowed_networks=config.issuer_allowed_networks,
        ca_bundle=config.issuer_ca_bundle,
    )


@dataclass(frozen=True)
class Outbound:
    """How to reach issuers: the guard's policy plus the injectable resolver and fetcher.

    `total_timeout` bounds a whole operation (discovery and JWKS together); `slot` is entered
    around each operation's fetches (a per-organization concurrency limit for web requests).
    """

    policy: OutboundPolicy
    resolve: Resolver = system_resolve
    fetch: Fetch = fetch_json
    total_timeout: float | None = None
    slot: Callable[[], AbstractContextManager[object]] = nullcontext


def default_outbound() -> Outbound:
    """For workers: each fetch bounded by the guard's timeout, no concurrency limit."""
    return Outbound(policy=outbound_policy())


def web_outbound(organization: Organization) -> Outbound:
    """For web requests: one short deadline per operation, one operation at a time per org."""
    return Outbound(
        policy=outbound_policy(),
        total_timeout=limits.WEB_DEADLINE,
        slot=partial(limits.organization_fetch_slot, organization.pk),
    )


def _discover(url: str, thumbprints: Sequence[str], outbound: Outbound) -> Discovered:
    """Discovery under the outbound's slot and deadline; refusals become IssuerInvalid."""
    try:
        with outbound.slot():
            return discover(
                url,
                policy=outbound.policy,
                thumbprints=thumbprints,
                resolve=outbound.resolve,
                fetch=outbound.fetch,
                total_timeout=outbound.total_timeout,
            )
    except DiscoveryError as exc:
        raise IssuerInvalid(exc.message, reason=exc.reason) from exc


# --- input validation ---------------------------------------------------------------------------
def clean_thumbprints(values: Any) -> list[str]:
    if values is None:
        return []
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise IssuerInvalid("thumbprints must be a list of strings")
    try:
        return list(dict.fromkeys(normalize_thumbprint(v) for v in values))
    except ValueError as exc:
        raise IssuerInvalid(
            "each thumbprint must be the SHA-256 of a certificate: 64 hex digits, "
            "optionally separated by colons"
        ) from exc


def clean_max_expiration(value: Any) -> int:
    if value is None:
        return DEFAULT_MAX_EXPIRATION
    if isinstance(value, bool) or not isinstance(value, int):
        raise IssuerInvalid("maxExpiration must be a whole number of seconds")
    if not 60 <= value <= MAX_EXPIRATION_LIMIT:
        raise IssuerInvalid(f"maxExpiration must be between 60 and {MAX_EXPIRATION_LIMIT} seconds")
    return value


def clean_audiences(values: Any) -> list[str]:
    if values is None:
        return []
    if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
        raise IssuerInvalid("audiences must be a list of non-empty strings")
    if len(values) > MAX_AUDIENCES or any(len(v) > 512 for v in values):
        raise IssuerInvalid(f"at most {MAX_AUDIENCES} audiences of at most 512 characters")
    return list(dict.fromkeys(values))


def clean_algorithms(values: Any) -> list[str] | None:
    if values is None:
        return None
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise IssuerInvalid("algorithms must be a non-empty list")
    unknown = sorted(set(values) - ALLOWED_ALGORITHMS)
    if unknown:
        raise IssuerInvalid(
            f"unsupported algorithms {', '.join(unknown)}; choose from "
            + ", ".join(sorted(ALLOWED_ALGORITHMS))
        )
    return list(dict.fromkeys(values))


def clean_name(value: Any, *, default: str = "") -> str:
    name = value if value is not None else default
    if not isinstance(name, str) or not name.strip():
        raise IssuerInvalid("name is required")
    if len(name) > 200:
        raise IssuerInvalid("name must be at most 200 characters")
    return name.strip()


def clean_static_jwks(value: Any) -> tuple[dict[str, Any], list[ParsedKey]] | None:
    if value is None:
        return None
    try:
        return value, parse_jwks(value)
    except JwksError as exc:
        raise IssuerInvalid(f"jwks: {exc.message}", reason=exc.reason) from exc


# --- registration -------------------------------------------------------------------------------
@dataclass(frozen=True)
class IssuerPreview:
    """What registering a URL would store, before anything is saved (the wizard's step 2)."""

    url: str
    discovered: Discovered


def issuer_preview(
    *, url: str, thumbprints: Sequence[str] = (), outbound: Outbound
) -> IssuerPreview:
    """Run discovery for a URL and return what it found; saves nothing."""
    url = url.strip()
    if not url:
        raise IssuerInvalid("url is required")
    discovered = _discover(url, clean_thumbprints(list(thumbprints)), outbound)
    return IssuerPreview(url=url, discovered=discovered)


def issuer_create(
    *,
    organization: Organization,
    url: Any,
    name: Any = None,
    thumbprints: Any = None,
    jwks: Any = None,
    max_expiration: Any = None,
    audiences: Any = None,
    algorithms: Any = None,
    single_use: bool = False,
    outbound: Outbound,
    in_transaction: Callable[[Issuer], object],
    now: datetime | None = None,
) -> Issuer:
    """Register an issuer for an organization: discovery and keys unless a static JWKS is given.

    `in_transaction(issuer)` runs in the transaction that saves the issuer, before its audit
    record: the registration use case (`policies.registration.issuer_register`) creates the
    issuer's policy there. Discovery runs before, outside any transaction.

    Given thumbprints are pinned and must match a served certificate (the error names the
    computed one). Without them nothing is pinned: the hosts are verified against the trusted
    CAs and the served thumbprints are recorded as observed. Does not create any allow policy:
    a new issuer denies everything until an admin writes one.
    """
    now = now or timezone.now()
    if not isinstance(url, str) or not url.strip():
        raise IssuerInvalid("url is required")
    url = url.strip()
    if len(url) > 2048:
        raise IssuerInvalid("url must be at most 2048 characters")
    pinned = clean_thumbprints(thumbprints)
    static = clean_static_jwks(jwks)
    host = _url_host(url, require_http=static is not None)
    fields: dict[str, Any] = {
        "organization": organization,
        "name": clean_name(name, default=host),
        "url": url,
        "max_expiration": clean_max_expiration(max_expiration),
        "audiences": clean_audiences(audiences),
        "single_use": bool(single_use),
    }
    allowed = clean_algorithms(algorithms)
    if allowed is not None:
        fields["algorithms"] = allowed
    certificate: Certificate | None = None
    observed: list[str] | None = None
    if static is not None:
        if pinned:
            raise IssuerInvalid("thumbprints apply only to issuers whose keys are fetched")
        document, keys = static
        fields.update(issuer=url, static_jwks=document, thumbprints=[])
        key_set = KeySet(keys=keys, etag="", max_age=None, certificate=None, status=200)
    else:
        discovered = issuer_preview(url=url, thumbprints=pinned, outbound=outbound).discovered
        fields.update(issuer=discovered.issuer, jwks_uri=discovered.jwks_uri, thumbprints=pinned)
        key_set = discovered.keys
        certificate, observed = key_set.certificate, discovered.thumbprints
    _check_unique(organization, fields["issuer"], fields["name"])
    try:
        with transaction.atomic():
            issuer = Issuer.objects.create(**fields)
            _record_keys(
                issuer,
                key_set,
                trigger="register",
                now=now,
                certificate=certificate,
                observed=observed,
            )
            in_transaction(issuer)
            audit_record(
                event="issuer-registered",
                description=f"The issuer {issuer.name} ({issuer.issuer}) was registered.",
                organization=organization,
                target=issuer,
                after=issuer_snapshot(issuer),
            )
    except IntegrityError as exc:  # a concurrent registration won the race
        raise IssuerConflict("this issuer or name is already registered") from exc
    return issuer


def _url_host(url: str, *, require_http: bool) -> str:
    """The host of an issuer URL (the default name); refuses a URL that cannot be parsed.

    Static-JWKS issuers are never fetched, but their URL is still the `iss` to match, so with
    `require_http` it must be an http(s) URL with a host; fetched issuers' URLs go through the
    outbound guard, which explains a wrong scheme more precisely.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError as exc:
        raise IssuerInvalid(f"the URL cannot be parsed ({exc})", reason="bad_url") from exc
    if require_http and (parts.scheme not in ("https", "http") or not host):
        raise IssuerInvalid("the URL must be an https:// URL with a host name", reason="bad_url")
    return host or url


def _check_unique(
    organization: Organization, issuer_value: str, name: str, *, exclude: Any = None
) -> None:
    others = Issuer.objects.filter(organization=organization).exclude(pk=exclude)
    clash = others.filter(issuer=issuer_value).first()
    if clash is not None:
        raise IssuerConflict(f"the issuer {issuer_value} is already registered as {clash.name!r}")
    if others.filter(name=name).exists():
        raise IssuerConflict(f"an issuer named {name!r} already exists")


# --- updates ------------------------------------------------------------------------------------
def issuer_update(
    *,
    issuer: Issuer,
    data: dict[str, Any],
    outbound: Outbound,
    now: datetime | None = None,
    tokens_revoked: int | None = None,
) -> Issuer:
    """Change an issuer's settings (Pulumi PATCH semantics: name required, URL immutable).

    Everything is validated before the issuer is touched: a refusal leaves it unchanged.
    `tokens_revoked` is what the caller revoked with this change, for the audit record.
    """
    now = now or timezone.now()
    if "url" in data and data["url"] != issuer.url:
        raise IssuerInvalid("the URL of an issuer cannot change; register a new issuer instead")
    changes: dict[str, Any] = {"name": clean_name(data.get("name"))}
    if "maxExpiration" in data:
        changes["max_expiration"] = clean_max_expiration(data["maxExpiration"])
    if "audiences" in data:
        changes["audiences"] = clean_audiences(data["audiences"])
    if "algorithms" in data:
        changes["algorithms"] = clean_algorithms(data["algorithms"]) or issuer.algorithms
    if "singleUse" in data:
        changes["single_use"] = _clean_bool("singleUse", data["singleUse"])
    if "enabled" in data:
        changes["enabled"] = _clean_bool("enabled", data["enabled"])
    static = clean_static_jwks(data.get("jwks")) if data.get("jwks") is not None else None
    if static is not None and not issuer.is_static:
        raise IssuerInvalid("this issuer fetches its keys; a static jwks cannot be set")
    if "thumbprints" in data and data["thumbprints"] is not None:
        pinned = clean_thumbprints(data["thumbprints"])
        if pinned and issuer.is_static:
            raise IssuerInvalid("thumbprints apply only to issuers whose keys are fetched")
        if pinned:
            # Changing the pin is checked against what the host serves right now.
            _verify_pin(issuer, pinned, outbound)
        changes["thumbprints"] = pinned
    _check_unique(issuer.organization, issuer.issuer, changes["name"], exclude=issuer.pk)
    with transaction.atomic():
        before = issuer_snapshot(issuer)
        for name, value in changes.items():
            setattr(issuer, name, value)
        if static is not None:
            issuer.static_jwks = static[0]
        issuer.save()
        if static is not None:
            _record_keys(
                issuer,
                KeySet(keys=static[1], etag="", max_age=None, certificate=None, status=200),
                trigger="manual",
                now=now,
                certificate=None,
            )
        after = issuer_snapshot(issuer)
        if tokens_revoked is not None:
            after["tokens_revoked"] = tokens_revoked
        if after != before:
            _record_update(issuer, before, after)
    return issuer


def _record_update(issuer: Issuer, before: dict[str, Any], after: dict[str, Any]) -> None:
    if before["enabled"] and not after["enabled"]:
        event, verb = "issuer-disabled", "disabled"
    elif after["enabled"] and not before["enabled"]:
        event, verb = "issuer-enabled", "enabled"
    else:
        event, verb = "issuer-updated", "changed"
    audit_record(
        event=event,
        description=f"The issuer {issuer.name} was {verb}.",
        organization=issuer.organization,
        target=issuer,
        before=before,
        after=after,
    )


def _clean_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise IssuerInvalid(f"{name} must be true or false")
    return value


def _verify_pin(issuer: Issuer, pinned: list[str], outbound: Outbound) -> None:
    _discover(issuer.url, pinned, outbound)


def issuer_regenerate_thumbprints(*, issuer: Issuer, outbound: Outbound) -> Issuer:
    """Re-read the certificates the issuer's hosts serve now (not for static JWKS).

    An issuer with pins gets the served thumbprints pinned instead (after a renewal); one
    without pins only has them recorded as observed: regenerating never starts pinning. The
    certificate-changed warning is cleared, since an admin has now looked.
    """
    if issuer.is_static:
        raise IssuerInvalid("this issuer has a static JWKS; there is no certificate to pin")
    discovered = issuer_preview(url=issuer.url, outbound=outbound).discovered
    if discovered.issuer != issuer.issuer:
        raise IssuerInvalid(
            f"discovery now names the issuer {discovered.issuer!r}, not {issuer.issuer!r}"
        )
    fields = ("thumbprints", "observed_thumbprints", "cert_sha256", "cert_changed_at")
    with transaction.atomic():
        before = snapshot(issuer, fields)
        if issuer.thumbprints:
            issuer.thumbprints = discovered.thumbprints
        record_served_certificate(
            issuer, discovered.keys.certificate, timezone.now(), discovered=discovered.thumbprints
        )
        issuer.cert_changed_at = None
        issuer.save()
        audit_record(
            event="issuer-thumbprints-regenerated",
            description=f"The certificate thumbprints of the issuer {issuer.name} were re-read.",
            organization=issuer.organization,
            target=issuer,
            before=before,
            after=snapshot(issuer, fields),
        )
    return issuer


# --- keys ---------------------------------------------------------------------------------------
def refresh_interval(max_age: int | None) -> int:
    """Honour the issuer's Cache-Control max-age within 5 minutes to 24 hours."""
    if max_age is None:
        return DEFAULT_REFRESH
    return max(MIN_REFRESH, min(MAX_REFRESH, max_age))


def _record_keys(
    issuer: Issuer,
    key_set: KeySet,
    *,
    trigger: str,
    now: datetime,
    certificate: Certificate | None,
    observed: list[str] | None = None,
) -> KeyFetch:
    """Make the stored keys equal the fetched set (inside the caller's transaction)."""
    existing = {k.kid: k for k in IssuerKey.objects.filter(issuer=issuer)}
    fetched = {k.kid: k for k in key_set.keys}
    added = removed = 0
    for kid, key in fetched.items():
        row = existing.get(kid)
        if row is None:
            IssuerKey.objects.create(
                issuer=issuer,
                kid=kid,
                kty=key.kty,
                alg=key.alg or "",
                size=key.size,
                jwk=key.jwk,
                first_seen=now,
                last_seen=now,
            )
            added += 1
        elif row.jwk != key.jwk or row.removed_at is not None:
            # A kid that comes back, or now names other key material, counts as a new key.
            row.jwk, row.kty, row.alg, row.size = key.jwk, key.kty, key.alg or "", key.size
            row.first_seen, row.last_seen, row.removed_at = now, now, None
            row.save()
            added += 1
        else:
            row.last_seen = now
            row.save(update_fields=["last_seen"])
    for kid, row in existing.items():
        if kid not in fetched and row.removed_at is None:
            row.removed_at = now
            row.save(update_fields=["removed_at"])
            removed += 1
    if added or removed:
        issuer.keys_version += 1
        issuer.keys_changed_at = now
    interval = refresh_interval(key_set.max_age)
    issuer.refresh_interval = interval
    issuer.next_refresh_at = now + timedelta(seconds=interval)
    issuer.last_fetch_at = issuer.last_success_at = now
    issuer.jwks_etag = key_set.etag
    changed = record_served_certificate(issuer, certificate, now, discovered=observed)
    issuer.save()
    if changed:
        alerts.certificate_changed(issuer)
    return KeyFetch.objects.create(
        issuer=issuer,
        at=now,
        trigger=trigger,
        ok=True,
        status=key_set.status,
        keys_added=added,
        keys_removed=removed,
    )


def issuer_refresh_keys(
    *, issuer: Issuer, trigger: str, outbound: Outbound, now: datetime | None = None
) -> KeyFetch | None:
    """Fetch the issuer's JWKS and store it; on any error keep the previous set and record it.

    Static-JWKS issuers are never fetched (returns None). The fetch happens outside any
    transaction; the key update is one transaction with the issuer row locked, so a process
    killed half-way leaves the previous complete set.
    """
    if issuer.is_static:
        return None
    now = now or timezone.now()
    try:
        with outbound.slot():
            key_set = fetch_keys(
                issuer.jwks_uri,
                policy=outbound.policy,
                thumbprints=issuer.thumbprints,
                etag=issuer.jwks_etag,
                resolve=outbound.resolve,
                fetch=outbound.fetch,
                deadline=Deadline.after(outbound.total_timeout),
            )
    except DiscoveryError as exc:
        note_fetch_refused(issuer, exc.reason, exc.message)
        with transaction.atomic():
            locked = Issuer.objects.select_for_update().get(pk=issuer.pk)
            was_failing = bool(locked.last_error)
            locked.last_fetch_at = locked.last_error_at = now
            locked.last_error, locked.last_error_reason = exc.message[:1000], exc.reason
            # Retry a failing issuer sooner than a healthy one, but not in a tight loop.
            locked.next_refresh_at = now + timedelta(seconds=MIN_REFRESH)
            locked.save()
            fetch = KeyFetch.objects.create(
                issuer=locked,
                at=now,
                trigger=trigger,
                ok=False,
                reason=exc.reason,
                message=exc.message[:1000],
            )
            if not was_failing:
                alerts.fetch_started_failing(locked, exc.reason, exc.message)
        issuer.refresh_from_db()
        return fetch
    with transaction.atomic():
        locked = Issuer.objects.select_for_update().get(pk=issuer.pk)
        locked.last_error = locked.last_error_reason = ""
        if key_set.not_modified:
            locked.last_fetch_at = locked.last_success_at = now
            locked.next_refresh_at = now + timedelta(seconds=locked.refresh_interval)
            changed = record_served_certificate(locked, key_set.certificate, now)
            locked.save()
            if changed:
                alerts.certificate_changed(locked)
            fetch = KeyFetch.objects.create(
                issuer=locked, at=now, trigger=trigger, ok=True, status=304
            )
        else:
            fetch = _record_keys(
                locked, key_set, trigger=trigger, now=now, certificate=key_set.certificate
            )
    issuer.refresh_from_db()
    return fetch
