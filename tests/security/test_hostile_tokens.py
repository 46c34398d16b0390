"""Hostile subject tokens through POST /api/oauth/token, beyond the SPEC §4 battery.

The battery in tests/tokens/test_verification.py holds one or two cases per rule; this table
adds the variants an attacker tries next (every casing of `none`, HMAC keyed with every public
form of RSA, EC and Ed25519 keys, more header injections, kid, crit, b64, nesting, JWE shapes,
duplicate members, numbers, issuers, audiences, sizes and encodings). Each case is run through
the battery's own contract (`test_refused`): 400, an RFC 6749 body with a specific reason, one
deny exchange event, no access token, and no fetch from the local issuer beyond its discovery
document and JWKS.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
from collections.abc import Callable, Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from devtools.issuer import SigningKey, b64url
from tests.security.reporting import record_summary
from tests.tokens import conftest as tokens_conftest
from tests.tokens import test_verification as battery
from tests.tokens.conftest import AUDIENCE
from tests.tokens.test_verification import (
    DISCOVERY,
    GITHUB_ISSUER,
    JWKS,
    JWKS_ALIAS,
    Ctx,
    Refusal,
    replace_segment,
    segment,
    segments,
    signed_by,
    unsigned,
    with_claims,
    with_header,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("trusted")]

# The battery's fixtures, under their own names (rate limits off, as in the battery).
trusted = tokens_conftest.trusted
ctx = battery.ctx
attacker_key = battery.attacker_key
impostor_key = battery.impostor_key
_no_rate_limits = battery._no_rate_limits


# --- builders ----------------------------------------------------------------------------------

Build = Callable[[Ctx], str]


def rsa_secret(form: str) -> Callable[[Ctx], bytes]:
    """The issuer's published RSA key in one of its public forms, as an HMAC secret."""

    def secret(c: Ctx) -> bytes:
        public = c.issuer.current_key.private_key.public_key()
        if form == "jwk":
            return json.dumps(c.issuer.jwks()["keys"][0]).encode()
        if form == "jwks-response":
            return json.dumps(c.issuer.jwks()).encode()  # the exact bytes the JWKS URL serves
        encoding, fmt = {
            "pem": (serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
            "pkcs1-pem": (serialization.Encoding.PEM, serialization.PublicFormat.PKCS1),
            "der": (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
        }[form]
        return public.public_bytes(encoding, fmt)

    return secret


def hmac_with_rsa_key(form: str, alg: str) -> Build:
    def build(c: Ctx) -> str:
        return c.hmac_token(rsa_secret(form)(c), alg)

    return build


def hmac_with_published_key(key_alg: str, form: str, alg: str) -> Build:
    """Publish an EC or Ed25519 key (now the current one), then HMAC-sign under its kid keyed
    by its public form."""

    def build(c: Ctx) -> str:
        key = c.add_key(key_alg, kid=f"confusion-{key_alg.lower()}")
        public = key.private_key.public_key()
        if form == "jwk":
            secret = json.dumps(key.public_jwk()).encode()
        elif form == "jwk-compact":
            secret = json.dumps(key.public_jwk(), separators=(",", ":")).encode()
        elif form == "point":
            assert isinstance(public, ec.EllipticCurvePublicKey)
            secret = public.public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
        else:
            secret = public.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        assert c.kid == key.kid
        return c.hmac_token(secret, alg)

    return build


def embedded_oct_jwk(c: Ctx) -> str:
    """An HS256 token carrying its own symmetric key in a `jwk` header (signed with it)."""
    secret = b"attacker-chosen-secret-of-32-bytes!"
    jwk = {"kty": "oct", "k": b64url(secret), "kid": c.kid}
    signing_input = f"{segment(c.header(alg='HS256', jwk=jwk))}.{segment(c.claims())}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def every_injection_at_once(c: Ctx) -> str:
    key = SigningKey(kid=c.attacker.kid, alg="RS256", private_key=c.attacker.private_key)
    jwks = c.serve("/attacker/jwks.json", json.dumps({"keys": [key.public_jwk()]}).encode())
    cert = c.serve("/attacker/cert.pem", b"-----BEGIN CERTIFICATE-----\n", "text/plain")
    return c.mint(key=key, headers={"jku": jwks, "x5u": cert, "jwk": key.public_jwk()})


def jku_list_attack(c: Ctx) -> str:
    key = SigningKey(kid=c.kid, alg="RS256", private_key=c.attacker.private_key)
    url = c.serve("/attacker/jwks.json", json.dumps({"keys": [key.public_jwk()]}).encode())
    return c.mint(key=key, headers={"jku": [url, f"{c.issuer.url}{JWKS}"]})


def raw_header(template: str | bytes) -> Build:
    """A token whose header is exactly `template` (with {kid}), validly signed by the issuer."""

    def build(c: Ctx) -> str:
        raw = template.encode("latin-1") if isinstance(template, str) else template
        return c.raw(raw.replace(b"{kid}", c.kid.encode()), json.dumps(c.claims()).encode())

    return build


def raw_header_bytes(prefix: bytes) -> Build:
    """A token whose header JSON is preceded by `prefix`."""
    return lambda c: c.raw(
        prefix + json.dumps(c.header()).encode(), json.dumps(c.claims()).encode()
    )


def raw_payload(extra: str = "", prefix: bytes = b"") -> Build:
    """A token whose payload is the default claims' JSON with `extra` members appended."""

    def build(c: Ctx) -> str:
        claims = json.dumps(c.claims())
        body = claims[:-1] + extra + "}" if extra else claims
        return c.raw(json.dumps(c.header()).encode(), prefix + body.encode())

    return build


def number_claim(name: str, literal: str) -> Build:
    """A validly signed token whose claim `name` is the JSON number literal `literal`."""

    def build(c: Ctx) -> str:
        text = json.dumps(c.claims(**{name: "@number@"})).replace('"@number@"', literal)
        return c.raw(json.dumps(c.header()).encode(), text.encode())

    return build


def payload_bytes(raw: bytes) -> Build:
    return lambda c: c.sign(c.header(), raw)


def explicit(part: str, name: str, value: Any) -> Build:
    """A validly signed token whose header or claims carry `name` with `value`, even null."""

    def build(c: Ctx) -> str:
        header, claims = c.header(), c.claims()
        (header if part == "header" else claims)[name] = value
        return c.sign(header, claims)

    return build


def jwe_with_empty_key(c: Ctx) -> str:
    header = segment({"alg": "dir", "enc": "A256GCM", "kid": c.kid})
    return ".".join([header, "", b64url(b"iv" * 6), b64url(b"ciphertext"), b64url(b"tag")])


def jwe_json_serialization(c: Ctx) -> str:
    return json.dumps(
        {"protected": segment({"enc": "A256GCM"}), "ciphertext": "Y3Q", "iv": "aXY", "tag": "dA"}
    )


def nested_jwe(c: Ctx) -> str:
    inner = ".".join([segment({"alg": "RSA-OAEP", "enc": "A256GCM"}), "a", "b", "c", "d"])
    return c.sign(c.header(cty="JWT"), inner.encode())


def nested_jwt_without_cty(c: Ctx) -> str:
    return c.sign(c.header(), c.mint().encode())


def unencoded_payload(c: Ctx) -> str:
    """RFC 7797: b64 false, the payload JSON in place of its base64url (signed as such)."""
    header = segment(c.header(b64=False, crit=["b64"]))
    payload = json.dumps(c.claims(), separators=(",", ":"))
    signature = jwt.get_algorithm_by_name("RS256").sign(
        f"{header}.{payload}".encode(), c.issuer.current_key.private_key
    )
    return f"{header}.{payload}.{b64url(signature)}"


def detached_payload(c: Ctx) -> str:
    head, _, signature = c.sign(c.header(b64=False, crit=["b64"]), c.claims()).split(".")
    return f"{head}..{signature}"


def oversize_bytes(size: int) -> Build:
    """A validly signed token of about `size` bytes (the request body stays under 64 KiB)."""

    def build(c: Ctx) -> str:
        token = c.mint({"pad": "p" * (size * 3 // 4)})
        assert size <= len(token) < size + 2048
        return token

    return build


def non_ascii_oversize(c: Ctx) -> str:
    # 9,000 characters but 18,000 bytes: the limit counts bytes.
    return "é" * 9000


def oversize_header(c: Ctx) -> str:
    return c.mint(headers={"x": "h" * 20_000})


def insert(index: int, text: str) -> Build:
    """The segment `index` of a valid token with `text` inserted in its middle."""

    def build(c: Ctx) -> str:
        parts = c.mint().split(".")
        middle = len(parts[index]) // 2
        parts[index] = parts[index][:middle] + text + parts[index][middle:]
        return ".".join(parts)

    return build


def utf16_header(c: Ctx) -> str:
    return c.raw(json.dumps(c.header()).encode("utf-16"), json.dumps(c.claims()).encode())


def iss_variant(change: Callable[[str], str]) -> Build:
    return with_claims(iss=lambda c: change(c.issuer.url))


NONE_CASINGS = sorted(
    {"".join(chars) for chars in itertools.product(*zip("none", "NONE", strict=True))}
    - {"none", "None", "NONE", "nOnE"}  # in the battery
)


NEW_REFUSALS: list[Refusal] = [
    # alg none: every other casing, padded, escaped, null.
    *[Refusal(f"alg-{casing}", unsigned(casing), "alg_not_allowed") for casing in NONE_CASINGS],
    Refusal("alg-none-trailing-space", unsigned("none "), "alg_not_allowed"),
    Refusal("alg-none-nul", unsigned("none\x00"), "malformed_token"),
    Refusal(
        "alg-none-unicode-escaped",
        raw_header('{"alg":"\\u006eone","kid":"{kid}"}'),
        "alg_not_allowed",
    ),
    Refusal("alg-null", unsigned(None), "alg_not_allowed"),
    # HS/RS and HS/EC (and HS/EdDSA) confusion: the public key in every form as the secret.
    Refusal("hs384-rsa-public-pem", hmac_with_rsa_key("pem", "HS384"), "alg_not_allowed"),
    Refusal("hs256-rsa-pkcs1-pem", hmac_with_rsa_key("pkcs1-pem", "HS256"), "alg_not_allowed"),
    Refusal("hs256-rsa-public-der", hmac_with_rsa_key("der", "HS256"), "alg_not_allowed"),
    Refusal("hs384-rsa-jwk-json", hmac_with_rsa_key("jwk", "HS384"), "alg_not_allowed"),
    Refusal("hs512-rsa-jwk-json", hmac_with_rsa_key("jwk", "HS512"), "alg_not_allowed"),
    Refusal(
        "hs256-jwks-response-bytes", hmac_with_rsa_key("jwks-response", "HS256"), "alg_not_allowed"
    ),
    Refusal(
        "hs256-ec-public-pem", hmac_with_published_key("ES256", "pem", "HS256"), "alg_not_allowed"
    ),
    Refusal(
        "hs384-ec-public-pem", hmac_with_published_key("ES384", "pem", "HS384"), "alg_not_allowed"
    ),
    Refusal(
        "hs512-ec-public-pem", hmac_with_published_key("ES256", "pem", "HS512"), "alg_not_allowed"
    ),
    Refusal(
        "hs256-ec-jwk-json", hmac_with_published_key("ES256", "jwk", "HS256"), "alg_not_allowed"
    ),
    Refusal(
        "hs256-ec-jwk-compact-json",
        hmac_with_published_key("ES256", "jwk-compact", "HS256"),
        "alg_not_allowed",
    ),
    Refusal(
        "hs256-ec-point-bytes",
        hmac_with_published_key("ES256", "point", "HS256"),
        "alg_not_allowed",
    ),
    Refusal(
        "hs256-ed25519-public-pem",
        hmac_with_published_key("EdDSA", "pem", "HS256"),
        "alg_not_allowed",
    ),
    Refusal(
        "hs256-ed25519-jwk-json",
        hmac_with_published_key("EdDSA", "jwk", "HS256"),
        "alg_not_allowed",
    ),
    # Header key injection: nothing fetched, nothing used.
    Refusal("jwk-embedded-oct-key-hs256", embedded_oct_jwk, "alg_not_allowed"),
    Refusal(
        "jku-x5u-jwk-all-at-once",
        every_injection_at_once,
        "unknown_kid",
        never_fetched=("/attacker/jwks.json", "/attacker/cert.pem"),
    ),
    Refusal(
        "jku-cloud-metadata-address",
        signed_by(lambda c: c.impostor, jku="http://169.254.169.254/latest/meta-data/jwks"),
        "bad_signature",
    ),
    Refusal(
        "x5u-issuer-jwks-alias",
        signed_by(lambda c: c.attacker, x5u=lambda c: f"{c.issuer.url}{JWKS_ALIAS}"),
        "unknown_kid",
        never_fetched=(JWKS_ALIAS,),
    ),
    Refusal(
        "jku-issuer-discovery-document",
        signed_by(lambda c: c.impostor, jku=lambda c: f"{c.issuer.url}{DISCOVERY}"),
        "bad_signature",
    ),
    Refusal(
        "jku-list-of-urls",
        jku_list_attack,
        "bad_signature",
        never_fetched=("/attacker/jwks.json",),
    ),
    # kid: traversal, injection, very long, unicode, types.
    Refusal("kid-10000-chars", with_header(kid="k" * 10_000), "bad_kid"),
    Refusal("kid-dev-null", with_header(kid="/dev/null"), "bad_kid"),
    Refusal("kid-backslash-traversal", with_header(kid="..\\..\\windows\\win.ini"), "bad_kid"),
    Refusal("kid-percent-encoded-traversal", with_header(kid="%2e%2e%2f%2e%2e%2fetc"), "bad_kid"),
    Refusal(
        "kid-sql-union", with_header(kid="x UNION SELECT jwk FROM issuers_issuerkey--"), "bad_kid"
    ),
    Refusal("kid-sql-statement", with_header(kid="1;DROP TABLE issuers_issuerkey"), "bad_kid"),
    Refusal("kid-ldap-filter", with_header(kid="*)(uid=*))"), "bad_kid"),
    Refusal("kid-glob", with_header(kid="*"), "bad_kid"),
    Refusal("kid-nul", with_header(kid=lambda c: c.kid + "\x00"), "malformed_token"),
    Refusal("kid-rtl-override", with_header(kid="test\u202e1-yek"), "bad_kid"),
    Refusal("kid-fullwidth", with_header(kid="\uff54\uff45\uff53\uff54-key-1"), "bad_kid"),
    Refusal("kid-cyrillic-homoglyph", with_header(kid="t\u0435st-key-1"), "bad_kid"),
    Refusal("kid-whitespace", with_header(kid=" "), "bad_kid"),
    Refusal("kid-leading-space", with_header(kid=lambda c: " " + c.kid), "bad_kid"),
    Refusal("kid-other-case", with_header(kid=lambda c: c.kid.upper()), "unknown_kid"),
    Refusal("kid-boolean", with_header(kid=True), "bad_kid"),
    Refusal("kid-list", with_header(kid=lambda c: [c.kid]), "bad_kid"),
    # crit and b64 in any form.
    Refusal("crit-string", with_header(crit="exp"), "crit_not_supported"),
    Refusal("crit-null", explicit("header", "crit", None), "crit_not_supported"),
    Refusal("crit-object", with_header(crit={}), "crit_not_supported"),
    Refusal(
        "crit-unknown-extension",
        with_header(crit=["urn:example:ext"], **{"urn:example:ext": True}),
        "crit_not_supported",
    ),
    Refusal("b64-true", with_header(b64=True), "b64_not_supported"),
    Refusal("b64-string-false", with_header(b64="false"), "b64_not_supported"),
    Refusal("b64-false-unencoded-payload", unencoded_payload, "malformed_token"),
    Refusal("b64-false-detached-payload", detached_payload, "malformed_token"),
    # Nested JWT, JWE shapes.
    Refusal("cty-application-jwt", with_header(cty="application/jwt"), "nested_jwt"),
    Refusal("cty-APPLICATION-JWT", with_header(cty="APPLICATION/JWT"), "nested_jwt"),
    Refusal("nested-jwe-payload", nested_jwe, "malformed_token"),
    Refusal("nested-jwt-without-cty", nested_jwt_without_cty, "malformed_token"),
    Refusal("jwe-dir-empty-encrypted-key", jwe_with_empty_key, "jwe_not_supported"),
    Refusal(
        "jwe-header-three-segments",
        with_header(alg="RSA-OAEP", enc="A256GCM"),
        "alg_not_allowed",
    ),
    Refusal("jwe-alg-dir-three-segments", with_header(alg="dir", enc="A128GCM"), "alg_not_allowed"),
    Refusal("jwe-json-serialization", jwe_json_serialization, "malformed_token"),
    Refusal("six-segments", lambda c: c.mint() + ".a.b.c", "malformed_token"),
    # Duplicate member names, however spelled and wherever nested.
    Refusal(
        "duplicate-header-kid",
        raw_header('{"alg":"RS256","kid":"{kid}","kid":"attacker-1"}'),
        "malformed_token",
    ),
    Refusal(
        "duplicate-header-escaped-alg",
        raw_header('{"alg":"RS256","kid":"{kid}","\\u0061lg":"none"}'),
        "malformed_token",
    ),
    Refusal(
        "duplicate-header-same-value",
        raw_header('{"alg":"RS256","alg":"RS256","kid":"{kid}"}'),
        "malformed_token",
    ),
    Refusal(
        "duplicate-payload-iss", raw_payload(',"iss":"https://evil.example"'), "malformed_token"
    ),
    Refusal("duplicate-payload-exp", raw_payload(',"exp":99999999999'), "malformed_token"),
    Refusal(
        "duplicate-payload-aud", raw_payload(',"aud":"urn:pulumi:org:other"'), "malformed_token"
    ),
    Refusal(
        "duplicate-payload-escaped-sub",
        raw_payload(',"\\u0073ub":"repo:evil/fork:ref:refs/heads/main"'),
        "malformed_token",
    ),
    Refusal("duplicate-in-nested-claim", raw_payload(',"x":{"a":1,"a":2}'), "malformed_token"),
    # Numbers: not integers, infinite, huge, wrong types, null.
    Refusal("exp-1e999-infinity", number_claim("exp", "1e999"), "malformed_token"),
    Refusal("exp-minus-1e999", number_claim("exp", "-1e999"), "malformed_token"),
    Refusal("exp-1e308", number_claim("exp", "1e308"), "bad_exp"),
    Refusal("exp-object", with_claims(exp={}), "bad_exp"),
    Refusal("exp-list", with_claims(exp=lambda c: [c.now + 300]), "bad_exp"),
    Refusal("exp-exponent-string", with_claims(exp="1e10"), "bad_exp"),
    Refusal("exp-null", explicit("claims", "exp", None), "missing_exp"),
    Refusal("iat-1e999-infinity", number_claim("iat", "1e999"), "malformed_token"),
    Refusal("iat-huge-1e20", with_claims(iat=1e20), "bad_iat"),
    Refusal("iat-beyond-2^53", with_claims(iat=2**53 + 1), "bad_iat"),
    Refusal("iat-minus-2^63", with_claims(iat=-(2**63)), "bad_iat"),
    Refusal("iat-boolean", with_claims(iat=True), "bad_iat"),
    Refusal("iat-numeric-string", with_claims(iat=lambda c: str(c.now)), "bad_iat"),
    Refusal("iat-null", explicit("claims", "iat", None), "missing_iat"),
    Refusal("nbf-huge-1e20", with_claims(nbf=1e20), "bad_nbf"),
    Refusal("nbf-boolean", with_claims(nbf=False), "bad_nbf"),
    Refusal("exp-negative-zero", number_claim("exp", "-0.0"), "token_expired"),
    # exp far in the future.
    Refusal("exp-year-9999", with_claims(exp=253_402_300_799), "exp_too_far"),
    Refusal("exp-2^53", with_claims(exp=2**53), "exp_too_far"),
    # Two minutes past the bound: clear of the second boundary between minting and checking.
    Refusal("exp-24h-plus-2-minutes", lambda c: c.mint(ttl=24 * 3600 + 120), "exp_too_far"),
    Refusal("exp-one-year", lambda c: c.mint(ttl=365 * 24 * 3600), "exp_too_far"),
    # iss variants: exact match only.
    Refusal(
        "iss-localhost-for-127.0.0.1",
        iss_variant(lambda u: u.replace("127.0.0.1", "localhost")),
        "unknown_issuer",
    ),
    Refusal(
        "iss-https-for-http",
        iss_variant(lambda u: u.replace("http://", "https://")),
        "unknown_issuer",
    ),
    Refusal("iss-empty-query", iss_variant(lambda u: u + "?"), "unknown_issuer"),
    Refusal("iss-fragment", iss_variant(lambda u: u + "#"), "unknown_issuer"),
    Refusal("iss-userinfo", iss_variant(lambda u: u.replace("://", "://acme@")), "unknown_issuer"),
    Refusal("iss-dot-segment", iss_variant(lambda u: u + "/."), "unknown_issuer"),
    Refusal("iss-double-trailing-slash", iss_variant(lambda u: u + "//"), "unknown_issuer"),
    Refusal("iss-leading-space", iss_variant(lambda u: " " + u), "unknown_issuer"),
    Refusal(
        "iss-percent-encoded-host",
        iss_variant(lambda u: u.replace("127", "%31%32%37")),
        "unknown_issuer",
    ),
    Refusal("iss-nul", iss_variant(lambda u: u + "\x00"), "malformed_token"),
    Refusal("iss-object", with_claims(iss={"url": "x"}), "unknown_issuer"),
    Refusal("iss-github-trailing-slash", with_claims(iss=GITHUB_ISSUER + "/"), "unknown_issuer"),
    Refusal("iss-github-upper-case", with_claims(iss=GITHUB_ISSUER.upper()), "unknown_issuer"),
    Refusal(
        "iss-github-enterprise-path", with_claims(iss=GITHUB_ISSUER + "/acme"), "unknown_issuer"
    ),
    Refusal(
        "iss-github-signed-by-another-org",
        lambda c: c.other()[0].mint({"iss": GITHUB_ISSUER}, audience=AUDIENCE),
        "unknown_issuer",
    ),
    # aud: the requested organization, exactly.
    Refusal("aud-trailing-slash", with_claims(aud=AUDIENCE + "/"), "audience_mismatch"),
    Refusal("aud-leading-space", with_claims(aud=" " + AUDIENCE), "audience_mismatch"),
    Refusal("aud-list-upper-case-only", with_claims(aud=[AUDIENCE.upper()]), "audience_mismatch"),
    Refusal("aud-longer-org", with_claims(aud=AUDIENCE + "-evil"), "audience_mismatch"),
    Refusal(
        "aud-comma-joined", with_claims(aud="urn:pulumi:org:other," + AUDIENCE), "audience_mismatch"
    ),
    Refusal("aud-empty-string", with_claims(aud=""), "audience_mismatch"),
    Refusal("aud-nested-list", with_claims(aud=[[AUDIENCE]]), "bad_aud"),
    Refusal("aud-object", with_claims(aud={"aud": AUDIENCE}), "bad_aud"),
    Refusal("aud-list-with-null", with_claims(aud=[AUDIENCE, None]), "bad_aud"),
    Refusal("aud-null", explicit("claims", "aud", None), "missing_aud"),
    Refusal(
        "aud-list-of-other-orgs-and-github",
        with_claims(aud=["urn:pulumi:org:other", "https://github.com/acme"]),
        "audience_mismatch",
    ),
    # Oversize: bytes, not characters; header and payload alike.
    Refusal("oversize-60KiB", oversize_bytes(60 * 1024), "token_too_large"),
    Refusal("oversize-in-the-header", oversize_header, "token_too_large"),
    Refusal("oversize-multibyte-characters", non_ascii_oversize, "token_too_large"),
    Refusal("oversize-only-dots", lambda c: "." * 20_000, "token_too_large"),
    # Invalid base64url and UTF-8.
    Refusal("base64-plus-in-header", insert(0, "+"), "malformed_token"),
    Refusal("base64-slash-in-payload", insert(1, "/"), "malformed_token"),
    Refusal("base64-newline-in-header", insert(0, "\n"), "malformed_token"),
    Refusal("base64-space-in-payload", insert(1, " "), "malformed_token"),
    Refusal("base64-impossible-length-payload", replace_segment(1, "e30AA"), "malformed_token"),
    Refusal("base64-invalid-signature-characters", replace_segment(2, "!!!!"), "malformed_token"),
    Refusal(
        "base64-percent-encoded-dots", lambda c: c.mint().replace(".", "%2E"), "malformed_token"
    ),
    Refusal(
        "utf8-overlong-in-header",
        raw_header('{"alg":"RS256","kid":"{kid}","x":"\xc0\xaf"}'),
        "malformed_token",
    ),
    Refusal("utf8-bom-before-header", raw_header_bytes(prefix=b"\xef\xbb\xbf"), "malformed_token"),
    Refusal("utf8-bom-before-payload", raw_payload(prefix=b"\xef\xbb\xbf"), "malformed_token"),
    Refusal(
        "utf8-encoded-surrogate-in-payload",
        payload_bytes(b'{"sub":"\xed\xa0\x80"}'),
        "malformed_token",
    ),
    Refusal("latin1-payload", payload_bytes(b'{"sub":"caf\xe9"}'), "malformed_token"),
    Refusal("utf16-header", utf16_header, "malformed_token"),
    # Empty segments.
    Refusal("empty-header", replace_segment(0, ""), "malformed_token"),
    Refusal("empty-payload", replace_segment(1, ""), "malformed_token"),
    Refusal("empty-header-and-payload", lambda c: ".." + c.mint().split(".")[2], "malformed_token"),
    Refusal("single-dot", segments("", ""), "malformed_token"),
    Refusal("only-whitespace", lambda c: "   ", "malformed_token"),
]


EXISTING_IDS = {case.id for case in battery.REFUSALS}


@pytest.fixture(scope="module")
def _count() -> Iterator[None]:
    yield
    existing, new = len(battery.REFUSALS), len(NEW_REFUSALS)
    record_summary(
        "Hostile tokens through POST /api/oauth/token",
        [
            f"{existing + new} refusal cases: {existing} in tests/tokens/test_verification.py "
            f"(REFUSALS), {new} here"
        ],
    )


@pytest.mark.usefixtures("_count")
@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in NEW_REFUSALS])
def test_hostile_token_is_refused(api_client: Any, ctx: Ctx, case: Refusal) -> None:
    battery.test_refused(api_client, ctx, case)


def test_the_new_cases_do_not_repeat_the_battery() -> None:
    ids = [case.id for case in NEW_REFUSALS]
    assert len(ids) == len(set(ids))
    assert not EXISTING_IDS & set(ids)
    assert len(NEW_REFUSALS) >= 40
