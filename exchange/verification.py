"""Step 2 of the exchange: verify the subject token (RFC 8725), in SPEC §4's order.

Pure apart from `key_for`, the injected key lookup (which may refresh an issuer's keys once per
minute). Every refusal is an `InvalidRequest` with its own reason code. Deliberately does NOT:
fetch `jku`/`x5u` URLs or use `jwk`/`x5c` header keys (never read), accept `none` or HMAC
algorithms, follow nested JWTs, or let one issuer's keys verify another's tokens.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import jwt

from issuers.errors import KeyLookupError
from issuers.jwks import KID_PATTERN, KTY_ALGORITHMS
from kernel.strictjson import loads_object
from policies.matching import VerifiedClaims
from tokens.errors import InvalidRequest, UntrustedToken

MAX_TOKEN_BYTES = 16 * 1024
LEEWAY_SECONDS = 60
MAX_LIFETIME_SECONDS = 24 * 60 * 60
SUPPORTED_ALGORITHMS = frozenset().union(*KTY_ALGORITHMS.values())


class IssuerLike(Protocol):
    """What verification needs of an issuer (the model satisfies it)."""

    issuer: str
    enabled: bool
    audiences: list[str]
    single_use: bool


@dataclass(frozen=True)
class UnverifiedToken:
    """The decoded but not yet trusted parts of a token, kept for the exchange event."""

    sha256: str
    header: dict[str, Any] = field(default_factory=dict)
    claims: dict[str, Any] = field(default_factory=dict)

    def claim_text(self, name: str) -> str:
        value = self.claims.get(name)
        if isinstance(value, list):
            return " ".join(str(v) for v in value)[:1000]
        return "" if value is None else str(value)[:1000]


@dataclass(frozen=True)
class VerifiedToken:
    issuer: Any
    claims: VerifiedClaims
    alg: str
    kid: str


KeyFor = Callable[[Any, str, str], Any]


_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")


def _b64decode(segment: str) -> bytes:
    """Strict base64url: only the alphabet, no padding (the stdlib decoder skips bad characters)."""
    if not _SEGMENT.fullmatch(segment):
        raise ValueError("a segment is empty or not base64url")
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _object(raw: bytes) -> dict[str, Any]:
    return loads_object(raw.decode("utf-8"))


def split_compact(token: str) -> list[str]:
    """The three segments of a compact JWS after the size and form checks; decodes nothing.

    Refuses (in this order): more than 16 KiB; non-ASCII; JWE (five segments) and anything but
    three segments, including the JSON serialization.
    """
    if len(token.encode("utf-8", "surrogatepass")) > MAX_TOKEN_BYTES:
        raise InvalidRequest("token_too_large")
    if not token.isascii():
        raise InvalidRequest("malformed_token", "not ASCII")
    segments = token.split(".")
    if len(segments) == 5:
        raise InvalidRequest("jwe_not_supported")
    if len(segments) != 3 or token.lstrip().startswith("{"):
        raise InvalidRequest("malformed_token", "not a compact JWS with three segments")
    return segments


def decode_segment(segment: str, part: str) -> dict[str, Any]:
    """One segment as a strict JSON object: base64url, UTF-8, no duplicate names, storable text."""
    try:
        return _object(_b64decode(segment))
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidRequest("malformed_token", f"{part}: {exc}") from exc


def decode_unverified(token: str) -> UnverifiedToken:
    """Check size and compact form and decode header and claims; trusts nothing in them.

    Refuses what `split_compact` refuses, then invalid base64url, UTF-8 or JSON, duplicate member
    names and non-object parts.
    """
    digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
    segments = split_compact(token)
    header = decode_segment(segments[0], "header")
    claims = decode_segment(segments[1], "payload")
    return UnverifiedToken(sha256=digest, header=header, claims=claims)


def check_header(header: Mapping[str, Any]) -> tuple[str, str]:
    """The header's (alg, kid) after the header rules; refuses crit, b64, nested JWT, none/HS*."""
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in SUPPORTED_ALGORITHMS:
        raise InvalidRequest("alg_not_allowed", f"alg {str(alg)[:20]!r}")
    if "crit" in header:
        raise InvalidRequest("crit_not_supported")
    if "b64" in header:
        raise InvalidRequest("b64_not_supported")
    cty = header.get("cty")
    # RFC 7515 §4.1.10: "application/JWT" and "JWT" name the same media type.
    if isinstance(cty, str) and cty.upper().removeprefix("APPLICATION/") == "JWT":
        raise InvalidRequest("nested_jwt")
    kid = header.get("kid")
    if kid is None:
        raise InvalidRequest("missing_kid")
    if not isinstance(kid, str) or not KID_PATTERN.match(kid):
        raise InvalidRequest("bad_kid")
    return alg, kid


IssuerFor = Callable[[str], Any]


