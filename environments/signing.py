"""The portal as an OIDC issuer: its RS256 signing keys, their rotation, the JWKS, and ID tokens.

Environments hand ID tokens to `fn::open` providers (`environments/providers/`), which present
them to a cloud's STS, Vault or any relying party that trusts `<issuer URL>` (the
`/oidc/.well-known/…` documents, `portal/environments/oidc_views.py`).

Keys live in `SigningKey` rows; the private key only as AES-256-GCM ciphertext, sealed with
`kernel/secretbox.py` under its own HKDF label (the same TRUSTPORTAL_SECRETS_KEY material,
never the same derived key) and bound to the key's `kid`. Rotation, one idempotent
`signing_keys_rotate` call that beat runs every 15 minutes:

1. No current key: create one that signs at once (the very first key: nothing was published
   before it, so there is nothing to overlap with).
2. No next key: create one. It is in the JWKS from that moment, not signing.
3. The current key is older than the rotation period and the next key has been published for at
   least `PUBLICATION_DELAY`: the next key becomes current, the current becomes previous.
4. A previous key whose every token has expired (stopped signing + the longest ID-token lifetime
   + `RETENTION_SKEW`): retired — out of the JWKS, private key erased.

Deliberately does not: sign with a key that relying parties could not yet have fetched (past the
first), keep a private key in plaintext anywhere but in memory while signing, mint a token that
lives less than a minute or more than an hour.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets as random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.db import IntegrityError, transaction
from django.utils import timezone

from environments.models import KeyState, SigningKey
from environments.providers.base import (
    MAX_ID_TOKEN_LIFETIME,
    MIN_ID_TOKEN_LIFETIME,
    IdTokenRequest,
    OpenContext,
    ProviderError,
)
from kernel.config import TrustPortalConfig
from kernel.secretbox import SecretBox, SecretKey

ALGORITHM = "RS256"
KEY_BITS = 2048
PUBLICATION_DELAY = timedelta(hours=24)  # far above the JWKS Cache-Control max-age
JWKS_MAX_AGE = 300  # seconds relying parties may cache the JWKS and discovery documents
RETENTION_SKEW = timedelta(minutes=5)  # clock skew relying parties commonly allow
ISSUER_PATH = "/oidc"
DEFAULT_PROJECT = "default"

# HKDF labels: the signing keys' sealing key is never the environment secrets' key.
SEALING_LABEL = b"trustportal/oidc/signing-keys/v1"
SEALING_FROM_SECRET_KEY_LABEL = b"trustportal/oidc/signing-keys/v1/derived-from-SECRET_KEY"

SUBJECT_ATTRIBUTES = (
    "rootEnvironment.name",
    "currentEnvironment.name",
    "pulumi.user.login",
    "pulumi.organization.login",
)
CUSTOM_CLAIMS = ("org", "current_env", "root_env", "trigger_user", "exchange_event")

GenerateKey = Callable[[], rsa.RSAPrivateKey]


def generate_rsa_key() -> rsa.RSAPrivateKey:
    """A fresh 2048-bit RSA key (public exponent 65537)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)


# --- sealing ------------------------------------------------------------------------------------
def sealing_box(secrets_key: str | None, *, secret_key: str) -> SecretBox:
    """The box that seals signing keys: TRUSTPORTAL_SECRETS_KEY (or SECRET_KEY outside
    production) through HKDF with this module's own labels."""
    if secrets_key:
        return SecretBox((SecretKey.derive(secrets_key, label=SEALING_LABEL),))
    return SecretBox((SecretKey.derive(secret_key, label=SEALING_FROM_SECRET_KEY_LABEL),))


def default_sealing_box() -> SecretBox:
    """The sealing box built from settings (read here, at the edge)."""
    from django.conf import settings

    return sealing_box(settings.TRUSTPORTAL.secrets_key, secret_key=settings.SECRET_KEY)


def _key_context(kid: str) -> bytes:
    return f"trustportal:oidc-signing-key:{kid}".encode()


def public_jwk(public_key: rsa.RSAPublicKey) -> dict[str, Any]:
    """The public JWK with its RFC 7638 thumbprint as `kid`."""
    numbers = public_key.public_numbers()

    def b64(number: int) -> str:
        raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    members = {"e": b64(numbers.e), "kty": "RSA", "n": b64(numbers.n)}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    kid = base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()
    return {**members, "kid": kid, "use": "sig", "alg": ALGORITHM}


def _create_key(
    state: str, *, now: datetime, box: SecretBox, generate: GenerateKey
) -> SigningKey:
    private = generate()
    if private.key_size < KEY_BITS:
        raise ValueError(f"signing keys must have at least {KEY_BITS} bits")
    jwk = public_jwk(private.public_key())
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    return SigningKey.objects.create(
        kid=jwk["kid"],
        state=state,
        public_jwk=jwk,
        private_key=box.encrypt(pem, context=_key_context(jwk["kid"])),
        created=now,
        activated=now if state == KeyState.CURRENT else None,
    )


