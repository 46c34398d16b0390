"""Parsing an issuer's JSON Web Key Set under our rules (pure; no Django, no I/O).

Refuses the whole set on any bad key rather than skipping it: a set with private material or a
duplicate `kid` says something is wrong at the issuer, and the previous good set is safer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from jwt import PyJWK
from jwt.exceptions import PyJWTError

# \Z, not $: `$` would also accept a trailing newline.
KID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}\Z")
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
MIN_RSA_BITS = 2048
MAX_KEYS = 100
KTY_ALGORITHMS = {
    "RSA": frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}),
    "EC": frozenset({"ES256", "ES384", "ES512"}),
    "OKP": frozenset({"EdDSA"}),
}
EC_CURVE_ALGORITHMS = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}


class JwksError(ValueError):
    """The key set is refused; `reason` is a stable code, the message says why in words."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class ParsedKey:
    kid: str
    kty: str
    alg: str | None
    size: int
    jwk: dict[str, Any]


def algorithm_fits_key(alg: str, kty: str, crv: str | None = None) -> bool:
    """Whether a JWS algorithm can be used with a key of this type (and curve)."""
    if alg not in KTY_ALGORITHMS.get(kty, frozenset()):
        return False
    if kty == "EC" and crv is not None:
        return EC_CURVE_ALGORITHMS.get(crv) == alg
    return True


# ROCA (CVE-2017-15361): moduli from the flawed Infineon generator are 65537^a mod M plus a
# multiple of M, the product of the first primes, so modulo each odd prime up to 167 they fall
# in the subgroup 65537 generates. A random modulus does so for all 38 with negligible chance.
ROCA_PRIMES: tuple[int, ...] = tuple(p for p in range(3, 168) if all(p % d for d in range(2, p)))
_ROCA_RESIDUES = {p: frozenset(pow(65537, k, p) for k in range(p)) for p in ROCA_PRIMES}


def has_roca_fingerprint(modulus: int) -> bool:
    """Whether an RSA modulus has the structure of the ROCA-vulnerable (factorable) keys."""
    return all(modulus % p in residues for p, residues in _ROCA_RESIDUES.items())


def _key_size(key: Any) -> int:
    if isinstance(key, rsa.RSAPublicKey):
        return key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key.curve.key_size
    if isinstance(key, ed25519.Ed25519PublicKey):
        return 256
    if isinstance(key, ed448.Ed448PublicKey):
        return 456
    raise JwksError("unsupported_key", "unsupported key type")


def parse_key(raw: Any, index: int) -> ParsedKey:
    """One public signing key, checked; JwksError on anything we do not accept."""
    where = f"key {index + 1}"
    if not isinstance(raw, Mapping):
        raise JwksError("malformed_jwks", f"{where} is not a JSON object")
    kty = raw.get("kty")
    kid = raw.get("kid")
    if isinstance(kid, str):
        where = f"key {kid!r}"
    if kty == "oct":
        raise JwksError("symmetric_key", f"{where} is a symmetric (oct) key; only public keys")
    private = sorted(PRIVATE_MEMBERS & set(raw))
    if private:
        raise JwksError(
            "private_key", f"{where} contains private key material ({', '.join(private)})"
        )
    if kty not in KTY_ALGORITHMS:
        raise JwksError("unknown_kty", f"{where} has an unknown or unsupported kty {kty!r}")
    if not isinstance(kid, str) or not KID_PATTERN.match(kid):
        raise JwksError(
            "bad_kid", f"{where} has no kid, or one outside [A-Za-z0-9._:-] of 1-128 characters"
        )
    use = raw.get("use")
    if use is not None and use != "sig":
        raise JwksError("not_signing_key", f"{where} is for use {use!r}, not signatures")
    key_ops = raw.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        raise JwksError(
            "not_signing_key", f"{where} has key_ops {str(key_ops)[:100]}, without 'verify'"
        )
    alg = raw.get("alg")
    if alg is not None and (
        not isinstance(alg, str) or not algorithm_fits_key(alg, kty, raw.get("crv"))
    ):
        raise JwksError("bad_alg", f"{where} declares alg {alg!r}, which does not fit kty {kty}")
    if kty == "OKP" and raw.get("crv") != "Ed25519":
        raise JwksError("unsupported_curve", f"{where} uses curve {raw.get('crv')!r}")
    if kty == "EC" and raw.get("crv") not in EC_CURVE_ALGORITHMS:
        raise JwksError("unsupported_curve", f"{where} uses curve {raw.get('crv')!r}")
    try:
        # PyJWK needs an algorithm to build the key object; pick one that fits the key type.
        probe_alg = alg or {"RSA": "RS256", "OKP": "EdDSA"}.get(
            kty, EC_CURVE_ALGORITHMS.get(str(raw.get("crv")), "ES256")
        )
        key = PyJWK(dict(raw), algorithm=probe_alg).key
    except (PyJWTError, ValueError, TypeError, KeyError) as exc:
        raise JwksError("invalid_key", f"{where} is not a valid {kty} public key: {exc}") from exc
    size = _key_size(key)
    if kty == "RSA" and size < MIN_RSA_BITS:
        raise JwksError("weak_key", f"{where} is a {size}-bit RSA key; at least {MIN_RSA_BITS}")
    if isinstance(key, rsa.RSAPublicKey) and has_roca_fingerprint(key.public_numbers().n):
        raise JwksError(
            "weak_key", f"{where} is an RSA key from a ROCA-vulnerable generator (CVE-2017-15361)"
        )
    public = {k: v for k, v in raw.items() if isinstance(k, str)}
    return ParsedKey(kid=kid, kty=kty, alg=alg, size=size, jwk=public)


def parse_jwks(document: Any) -> list[ParsedKey]:
    """Every key of a JWKS document, or JwksError for the whole set.

    Refuses: a document that is not `{"keys": [...]}`, an empty set, more than 100 keys,
    duplicate `kid`s, and any key `parse_key` refuses (private or symmetric material, RSA under
    2048 bits or with the ROCA fingerprint, unknown `kty`, `use` other than `sig` or `key_ops`
    without `verify`, malformed key). Does not fetch anything.
    """
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise JwksError("malformed_jwks", 'the key set is not a JSON object with a "keys" list')
    raw_keys = document["keys"]
    if not raw_keys:
        raise JwksError("empty_jwks", "the key set is empty")
    if len(raw_keys) > MAX_KEYS:
        raise JwksError("too_many_keys", f"the key set has more than {MAX_KEYS} keys")
    keys = [parse_key(raw, i) for i, raw in enumerate(raw_keys)]
    seen: set[str] = set()
    for key in keys:
        if key.kid in seen:
            raise JwksError("duplicate_kid", f"the key set has the kid {key.kid!r} more than once")
        seen.add(key.kid)
    return keys


def load_public_key(jwk: Mapping[str, Any], alg: str) -> Any:
    """A key object PyJWT can verify `alg` signatures with."""
    return PyJWK(json.loads(json.dumps(dict(jwk))), algorithm=alg).key
