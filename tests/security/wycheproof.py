"""Wycheproof JWS/JWK vectors and the exchange's own JWS layer, as one function to run them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exchange.verification import check_header, decode_segment, split_compact, verify_signature
from issuers.errors import KeyLookupError
from issuers.jwks import JwksError, load_public_key, parse_jwks
from issuers.keys import CachedKey, check_algorithm, check_key_algorithm
from issuers.models import DEFAULT_ALGORITHMS
from tokens.errors import InvalidRequest

VECTORS = Path(__file__).resolve().parent / "vectors" / "wycheproof"
ACCEPTED = "accepted"
# PyJWT checks the signature first and then requires the payload to be a JSON object (a JWT
# rule, not a JWS one): a vector with a non-JSON payload that fails only there was verified.
PAYLOAD_NOT_A_CLAIMS_SET = "Invalid payload string"


@dataclass(frozen=True)
class Vector:
    """One Wycheproof test with the key set its group publishes."""

    file: str
    tc_id: int
    comment: str
    group: str
    result: str  # valid | invalid | acceptable
    flags: tuple[str, ...]
    jws: str
    public: dict[str, Any] | None  # the group's public key (a JWK or a JWKS), if any
    private: dict[str, Any]  # the group's private key (a JWK or a JWKS)

    @property
    def id(self) -> str:
        return f"tc{self.tc_id}-{self.comment}"

    @property
    def published(self) -> dict[str, Any]:
        """The key set an issuer would publish: the public key, else all the group has."""
        return as_jwks(self.public if self.public is not None else self.private)


def as_jwks(key: Mapping[str, Any]) -> dict[str, Any]:
    return dict(key) if "keys" in key else {"keys": [dict(key)]}


def load_vectors(name: str) -> list[Vector]:
    """Every test of a Wycheproof JSON file, in file order."""
    document = json.loads((VECTORS / name).read_text())
    vectors = [
        Vector(
            file=name,
            tc_id=test["tcId"],
            comment=test["comment"],
            group=group["comment"],
            result=test["result"],
            flags=tuple(test.get("flags", ())),
            jws=test["jws"],
            public=group.get("public"),
            private=group["private"],
        )
        for group in document["testGroups"]
        for test in group["tests"]
    ]
    assert len(vectors) == document["numberOfTests"], name
    return vectors


@dataclass(frozen=True)
class Outcome:
    """What the JWS layer made of a vector: accepted, or the stable reason it refused."""

    reason: str  # ACCEPTED or a refusal reason code (ingestion refusals prefixed "jwks:")

    @property
    def accepted(self) -> bool:
        return self.reason == ACCEPTED


def verify_jws(jws: str, jwks: Mapping[str, Any]) -> Outcome:
    """Run a JWS through the exchange's checks against an issuer publishing `jwks`.

    The same functions, in the same order, as the exchange: compact form and size, the header
    (alg allow-list, crit, b64, nested JWT, kid form), the issuer's default algorithm
    allow-list, JWKS ingestion (`parse_jwks`, as registration and refresh store keys), the key
    lookup rules (the key's own alg, the key type), the key object and the signature check.
    Claims are not checked: Wycheproof payloads are not claim sets.
    """
    try:
        header = decode_segment(split_compact(jws)[0], "header")
        alg, kid = check_header(header)
        check_algorithm(alg, DEFAULT_ALGORITHMS)
        parsed = {key.kid: key for key in parse_jwks(jwks)}.get(kid)
        if parsed is None:
            return Outcome("unknown_kid")
        # As stored (IssuerKey: alg "" when absent) and read back by issuers.keys.
        key = CachedKey(parsed.kid, parsed.kty, parsed.alg or "", parsed.jwk.get("crv"), parsed.jwk)
        check_key_algorithm(key, alg)
        verify_signature(jws, load_public_key(key.jwk, alg), alg)
    except InvalidRequest as exc:
        if exc.reason == "malformed_token" and exc.detail.startswith(PAYLOAD_NOT_A_CLAIMS_SET):
            return Outcome(ACCEPTED)
        return Outcome(exc.reason)
    except KeyLookupError as exc:
        return Outcome(exc.reason)
    except JwksError as exc:
        return Outcome(f"jwks:{exc.reason}")
    return Outcome(ACCEPTED)


def ingest(jwks: Mapping[str, Any]) -> Outcome:
    """JWKS ingestion alone: accepted, or `jwks:<reason>`."""
    try:
        parse_jwks(jwks)
    except JwksError as exc:
        return Outcome(f"jwks:{exc.reason}")
    return Outcome(ACCEPTED)