# --- rotation -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rotation:
    """What one rotation run did (kids)."""

    created: tuple[str, ...] = ()
    promoted: str | None = None
    retired: tuple[str, ...] = ()


def retirement_due(key: SigningKey) -> datetime | None:
    """When a previous key may leave the JWKS: after the last token it signed has expired."""
    if key.deactivated is None:
        return None
    return key.deactivated + MAX_ID_TOKEN_LIFETIME + RETENTION_SKEW


def signing_keys_rotate(
    *,
    rotation_period: timedelta,
    now: datetime | None = None,
    box: SecretBox | None = None,
    generate: GenerateKey = generate_rsa_key,
) -> Rotation:
    """Create, promote and retire signing keys as the module docstring says; idempotent.

    Runs under a row lock so two workers never promote twice; a concurrent first start that
    loses the race to create the first key finds it created (unique constraints) and stops.
    """
    now = now or timezone.now()
    box = box or default_sealing_box()
    created: list[str] = []
    retired: list[str] = []
    promoted: str | None = None
    try:
        with transaction.atomic():
            keys = list(SigningKey.objects.select_for_update().exclude(state=KeyState.RETIRED))
            current = next((k for k in keys if k.state == KeyState.CURRENT), None)
            upcoming = next((k for k in keys if k.state == KeyState.NEXT), None)
            if current is None:
                current = _create_key(KeyState.CURRENT, now=now, box=box, generate=generate)
                created.append(current.kid)
            elif (
                upcoming is not None
                and current.activated is not None
                and now - current.activated >= rotation_period
                and now - upcoming.created >= PUBLICATION_DELAY
            ):
                current.state, current.deactivated = KeyState.PREVIOUS, now
                current.save(update_fields=["state", "deactivated"])
                upcoming.state, upcoming.activated = KeyState.CURRENT, now
                upcoming.save(update_fields=["state", "activated"])
                promoted, upcoming = upcoming.kid, None
            if upcoming is None:
                created.append(_create_key(KeyState.NEXT, now=now, box=box, generate=generate).kid)
            for key in keys:
                due = retirement_due(key) if key.state == KeyState.PREVIOUS else None
                if due is not None and now >= due:
                    key.state, key.retired, key.private_key = KeyState.RETIRED, now, ""
                    key.save(update_fields=["state", "retired", "private_key"])
                    retired.append(key.kid)
    except IntegrityError:
        return Rotation()  # another worker created the same key state at the same moment
    return Rotation(created=tuple(created), promoted=promoted, retired=tuple(retired))


def published_keys() -> list[SigningKey]:
    """The keys relying parties must know: next, current and previous (not yet retired)."""
    return list(
        SigningKey.objects.filter(
            state__in=[KeyState.NEXT, KeyState.CURRENT, KeyState.PREVIOUS]
        ).order_by("-created")
    )


def jwks_document() -> dict[str, Any]:
    """The JWKS: public members only (the stored JWK never had private ones)."""
    return {"keys": [dict(key.public_jwk) for key in published_keys()]}


def discovery_document(issuer: str) -> dict[str, Any]:
    """The OpenID Provider metadata relying parties read to find the JWKS."""
    return {
        "issuer": issuer,
        "jwks_uri": f"{issuer}/.well-known/jwks",
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [ALGORITHM],
        "scopes_supported": ["openid"],
        "claims_supported": sorted(
            {"iss", "sub", "aud", "iat", "nbf", "exp", "jti", *CUSTOM_CLAIMS}
        ),
    }


@dataclass(frozen=True)
class ActiveKey:
    """The current key, unsealed for signing (never stored or logged in this form)."""

    kid: str
    private_key: rsa.RSAPrivateKey

    def __repr__(self) -> str:
        return f"ActiveKey(kid={self.kid!r})"


def signing_key_active(
    *,
    rotation_period: timedelta,
    now: datetime | None = None,
    box: SecretBox | None = None,
    generate: GenerateKey = generate_rsa_key,
) -> ActiveKey:
    """The key that signs now, unsealed; on a fresh installation the first rotation runs."""
    box = box or default_sealing_box()
    key = SigningKey.objects.filter(state=KeyState.CURRENT).first()
    if key is None:
        signing_keys_rotate(rotation_period=rotation_period, now=now, box=box, generate=generate)
        key = SigningKey.objects.get(state=KeyState.CURRENT)
    pem = box.decrypt(key.private_key, context=_key_context(key.kid))
    private = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
    assert isinstance(private, rsa.RSAPrivateKey)
    return ActiveKey(kid=key.kid, private_key=private)


# --- the issuer URL -----------------------------------------------------------------------------
def issuer_url(config: TrustPortalConfig, *, base_url: str | None) -> str | None:
    """The configured issuer URL; outside production, `<base_url>/oidc` when unset.

    Production has no fallback: a Host header must never choose what relying parties trust.
    """
    if config.oidc_issuer_url:
        return config.oidc_issuer_url
    if config.is_production or not base_url:
        return None
    return base_url.rstrip("/") + ISSUER_PATH