def resolve_issuer(claims: Mapping[str, Any], issuer_for: IssuerFor) -> Any:
    """The requested organization's enabled issuer whose `issuer` equals `iss` exactly.

    `issuer_for` looks one value up among the requested organization's issuers only (an exact,
    case-sensitive match; no normalisation of trailing slashes or case). An unknown or disabled
    issuer is an `UntrustedToken`: the caller cannot tell it from an unknown organization.
    """
    iss = claims.get("iss")
    if not iss:
        raise InvalidRequest("missing_iss")
    if not isinstance(iss, str) or len(iss) > 2048:
        raise UntrustedToken("unknown_issuer")
    issuer = issuer_for(iss)
    if issuer is None or issuer.issuer != iss:
        raise UntrustedToken("unknown_issuer", iss[:200])
    if not issuer.enabled:
        raise UntrustedToken("issuer_disabled")
    return issuer


def verify_signature(token: str, key: Any, alg: str) -> None:
    """Check only the signature, with every PyJWT option spelled out.

    Claims are checked by `check_claims` with our own clock and rules, so PyJWT is told to
    verify nothing but the signature; `algorithms` is exactly the one the key was chosen for.
    """
    try:
        jwt.decode(
            token,
            key=key,
            algorithms=[alg],  # exactly one: the algorithm the key was looked up for
            options={
                "verify_signature": True,  # the one thing PyJWT checks here
                "verify_exp": False,  # check_claims, with the injected clock
                "verify_nbf": False,  # check_claims
                "verify_iat": False,  # check_claims
                "verify_aud": False,  # check_claims: requested org or the issuer's audiences
                "verify_iss": False,  # resolve_issuer: exact match among the org's issuers
                "verify_sub": False,  # policies decide what a subject may do
                "verify_jti": False,  # single-use issuers record it (exchange I/O)
                "require": [],  # check_claims requires exp and iat itself
            },
        )
    except jwt.InvalidSignatureError as exc:
        raise InvalidRequest("bad_signature") from exc
    except jwt.PyJWTError as exc:
        raise InvalidRequest("malformed_token", str(exc)[:200]) from exc


def _numeric(claims: Mapping[str, Any], name: str, *, required: bool) -> int | None:
    value = claims.get(name)
    if value is None:
        if required:
            raise InvalidRequest(f"missing_{name}")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise InvalidRequest(f"bad_{name}", f"{name} is not a number")
    if abs(value) > 2**53:
        raise InvalidRequest(f"bad_{name}", f"{name} is out of range")
    return int(value)


def check_claims(
    claims: Mapping[str, Any], *, now: datetime, audience: str, issuer: IssuerLike
) -> None:
    """exp and iat required, nbf honoured, 60 s leeway, bounded lifetime, audience."""
    timestamp = int(now.timestamp())
    exp = _numeric(claims, "exp", required=True)
    iat = _numeric(claims, "iat", required=True)
    nbf = _numeric(claims, "nbf", required=False)
    assert exp is not None and iat is not None
    if exp <= timestamp - LEEWAY_SECONDS:
        raise InvalidRequest("token_expired")
    if exp > timestamp + MAX_LIFETIME_SECONDS + LEEWAY_SECONDS:
        raise InvalidRequest("exp_too_far", "the token is valid for more than 24 hours")
    if iat > timestamp + LEEWAY_SECONDS:
        raise InvalidRequest("iat_in_future")
    if nbf is not None and nbf > timestamp + LEEWAY_SECONDS:
        raise InvalidRequest("token_not_yet_valid")
    aud = claims.get("aud")
    values = aud if isinstance(aud, list) else [aud]
    if not values or not all(isinstance(v, str) for v in values):
        raise InvalidRequest("missing_aud" if aud is None else "bad_aud")
    accepted = {audience, *issuer.audiences}
    if not accepted.intersection(values):
        raise UntrustedToken("audience_mismatch", f"aud {str(aud)[:200]}")


def verify_subject_token(
    unverified: UnverifiedToken,
    token: str,
    *,
    issuer_for: IssuerFor,
    audience: str,
    key_for: KeyFor,
    now: datetime,
) -> VerifiedToken:
    """Verify a decoded token against the requested organization's issuers (SPEC §4 order)."""
    alg, kid = check_header(unverified.header)
    issuer = resolve_issuer(unverified.claims, issuer_for)
    try:
        key = key_for(issuer, kid, alg)
    except KeyLookupError as exc:
        raise InvalidRequest(exc.reason, exc.message) from exc
    verify_signature(token, key, alg)
    check_claims(unverified.claims, now=now, audience=audience, issuer=issuer)
    if issuer.single_use:
        jti = unverified.claims.get("jti")
        if not isinstance(jti, str) or not 0 < len(jti) <= 256:
            raise InvalidRequest("missing_jti")
    return VerifiedToken(issuer=issuer, claims=VerifiedClaims(unverified.claims), alg=alg, kid=kid)
