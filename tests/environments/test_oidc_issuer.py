"""The portal as an OIDC issuer: documents, ID token claims and subjects, lifetimes, sealed keys."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from django.db import connection
from django.test import Client

from environments import signing
from environments.models import KeyState, SigningKey
from environments.providers.base import IdTokenRequest, OpenContext, ProviderError
from environments.providers.endpoints import ProviderEndpoints
from kernel.config import TrustPortalConfig
from kernel.secretbox import SecretError, box_for
from trustportal.checks import oidc_issuer_problems

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ISSUER = "https://portal.example.test/oidc"
ROTATION = timedelta(days=30)
ROOT_CALL = {"project": "app", "environment": "prod"}  # the call is in the environment opened


def context(**overrides: Any) -> OpenContext:
    """The context of an open of `app/prod` (importing `infra/aws`) by alice for acme."""
    values: dict[str, Any] = {
        "organization": "acme",
        "project": "infra",
        "environment": "aws",
        "root_project": "app",
        "root_environment": "prod",
        "actor": "alice",
        "exchange_event_id": 42,
        "id_token": lambda request: "unused",
        "post": lambda url, **kwargs: (500, {}, b""),
        "now": lambda: NOW,
        "endpoints": ProviderEndpoints(),
    }
    values.update(overrides)
    return OpenContext(**values)


def mint(request: IdTokenRequest, **overrides: Any) -> signing.IdToken:
    return signing.id_token_mint(
        request,
        context(**overrides),
        issuer=ISSUER,
        key=lambda: signing.signing_key_active(rotation_period=ROTATION, now=NOW),
        now=NOW,
        rng=lambda n: b"\x01" * n,
    )


def verify(token: str, audience: str) -> dict[str, Any]:
    """Verify a token against the JWKS the portal publishes (what a relying party does)."""
    keys = {key["kid"]: key for key in signing.jwks_document()["keys"]}
    kid = jwt.get_unverified_header(token)["kid"]
    claims: dict[str, Any] = jwt.decode(
        token,
        jwt.PyJWK(keys[kid]).key,
        algorithms=["RS256"],
        audience=audience,
        issuer=ISSUER,
        options={"verify_exp": False, "verify_nbf": False, "verify_iat": False},
    )
    return claims


# --- discovery and JWKS -------------------------------------------------------------------------
@pytest.mark.django_db
def test_discovery_and_jwks_in_development_come_from_the_request_host(settings: Any) -> None:
    settings.TRUSTPORTAL = dataclasses.replace(
        settings.TRUSTPORTAL, environment="development", oidc_issuer_url=None
    )
    settings.ALLOWED_HOSTS = ["portal.local"]
    signing.signing_keys_rotate(rotation_period=ROTATION, now=NOW)
    client = Client(HTTP_HOST="portal.local:8000")
    discovery = client.get("/oidc/.well-known/openid-configuration")
    assert discovery.status_code == 200
    assert discovery["Cache-Control"] == f"public, max-age={signing.JWKS_MAX_AGE}"
    body = discovery.json()
    assert body["issuer"] == "http://portal.local:8000/oidc"
    assert body["jwks_uri"] == "http://portal.local:8000/oidc/.well-known/jwks"
    assert body["id_token_signing_alg_values_supported"] == ["RS256"]
    assert {"sub", "aud", "org", "current_env", "root_env", "trigger_user"} <= set(
        body["claims_supported"]
    )

    keys = client.get("/oidc/.well-known/jwks").json()["keys"]
    assert {key["kid"] for key in keys} == set(
        SigningKey.objects.values_list("kid", flat=True)
    )
    assert len(keys) == 2  # the current key and the next one, published before it signs
    for key in keys:
        assert set(key) == {"kty", "kid", "use", "alg", "n", "e"}  # no private member
        assert key["alg"] == "RS256" and key["use"] == "sig"
        assert jwt.PyJWK(key).key.key_size >= 2048


@pytest.mark.django_db
def test_the_configured_issuer_url_wins_over_the_host(settings: Any) -> None:
    settings.TRUSTPORTAL = dataclasses.replace(settings.TRUSTPORTAL, oidc_issuer_url=ISSUER)
    settings.ALLOWED_HOSTS = ["other.example"]
    body = Client(HTTP_HOST="other.example").get("/oidc/.well-known/openid-configuration")
    assert body.json()["issuer"] == ISSUER


@pytest.mark.django_db
def test_production_without_an_issuer_url_publishes_nothing(settings: Any) -> None:
    settings.TRUSTPORTAL = dataclasses.replace(
        settings.TRUSTPORTAL, environment="production", oidc_issuer_url=None
    )
    settings.ALLOWED_HOSTS = ["portal.example.test"]
    client = Client(HTTP_HOST="portal.example.test")
    for path in ("/oidc/.well-known/openid-configuration", "/oidc/.well-known/jwks"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.json()["code"] == 404
    assert signing.issuer_url(settings.TRUSTPORTAL, base_url="https://x.example") is None


def test_the_documents_refuse_other_methods(db: None) -> None:
    assert Client().post("/oidc/.well-known/jwks").status_code == 405


@pytest.mark.parametrize(
    ("config", "ids"),
    [
        (TrustPortalConfig(environment="production"), ["trustportal.W001"]),
        (
            TrustPortalConfig(environment="production", oidc_issuer_url="http://p.example/oidc"),
            ["trustportal.E005"],
        ),
        (
            TrustPortalConfig(
                environment="production", oidc_issuer_url=ISSUER, oidc_key_rotation_days=0
            ),
            ["trustportal.E006"],
        ),
        (TrustPortalConfig(environment="production", oidc_issuer_url=ISSUER), []),
        (TrustPortalConfig(environment="development"), []),
    ],
)
def test_the_system_check_asks_for_an_https_issuer_in_production(
    config: TrustPortalConfig, ids: list[str]
) -> None:
    assert [message.id for message in oidc_issuer_problems(config)] == ids


# --- ID tokens ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("attributes", "overrides", "subject"),
    [
        # A call in an import names the import, never the environment being opened.
        ((), {}, "pulumi:environments:org:acme:env:infra/aws"),
        ((), ROOT_CALL, "pulumi:environments:org:acme:env:app/prod"),
        (
            ("currentEnvironment.name", "pulumi.user.login"),
            {},
            "pulumi:environments:pulumi.organization.login:acme:"
            "currentEnvironment.name:infra/aws:pulumi.user.login:alice",
        ),
        (
            ("rootEnvironment.name",),
            ROOT_CALL,
            "pulumi:environments:pulumi.organization.login:acme:rootEnvironment.name:app/prod",
        ),
        (
            ("pulumi.organization.login", "currentEnvironment.name"),
            {},
            "pulumi:environments:pulumi.organization.login:acme:"
            "pulumi.organization.login:acme:currentEnvironment.name:infra/aws",
        ),
        # The legacy `default` project is left out of names, as Pulumi does.
        (
            (),
            {"project": "default", "environment": "dev"},
            "pulumi:environments:org:acme:env:dev",
        ),
        (
            ("currentEnvironment.name",),
            {"project": "default", "environment": "shared"},
            "pulumi:environments:pulumi.organization.login:acme:currentEnvironment.name:shared",
        ),
    ],
)
def test_subjects_follow_pulumis_format(
    attributes: tuple[str, ...], overrides: dict[str, Any], subject: str
) -> None:
    assert signing.subject_for(context(**overrides), attributes) == subject


@pytest.mark.parametrize(
    "attributes",
    [
        ("pulumi.user.email",),
        ("currentEnvironment.name", "currentEnvironment.name"),
        (7,),
        ("rootEnvironment.name",),  # the opened environment, from a call in an import
    ],
)
def test_unknown_or_repeated_subject_attributes_are_refused(attributes: tuple[Any, ...]) -> None:
    with pytest.raises(ProviderError) as refused:
        signing.subject_for(context(), attributes)
    assert refused.value.reason == "bad_subject_attribute"


@pytest.mark.django_db
def test_an_id_token_carries_every_claim_and_verifies_with_the_jwks() -> None:
    request = IdTokenRequest(
        audience="aws:acme",
        subject_attributes=("currentEnvironment.name",),
        lifetime=timedelta(minutes=15),
    )
    minted = mint(request)
    header = jwt.get_unverified_header(minted.token)
    current = SigningKey.objects.get(state=KeyState.CURRENT)
    assert header == {"alg": "RS256", "kid": current.kid, "typ": "JWT"}
    claims = verify(minted.token, "aws:acme")
    issued = int(NOW.timestamp())
    assert claims == {
        "iss": ISSUER,
        "sub": "pulumi:environments:pulumi.organization.login:acme:"
        "currentEnvironment.name:infra/aws",
        "aud": "aws:acme",
        "iat": issued,
        "nbf": issued,
        "exp": issued + 15 * 60,
        "jti": "01" * 16,
        "org": "acme",
        "current_env": "infra/aws",
        "trigger_user": "alice",
        "exchange_event": 42,
    }
    assert minted.expires_at == NOW + timedelta(minutes=15)
    assert (minted.audience, minted.subject, minted.kid) == ("aws:acme", claims["sub"], current.kid)
    assert minted.token not in repr(minted)
    # `root_env` is there only when the call is in the environment opened (relying parties
    # bind it, so an import's token must not name the importer).
    assert verify(mint(request, **ROOT_CALL).token, "aws:acme")["root_env"] == "app/prod"
    # Without an exchange behind the caller, the claim is left out rather than null.
    assert "exchange_event" not in verify(mint(request, exchange_event_id=None).token, "aws:acme")


@pytest.mark.parametrize(
    ("asked", "granted"),
    [
        (timedelta(seconds=1), timedelta(minutes=1)),
        (timedelta(0), timedelta(minutes=1)),
        (timedelta(minutes=-5), timedelta(minutes=1)),
        (timedelta(minutes=30), timedelta(minutes=30)),
        (timedelta(hours=1), timedelta(hours=1)),
        (timedelta(hours=12), timedelta(hours=1)),
    ],
)
def test_the_lifetime_is_clamped_to_one_minute_to_one_hour(
    asked: timedelta, granted: timedelta
) -> None:
    claims = signing.id_token_claims(
        IdTokenRequest(audience="gcp:acme", lifetime=asked), context(), issuer=ISSUER, now=NOW,
        jti="x",
    )
    assert claims["exp"] - claims["iat"] == granted.total_seconds()


@pytest.mark.parametrize("audience", ["", "   "])
def test_an_id_token_needs_an_audience(audience: str) -> None:
    with pytest.raises(ProviderError) as refused:
        signing.id_token_claims(
            IdTokenRequest(audience=audience), context(), issuer=ISSUER, now=NOW, jti="x"
        )
    assert refused.value.reason == "bad_audience"


def test_no_issuer_url_means_no_token() -> None:
    def never() -> signing.ActiveKey:
        raise AssertionError("no key is needed to refuse")

    with pytest.raises(ProviderError) as refused:
        signing.id_token_mint(
            IdTokenRequest(audience="x"), context(), issuer=None, key=never, now=NOW
        )
    assert refused.value.reason == "issuer_not_configured"


# --- the private key at rest --------------------------------------------------------------------
@pytest.mark.django_db
def test_private_keys_are_stored_sealed_and_bound_to_their_kid() -> None:
    signing.signing_keys_rotate(rotation_period=ROTATION, now=NOW)
    active = signing.signing_key_active(rotation_period=ROTATION, now=NOW)
    numbers = active.private_key.private_numbers()
    secret_parts = [
        jwt.utils.to_base64url_uint(n).decode() for n in (numbers.d, numbers.p, numbers.q)
    ]
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM environments_signingkey")
        dump = json.dumps(cursor.fetchall(), default=str)
    assert "PRIVATE KEY" not in dump
    for part in secret_parts:
        assert part not in dump and part[:40] not in dump
    row = SigningKey.objects.get(kid=active.kid)
    assert row.private_key.startswith("v1.")
    # Moved to another key's row, the ciphertext does not open (bound to the kid).
    other = SigningKey.objects.exclude(kid=active.kid).get()
    other.private_key = row.private_key
    other.save()
    box = signing.default_sealing_box()
    with pytest.raises(SecretError):
        box.decrypt(other.private_key, context=f"trustportal:oidc-signing-key:{other.kid}".encode())


def test_the_sealing_key_is_not_the_environment_secrets_key() -> None:
    material = "k" * 40
    sealing = signing.sealing_box(material, secret_key="s" * 50)
    secrets = box_for(material, secret_key="s" * 50)
    assert sealing.keys[0].key != secrets.keys[0].key
    sealed = sealing.encrypt("x", context=b"c")
    with pytest.raises(SecretError):
        secrets.decrypt(sealed, context=b"c")


def test_generated_keys_must_have_2048_bits(db: None) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    with pytest.raises(ValueError, match="2048"):
        signing.signing_keys_rotate(
            rotation_period=ROTATION,
            now=NOW,
            generate=lambda: rsa.generate_private_key(public_exponent=65537, key_size=1024),
        )
    assert not SigningKey.objects.exists()