# --- ID tokens ----------------------------------------------------------------------------------
def environment_label(project: str, name: str) -> str:
    """How Pulumi names an environment in subjects: `project/name`, only `name` in `default`."""
    return name if project == DEFAULT_PROJECT else f"{project}/{name}"


def imported_call(context: OpenContext) -> bool:
    """Whether the call is in an imported environment rather than in the one being opened."""
    root = (context.root_project, context.root_environment)
    return (context.project, context.environment) != root


def subject_for(context: OpenContext, attributes: Sequence[str] = ()) -> str:
    """The `sub` claim in Pulumi ESC's documented format, naming the environment of the call.

    Without attributes `pulumi:environments:org:<org>:env:<environment holding the call>`; with
    them the prefix `pulumi:environments:pulumi.organization.login:<org>`, then
    `:<attribute>:<value>` for each, in the order given. It never names the environment being
    opened when the call sits in an import: whoever may write the import may not open that one,
    so `rootEnvironment.name` is refused there. ProviderError for an attribute Pulumi does not
    define.
    """
    current = environment_label(context.project, context.environment)
    if not attributes:
        return f"pulumi:environments:org:{context.organization}:env:{current}"
    values = {
        "rootEnvironment.name": current,
        "currentEnvironment.name": current,
        "pulumi.user.login": context.actor,
        "pulumi.organization.login": context.organization,
    }
    parts = [f"pulumi:environments:pulumi.organization.login:{context.organization}"]
    seen: set[str] = set()
    for attribute in attributes:
        if not isinstance(attribute, str) or attribute not in values:
            raise ProviderError(
                f"unknown subject attribute {str(attribute)[:100]!r}: use "
                + ", ".join(SUBJECT_ATTRIBUTES),
                reason="bad_subject_attribute",
            )
        if attribute in seen:
            raise ProviderError(
                f"subject attribute {attribute!r} is listed twice", reason="bad_subject_attribute"
            )
        if attribute == "rootEnvironment.name" and imported_call(context):
            raise ProviderError(
                f"subject attribute rootEnvironment.name is not available in {current}, "
                "which is imported: a token names only the environment holding the call; "
                "use currentEnvironment.name",
                reason="bad_subject_attribute",
            )
        seen.add(attribute)
        parts.append(f"{attribute}:{values[attribute]}")
    return ":".join(parts)


def clamp_lifetime(lifetime: timedelta) -> timedelta:
    """An ID token's lifetime, held between 1 minute and 1 hour."""
    return min(max(lifetime, MIN_ID_TOKEN_LIFETIME), MAX_ID_TOKEN_LIFETIME)


@dataclass(frozen=True)
class IdToken:
    """A signed ID token and what the issuance record keeps of it (never the token)."""

    token: str
    audience: str
    subject: str
    jti: str
    kid: str
    expires_at: datetime

    def __repr__(self) -> str:
        return f"IdToken(kid={self.kid!r}, sub={self.subject!r}, aud={self.audience!r})"


def id_token_claims(
    request: IdTokenRequest,
    context: OpenContext,
    *,
    issuer: str,
    now: datetime,
    jti: str,
) -> dict[str, Any]:
    """The claims of an ID token for one provider call (pure)."""
    if not isinstance(request.audience, str) or not request.audience.strip():
        raise ProviderError("an ID token needs an audience", reason="bad_audience")
    issued = int(now.timestamp())
    lifetime = clamp_lifetime(request.lifetime)
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": subject_for(context, request.subject_attributes),
        "aud": request.audience,
        "iat": issued,
        "nbf": issued,
        "exp": issued + int(lifetime.total_seconds()),
        "jti": jti,
        "org": context.organization,
        "current_env": environment_label(context.project, context.environment),
        "trigger_user": context.actor,
    }
    if not imported_call(context):
        # Relying parties bind `root_env` too, so an import's token must not carry it.
        claims["root_env"] = claims["current_env"]
    if context.exchange_event_id is not None:
        claims["exchange_event"] = context.exchange_event_id
    return claims


def id_token_sign(claims: dict[str, Any], key: ActiveKey) -> str:
    """The compact JWS of the claims, RS256, with the key's `kid` in the header."""
    return jwt.encode(claims, key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid})


def id_token_mint(
    request: IdTokenRequest,
    context: OpenContext,
    *,
    issuer: str | None,
    key: Callable[[], ActiveKey],
    now: datetime,
    rng: Callable[[int], bytes] = random.token_bytes,
) -> IdToken:
    """Build, clamp and sign an ID token for a provider; ProviderError when the portal cannot."""
    if issuer is None:
        raise ProviderError(
            "this portal has no OIDC issuer URL (TRUSTPORTAL_OIDC_ISSUER_URL is not set)",
            reason="issuer_not_configured",
        )
    claims = id_token_claims(request, context, issuer=issuer, now=now, jti=rng(16).hex())
    active = key()
    return IdToken(
        token=id_token_sign(claims, active),
        audience=claims["aud"],
        subject=claims["sub"],
        jti=claims["jti"],
        kid=active.kid,
        expires_at=datetime.fromtimestamp(claims["exp"], tz=UTC),
    )
