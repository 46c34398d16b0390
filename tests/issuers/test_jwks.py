"""The JWKS rules: what key sets are refused, and why."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from devtools.issuer import SigningKey
from issuers.jwks import JwksError, parse_jwks


@pytest.fixture(scope="module")
def rsa_jwk() -> dict[str, Any]:
    return SigningKey.generate("RS256", kid="rsa-1").public_jwk()


@pytest.fixture(scope="module")
def ec_jwk() -> dict[str, Any]:
    return SigningKey.generate("ES256", kid="ec-1").public_jwk()


def test_good_sets_parse(rsa_jwk: dict[str, Any], ec_jwk: dict[str, Any]) -> None:
    ed = SigningKey.generate("EdDSA", kid="ed-1").public_jwk()
    keys = parse_jwks({"keys": [rsa_jwk, ec_jwk, ed]})
    assert [(k.kid, k.kty, k.size) for k in keys] == [
        ("rsa-1", "RSA", 2048),
        ("ec-1", "EC", 256),
        ("ed-1", "OKP", 256),
    ]
    no_alg = {k: v for k, v in rsa_jwk.items() if k != "alg"}
    assert parse_jwks({"keys": [no_alg]})[0].alg is None


def _weak_rsa() -> dict[str, Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid="weak", alg="RS256")
    return jwk


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda r, e: {"keys": [r, dict(r)]}, "duplicate_kid"),
        (lambda r, e: {"keys": [{**r, "d": "AAAA"}]}, "private_key"),
        (lambda r, e: {"keys": [{**r, "p": "AAAA", "q": "AAAA"}]}, "private_key"),
        (lambda r, e: {"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}]}, "symmetric_key"),
        (lambda r, e: {"keys": [_weak_rsa()]}, "weak_key"),
        (lambda r, e: {"keys": [{**r, "kty": "XYZ"}]}, "unknown_kty"),
        (lambda r, e: {"keys": [{**r, "kid": "../../etc/passwd"}]}, "bad_kid"),
        (lambda r, e: {"keys": [{k: v for k, v in r.items() if k != "kid"}]}, "bad_kid"),
        (lambda r, e: {"keys": [{**r, "use": "enc"}]}, "not_signing_key"),
        (lambda r, e: {"keys": [{**r, "alg": "HS256"}]}, "bad_alg"),
        (lambda r, e: {"keys": [{**e, "alg": "RS256"}]}, "bad_alg"),
        (lambda r, e: {"keys": [{**e, "alg": "ES384"}]}, "bad_alg"),
        (lambda r, e: {"keys": [{**e, "crv": "secp256k1", "alg": None}]}, "unsupported_curve"),
        (lambda r, e: {"keys": [{**r, "n": "not-base64!"}]}, "invalid_key"),
        (lambda r, e: {"keys": []}, "empty_jwks"),
        (lambda r, e: {"keys": "nope"}, "malformed_jwks"),
        (lambda r, e: [r], "malformed_jwks"),
        (lambda r, e: {"keys": [r] * 101}, "too_many_keys"),
        (lambda r, e: {"keys": ["string"]}, "malformed_jwks"),
    ],
)
def test_bad_sets_are_refused(rsa_jwk, ec_jwk, mutate, reason: str) -> None:
    with pytest.raises(JwksError) as info:
        parse_jwks(mutate(rsa_jwk, ec_jwk))
    assert info.value.reason == reason
