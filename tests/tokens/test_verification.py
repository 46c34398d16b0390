"""SPEC §4 through the HTTP endpoint: every check of the subject token refuses, and says why.

Each refusal case posts one token to `POST /api/oauth/token` and asserts the whole contract:
400, an RFC 6749 body with the stable reason code and request id, exactly one new "deny"
exchange event with that reason, no access token, and no request to the local issuer other
than its discovery document and JWKS (so `jku`/`x5u` URLs are provably never fetched).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest
import time_machine
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from django.conf import settings as django_settings
from django.utils import timezone

from devtools.issuer import CannedResponse, DevIssuer, SigningKey, b64url, sign_jws
from issuers.models import Issuer
from issuers.services import Outbound, issuer_refresh_keys
from policies.registration import issuer_register
from tests.factories import OrganizationFactory
from tests.tokens.conftest import AUDIENCE, REQUESTED, exchange_body
from tokens.errors import InvalidRequest, InvalidScope
from tokens.format import hash_token
from tokens.models import AccessToken, ExchangeEvent

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("trusted")]

ROOT = Path(__file__).resolve().parents[2]
DISCOVERY = "/.well-known/openid-configuration"
JWKS = "/.well-known/jwks"  # the registered jwks_uri
JWKS_ALIAS = "/.well-known/jwks.json"  # served by the dev issuer too, never registered
ISSUER_PATHS = {DISCOVERY, JWKS}
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
# Refused by decode_unverified, before the token's parts are known.
DECODE_REASONS = {"token_too_large", "jwe_not_supported", "malformed_token"}


# --- fixtures and helpers ----------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_rate_limits(settings: Any, allow_local_issuers: None) -> None:
    """Rate limits are not under test here; a long parametrized run must not trip them.

    (Limit 0 never touches the cache, so there is nothing to clear: no FLUSHDB on a Redis
    that a concurrently running Celery worker may be using as its broker.)
    """
    settings.TRUSTPORTAL = dataclasses.replace(
        settings.TRUSTPORTAL, rate_limit_per_ip=0, rate_limit_per_subject=0
    )


@pytest.fixture(scope="module")
def attacker_key() -> SigningKey:
    """An RSA key the issuer never published, under a kid the issuer does not have."""
    return SigningKey.generate("RS256", kid="attacker-1")


@pytest.fixture(scope="module")
def impostor_key(_issuer_key: SigningKey) -> SigningKey:
    """An RSA key the issuer never published, under the kid of the issuer's real key."""
    return SigningKey.generate("RS256", kid=_issuer_key.kid)


def segment(document: Any) -> str:
    return b64url(json.dumps(document, separators=(",", ":")).encode())


def self_signed_certificate(key: SigningKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "attacker.example")])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key.private_key, hashes.SHA256())
    )


@dataclass
class Ctx:
    """Everything a case needs to build its token (and, optionally, to set the stage)."""

    issuer: DevIssuer
    trusted: Issuer
    outbound: Outbound
    attacker: SigningKey
    impostor: SigningKey
    finalizers: list[Callable[[], None]] = field(default_factory=list)
    _other: tuple[DevIssuer, Issuer] | None = None

    @property
    def kid(self) -> str:
        return self.issuer.current_key.kid

    @property
    def now(self) -> int:
        return int(time.time())

    def claims(self, **extra: Any) -> dict[str, Any]:
        return self.issuer.claims(audience=AUDIENCE, **extra)

    def header(self, **extra: Any) -> dict[str, Any]:
        return {"alg": "RS256", "typ": "JWT", "kid": self.kid, **extra}

    def mint(self, claims: dict[str, Any] | None = None, **kwargs: Any) -> str:
        return self.issuer.mint(claims, audience=AUDIENCE, **kwargs)

    def sign(self, header: dict[str, Any], payload: dict[str, Any] | bytes) -> str:
        """Signed with the issuer's real key: only the hand-made part is wrong."""
        return sign_jws(header, payload, self.issuer.current_key, alg="RS256")

    def raw(self, header_json: bytes, payload_json: bytes) -> str:
        """A token over exactly these JSON bytes, validly signed by the issuer's real key."""
        signing_input = f"{b64url(header_json)}.{b64url(payload_json)}".encode()
        signature = jwt.get_algorithm_by_name("RS256").sign(
            signing_input,
            self.issuer.current_key.private_key,
        )
        return f"{signing_input.decode()}.{b64url(signature)}"

    def hmac_token(self, secret: bytes, alg: str = "HS256") -> str:
        """HMAC-signed by hand (PyJWT refuses to use a PEM as an HMAC secret)."""
        digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
        signing_input = f"{segment(self.header(alg=alg))}.{segment(self.claims())}"
        signature = hmac.new(secret, signing_input.encode(), digest).digest()
        return f"{signing_input}.{b64url(signature)}"

    def public_pem(self) -> bytes:
        return self.issuer.current_key.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def serve(self, path: str, body: bytes, content_type: str = "application/json") -> str:
        """Serve a hostile document on the local issuer; a vulnerable verifier would use it."""
        self.issuer.canned[path] = CannedResponse(body=body, headers={"Content-Type": content_type})
        return f"{self.issuer.url}{path}"

    def add_key(self, alg: str, **kwargs: Any) -> SigningKey:
        """Publish a new key on the local issuer and refresh the trusted issuer's key set."""
        key = self.issuer.add_key(alg, **kwargs)
        issuer_refresh_keys(issuer=self.trusted, trigger="manual", outbound=self.outbound)
        return key

    def update(self, **fields: Any) -> None:
        for name, value in fields.items():
            setattr(self.trusted, name, value)
        self.trusted.save()

    def other(self) -> tuple[DevIssuer, Issuer]:
        """A second real issuer, registered by another organization (`other`)."""
        if self._other is None:
            server = DevIssuer(keys=[SigningKey.generate("ES256", kid="other-key-1")]).start()
            self.finalizers.append(server.stop)
            registered = issuer_register(
                organization=OrganizationFactory(login="other", name="Other Inc."),
                url=server.url,
                name="other-dev",
                outbound=self.outbound,
            )
            self._other = (server, registered)
        return self._other


@pytest.fixture
def ctx(
    local_issuer: DevIssuer,
    trusted: Issuer,
    outbound: Outbound,
    attacker_key: SigningKey,
    impostor_key: SigningKey,
) -> Iterator[Ctx]:
    context = Ctx(local_issuer, trusted, outbound, attacker_key, impostor_key)
    yield context
    for finalize in context.finalizers:
        finalize()


def post(client: Any, token: str, **overrides: Any) -> Any:
    return client.post("/api/oauth/token", exchange_body(token, **overrides), format="json")


@dataclass(frozen=True)
class Snapshot:
    """The event and token rows that existed before an attempt."""

    events: frozenset[int]
    tokens: frozenset[Any]

    def new_events(self) -> list[ExchangeEvent]:
        return list(ExchangeEvent.objects.exclude(pk__in=self.events))

    def new_tokens(self) -> list[AccessToken]:
        return list(AccessToken.objects.exclude(pk__in=self.tokens))


def snapshot() -> Snapshot:
    return Snapshot(
        frozenset(ExchangeEvent.objects.values_list("pk", flat=True)),
        frozenset(AccessToken.objects.values_list("pk", flat=True)),
    )


# Refusals that would tell whether an organization exists or which issuers it trusts: the caller
# sees one code for all of them, the event the real one (tests/tokens/test_exchange_oracle.py).
NOT_FOR_HERE = frozenset(
    {"unknown_organization", "unknown_issuer", "issuer_disabled", "audience_mismatch"}
)


def assert_refused(
    response: Any, reason: str, before: Snapshot, *, error: str = "invalid_request"
) -> ExchangeEvent:
    """The full refusal contract of SPEC §3/§8 for one attempt; returns its event."""
    assert response.status_code == 400, response.content
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert set(body) == {"error", "error_description", "reason", "request_id"}, body
    assert body["error"] == error
    shown = "untrusted_token" if reason in NOT_FOR_HERE else reason
    assert body["reason"] == shown, body
    request_id = body["request_id"]
    assert request_id and response["X-Request-Id"] == request_id
    # Generic: the stable code and the request id, never the detail the admin sees.
    generic = {"invalid_request": InvalidRequest, "invalid_scope": InvalidScope}[error].description
    assert body["error_description"] == f"{generic} (reason: {shown}, request id: {request_id})"
    new_events = before.new_events()
    assert len(new_events) == 1, [(e.decision, e.reason) for e in new_events]
    event = new_events[0]
    assert (event.decision, event.reason, event.error) == ("deny", reason, error)
    assert event.request_id == request_id
    assert event.organization is not None and event.organization.login == "acme"
    assert event.token_id is None
    assert before.new_tokens() == []
    return event


def assert_accepted(response: Any, before: Snapshot) -> ExchangeEvent:
    assert response.status_code == 200, response.json()
    body = response.json()
    assert set(body) == {"access_token", "issued_token_type", "token_type", "expires_in", "scope"}
    new_events = before.new_events()
    assert len(new_events) == 1
    event = new_events[0]
    assert (event.decision, event.reason) == ("allow", "allowed")
    token = AccessToken.objects.get(token_hash=hash_token(body["access_token"]))
    assert before.new_tokens() == [token]
    assert event.token_id == token.pk
    return event


def only_issuer_documents_fetched(issuer: DevIssuer) -> None:
    fetched = {r.path for r in issuer.requests}
    assert fetched <= ISSUER_PATHS, f"unexpected fetches: {sorted(fetched - ISSUER_PATHS)}"


# --- the refusal table -------------------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    id: str
    build: Callable[[Ctx], str]
    reason: str
    never_fetched: tuple[str, ...] = ()  # paths on the local issuer that must stay untouched
    xfail: str = ""


def unsigned(alg: Any) -> Callable[[Ctx], str]:
    return lambda c: sign_jws(c.header(alg=alg), c.claims(), None)


def with_claims(**overrides: Any) -> Callable[[Ctx], str]:
    """A validly signed token whose claims are the defaults with `overrides` (None drops)."""

    def build(c: Ctx) -> str:
        claims = c.claims()
        for name, value in overrides.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value(c) if callable(value) else value
        return c.sign(c.header(), claims)

    return build


def with_header(**overrides: Any) -> Callable[[Ctx], str]:
    """A validly signed token whose header is the default with `overrides` (None drops)."""

    def build(c: Ctx) -> str:
        header = c.header()
        for name, value in overrides.items():
            if value is None:
                header.pop(name, None)
            else:
                header[name] = value(c) if callable(value) else value
        return c.sign(header, c.claims())

    return build


def flip_signature_char(c: Ctx) -> str:
    head, payload, signature = c.mint().split(".")
    middle = len(signature) // 2
    flipped = "A" if signature[middle] != "A" else "B"
    return f"{head}.{payload}.{signature[:middle]}{flipped}{signature[middle + 1 :]}"


def tampered_payload(c: Ctx) -> str:
    head, _, signature = c.mint().split(".")
    forged = c.claims(sub="repo:evil/fork:ref:refs/heads/main", repository="evil/fork")
    return f"{head}.{segment(forged)}.{signature}"


def tampered_header(c: Ctx) -> str:
    _, payload, signature = c.mint().split(".")
    return f"{segment(c.header(typ='at+jwt'))}.{payload}.{signature}"


def signed_by(key_of: Callable[[Ctx], SigningKey], **headers: Any) -> Callable[[Ctx], str]:
    def build(c: Ctx) -> str:
        extra = {name: v(c) if callable(v) else v for name, v in headers.items()}
        return c.mint(key=key_of(c), headers=extra)

    return build


def jku_attack(kid_of: Callable[[Ctx], str]) -> Callable[[Ctx], str]:
    def build(c: Ctx) -> str:
        key = SigningKey(kid=kid_of(c), alg="RS256", private_key=c.attacker.private_key)
        jwks = {"keys": [key.public_jwk()]}
        url = c.serve("/attacker/jwks.json", json.dumps(jwks).encode())
        return c.mint(key=key, headers={"jku": url})

    return build


def x5u_attack(kid_of: Callable[[Ctx], str]) -> Callable[[Ctx], str]:
    def build(c: Ctx) -> str:
        key = SigningKey(kid=kid_of(c), alg="RS256", private_key=c.attacker.private_key)
        pem = self_signed_certificate(key).public_bytes(serialization.Encoding.PEM)
        url = c.serve("/attacker/cert.pem", pem, "application/pem-certificate-chain")
        return c.mint(key=key, headers={"x5u": url})

    return build


def jwk_attack(kid_of: Callable[[Ctx], str]) -> Callable[[Ctx], str]:
    def build(c: Ctx) -> str:
        key = SigningKey(kid=kid_of(c), alg="RS256", private_key=c.attacker.private_key)
        return c.mint(key=key, headers={"jwk": key.public_jwk()})

    return build


def x5c_attack(kid_of: Callable[[Ctx], str]) -> Callable[[Ctx], str]:
    def build(c: Ctx) -> str:
        key = SigningKey(kid=kid_of(c), alg="RS256", private_key=c.attacker.private_key)
        der = self_signed_certificate(key).public_bytes(serialization.Encoding.DER)
        return c.mint(key=key, headers={"x5c": [base64.b64encode(der).decode()]})

    return build


def known_kid(c: Ctx) -> str:
    return c.kid


def attacker_kid(c: Ctx) -> str:
    return c.attacker.kid


def es256_key_with_rs256_header(c: Ctx) -> str:
    key = c.add_key("ES256", kid="es-key-1")
    return c.mint(key=key, headers={"alg": "RS256"})


def rsa_key_with_ps256_header(c: Ctx) -> str:
    # The published key says alg RS256; the token claims PS256 (and is PS256-signed by it).
    return c.mint(alg="PS256")


def rs256_header_over_ps256_signature(c: Ctx) -> str:
    return c.mint(alg="PS256", headers={"alg": "RS256"})


def eddsa_key_with_es256_header(c: Ctx) -> str:
    key = c.add_key("EdDSA", kid="ed-key-1")
    return c.mint(key=key, headers={"alg": "ES256"})


def only_es256_allowed(c: Ctx) -> str:
    c.update(algorithms=["ES256"])
    return c.mint()


def disabled_issuer(c: Ctx) -> str:
    c.update(enabled=False)
    return c.mint()


def stale_issuer(c: Ctx) -> str:
    c.update(last_success_at=timezone.now() - dt.timedelta(days=8))
    return c.mint()


def single_use(**claims: Any) -> Callable[[Ctx], str]:
    def build(c: Ctx) -> str:
        c.update(single_use=True)
        return c.mint(claims)

    return build


def other_org_token(c: Ctx) -> str:
    server, _ = c.other()
    return server.mint(audience=AUDIENCE)


def other_org_key_with_our_iss(c: Ctx) -> str:
    server, _ = c.other()
    return server.mint({"iss": c.issuer.url}, audience=AUDIENCE)


def oversize(c: Ctx) -> str:
    return c.mint({"pad": "x" * (16 * 1024)})


def sized_token(c: Ctx, size: int) -> str:
    """A validly signed token of exactly `size` bytes (padding a header and a claim)."""
    base = len(c.mint({"pad": ""}, headers={"x": ""}))
    for header_pad in range(4):
        for pad in range(max(0, (size - base) * 3 // 4 - 8), (size - base) * 3 // 4 + 8):
            token = c.mint({"pad": "p" * pad}, headers={"x": "h" * header_pad})
            if len(token) == size:
                return token
    raise AssertionError(f"could not build a token of {size} bytes")


def jwe_shaped(c: Ctx) -> str:
    header = segment({"alg": "RSA-OAEP", "enc": "A256GCM", "kid": c.kid})
    return ".".join([header, b64url(b"k" * 256), b64url(b"iv" * 6), b64url(b"ct"), b64url(b"t")])


def segments(*parts: str) -> Callable[[Ctx], str]:
    return lambda c: ".".join(parts)


def two_segments(c: Ctx) -> str:
    return ".".join(c.mint().split(".")[:2])


def four_segments(c: Ctx) -> str:
    return c.mint() + "." + b64url(b"extra")


def json_serialization(c: Ctx) -> str:
    head, payload, signature = c.mint().split(".")
    return json.dumps({"payload": payload, "protected": head, "signature": signature})


def replace_segment(index: int, value: str) -> Callable[[Ctx], str]:
    def build(c: Ctx) -> str:
        parts = c.mint().split(".")
        parts[index] = value
        return ".".join(parts)

    return build


def padded_header(c: Ctx) -> str:
    head, payload, signature = c.mint().split(".")
    return f"{head}{'=' * (-len(head) % 4) or '=='}.{payload}.{signature}"


def nested_jwt(c: Ctx) -> str:
    inner = c.mint()
    return c.sign(c.header(cty="JWT"), inner.encode())


REFUSALS: list[Refusal] = [
    # Size and compact form, before any decoding.
    Refusal("oversize-16KiB+", oversize, "token_too_large"),
    Refusal("exactly-16KiB+1", lambda c: sized_token(c, 16 * 1024 + 1), "token_too_large"),
    Refusal("jwe-five-segments", jwe_shaped, "jwe_not_supported"),
    Refusal("two-segments", two_segments, "malformed_token"),
    Refusal("four-segments", four_segments, "malformed_token"),
    Refusal("empty-segments", segments("", "", ""), "malformed_token"),
    Refusal("only-dots", segments("", "", "", ""), "malformed_token"),
    Refusal("json-serialization", json_serialization, "malformed_token"),
    Refusal("not-a-jwt", lambda c: "garbage", "malformed_token"),
    Refusal("invalid-base64-header", replace_segment(0, "!!!!$$$$"), "malformed_token"),
    Refusal(
        "invalid-base64-payload",
        replace_segment(1, "e30*~~"),
        "malformed_token",
    ),
    Refusal("padded-base64-header", padded_header, "malformed_token"),
    Refusal("non-ascii-in-header", replace_segment(0, "eyJhbGciOiJSUzI1NiJ9é"), "malformed_token"),
    Refusal(
        "invalid-utf8-payload",
        lambda c: c.sign(c.header(), b'{"sub":"\xff\xfe"}'),
        "malformed_token",
    ),
    Refusal(
        "header-not-an-object",
        lambda c: c.raw(b'["RS256"]', json.dumps(c.claims()).encode()),
        "malformed_token",
    ),
    Refusal("payload-not-an-object", lambda c: c.sign(c.header(), b'["sub"]'), "malformed_token"),
    Refusal("payload-json-string", lambda c: c.sign(c.header(), b'"hello"'), "malformed_token"),
    Refusal(
        "payload-NaN-constant",
        lambda c: c.sign(c.header(), b'{"exp":NaN,"iat":1}'),
        "malformed_token",
    ),
    Refusal(
        "duplicate-header-member",
        lambda c: c.raw(
            f'{{"alg":"RS256","kid":"{c.kid}","alg":"none"}}'.encode(),
            json.dumps(c.claims()).encode(),
        ),
        "malformed_token",
    ),
    Refusal(
        "duplicate-payload-member",
        lambda c: c.raw(
            json.dumps(c.header()).encode(),
            json.dumps(c.claims())[:-1].encode() + b',"sub":"repo:acme/infra:ref:refs/heads/x"}',
        ),
        "malformed_token",
    ),
    Refusal("nested-jwt-payload", nested_jwt, "malformed_token"),
    # Header: alg allow-list (never none, never HS*), crit, b64, nested cty, kid form.
    Refusal("alg-none", unsigned("none"), "alg_not_allowed"),
    Refusal("alg-None", unsigned("None"), "alg_not_allowed"),
    Refusal("alg-NONE", unsigned("NONE"), "alg_not_allowed"),
    Refusal("alg-nOnE", unsigned("nOnE"), "alg_not_allowed"),
    Refusal("alg-missing", lambda c: sign_jws({"kid": c.kid}, c.claims(), None), "alg_not_allowed"),
    Refusal("alg-empty", unsigned(""), "alg_not_allowed"),
    Refusal("alg-list", unsigned(["RS256"]), "alg_not_allowed"),
    Refusal("alg-rs256-lowercase", with_header(alg="rs256"), "alg_not_allowed"),
    Refusal("alg-none-with-signature", with_header(alg="none"), "alg_not_allowed"),
    Refusal(
        "hs256-rsa-public-pem-secret", lambda c: c.hmac_token(c.public_pem()), "alg_not_allowed"
    ),
    Refusal(
        "hs256-jwk-json-secret",
        lambda c: c.hmac_token(json.dumps(c.issuer.jwks()["keys"][0]).encode()),
        "alg_not_allowed",
    ),
    Refusal(
        "hs512-rsa-public-pem-secret",
        lambda c: c.hmac_token(c.public_pem(), "HS512"),
        "alg_not_allowed",
    ),
    Refusal("crit-header", with_header(crit=["exp"]), "crit_not_supported"),
    Refusal("crit-empty-list", with_header(crit=[]), "crit_not_supported"),
    Refusal("b64-false", with_header(b64=False), "b64_not_supported"),
    Refusal("b64-false-in-crit", with_header(b64=False, crit=["b64"]), "crit_not_supported"),
    Refusal("cty-JWT", with_header(cty="JWT"), "nested_jwt"),
    Refusal("cty-jwt-lowercase", with_header(cty="jwt"), "nested_jwt"),
    Refusal("kid-missing", with_header(kid=None), "missing_kid"),
    Refusal("kid-null", lambda c: c.sign({**c.header(), "kid": None}, c.claims()), "missing_kid"),
    Refusal("kid-empty", with_header(kid=""), "bad_kid"),
    Refusal("kid-path-traversal", with_header(kid="../../etc/passwd"), "bad_kid"),
    Refusal("kid-dotdot-slash", with_header(kid="../"), "bad_kid"),
    Refusal("kid-sql-quote", with_header(kid="x' OR '1'='1"), "bad_kid"),
    Refusal("kid-129-chars", with_header(kid="k" * 129), "bad_kid"),
    Refusal("kid-unicode", with_header(kid="kïd-ключ"), "bad_kid"),
    Refusal("kid-number", with_header(kid=1), "bad_kid"),
    Refusal("kid-object", with_header(kid={"$ne": ""}), "bad_kid"),
    Refusal("kid-url", with_header(kid="https://evil.example/jwks"), "bad_kid"),
    Refusal(
        "kid-trailing-newline",
        with_header(kid=lambda c: c.kid + "\n"),
        "bad_kid",
    ),
    # jku / x5u / jwk / x5c: ignored, never fetched, never used.
    Refusal(
        "jku-attacker-jwks-known-kid",
        jku_attack(known_kid),
        "bad_signature",
        never_fetched=("/attacker/jwks.json",),
    ),
    Refusal(
        "jku-attacker-jwks-attacker-kid",
        jku_attack(attacker_kid),
        "unknown_kid",
        never_fetched=("/attacker/jwks.json",),
    ),
    Refusal(
        # The issuer really serves its JWKS at this alias too; only its jwks_uri is ever read.
        "jku-issuer-jwks-alias",
        signed_by(lambda c: c.attacker, jku=lambda c: f"{c.issuer.url}{JWKS_ALIAS}"),
        "unknown_kid",
        never_fetched=(JWKS_ALIAS,),
    ),
    Refusal(
        "x5u-attacker-cert-known-kid",
        x5u_attack(known_kid),
        "bad_signature",
        never_fetched=("/attacker/cert.pem",),
    ),
    Refusal(
        "x5u-attacker-cert-attacker-kid",
        x5u_attack(attacker_kid),
        "unknown_kid",
        never_fetched=("/attacker/cert.pem",),
    ),
    Refusal("jwk-embedded-attacker-key-known-kid", jwk_attack(known_kid), "bad_signature"),
    Refusal("jwk-embedded-attacker-key-attacker-kid", jwk_attack(attacker_kid), "unknown_kid"),
    Refusal("x5c-attacker-cert-known-kid", x5c_attack(known_kid), "bad_signature"),
    Refusal("x5c-attacker-cert-attacker-kid", x5c_attack(attacker_kid), "unknown_kid"),
    # Issuer: exact iss among the requested organization's enabled issuers.
    Refusal("iss-missing", with_claims(iss=None), "missing_iss"),
    Refusal("iss-empty", with_claims(iss=""), "missing_iss"),
    Refusal("iss-null", lambda c: c.sign(c.header(), {**c.claims(), "iss": None}), "missing_iss"),
    Refusal("iss-number", with_claims(iss=42), "unknown_issuer"),
    Refusal("iss-list", with_claims(iss=lambda c: [c.issuer.url]), "unknown_issuer"),
    Refusal("iss-2049-chars", with_claims(iss="https://e.example/" + "i" * 2031), "unknown_issuer"),
    Refusal("iss-wrong", with_claims(iss="https://evil.example"), "unknown_issuer"),
    Refusal("iss-trailing-slash", with_claims(iss=lambda c: c.issuer.url + "/"), "unknown_issuer"),
    Refusal(
        "iss-different-case",
        with_claims(iss=lambda c: c.issuer.url.replace("http://", "HTTP://")),
        "unknown_issuer",
    ),
    Refusal("iss-trailing-space", with_claims(iss=lambda c: c.issuer.url + " "), "unknown_issuer"),
    Refusal("iss-github", with_claims(iss=GITHUB_ISSUER), "unknown_issuer"),
    Refusal("iss-another-orgs-issuer", other_org_token, "unknown_issuer"),
    Refusal("another-orgs-key-with-our-iss", other_org_key_with_our_iss, "unknown_kid"),
    Refusal("issuer-disabled", disabled_issuer, "issuer_disabled"),
    Refusal("issuer-keys-stale-8-days", stale_issuer, "issuer_unhealthy"),
    # Keys: allow-list of the issuer, key alg must equal header alg, kid known.
    Refusal("alg-not-in-issuer-allow-list", only_es256_allowed, "alg_not_allowed"),
    Refusal("alg-ES512-not-in-default-list", with_header(alg="ES512"), "alg_not_allowed"),
    Refusal("es256-key-rs256-header", es256_key_with_rs256_header, "alg_mismatch"),
    Refusal("rs256-key-ps256-header", rsa_key_with_ps256_header, "alg_mismatch"),
    Refusal("eddsa-key-es256-header", eddsa_key_with_es256_header, "alg_mismatch"),
    Refusal("kid-unknown", signed_by(lambda c: c.attacker), "unknown_kid"),
    # Signature.
    Refusal("signature-flipped-char", flip_signature_char, "bad_signature"),
    Refusal("signature-empty", replace_segment(2, ""), "bad_signature"),
    Refusal("signature-truncated", lambda c: c.mint()[:-42], "bad_signature"),
    Refusal("signature-shortened", replace_segment(2, b64url(b"s" * 255)), "bad_signature"),
    Refusal("signature-impossible-length", replace_segment(2, "A"), "malformed_token"),
    Refusal("payload-changed", tampered_payload, "bad_signature"),
    Refusal("header-changed", tampered_header, "bad_signature"),
    Refusal("unpublished-key-known-kid", signed_by(lambda c: c.impostor), "bad_signature"),
    Refusal("rs256-header-ps256-signature", rs256_header_over_ps256_signature, "bad_signature"),
    # Claims: exp/iat required, nbf honoured, 60 s leeway, 24 h bound, audience.
    Refusal("expired-beyond-leeway", lambda c: c.mint(now=c.now - 420, ttl=300), "token_expired"),
    Refusal("expired-long-ago", with_claims(exp=1_000_000_000), "token_expired"),
    Refusal("exp-negative", with_claims(exp=-1), "token_expired"),
    Refusal(
        "nbf-future-beyond-leeway", with_claims(nbf=lambda c: c.now + 300), "token_not_yet_valid"
    ),
    Refusal("iat-future-beyond-leeway", with_claims(iat=lambda c: c.now + 300), "iat_in_future"),
    Refusal("exp-missing", with_claims(exp=None), "missing_exp"),
    Refusal("iat-missing", with_claims(iat=None), "missing_iat"),
    Refusal("exp-non-numeric", with_claims(exp="tomorrow"), "bad_exp"),
    Refusal("exp-numeric-string", with_claims(exp=lambda c: str(c.now + 300)), "bad_exp"),
    Refusal("exp-boolean", with_claims(exp=True), "bad_exp"),
    Refusal("exp-huge-1e20", with_claims(exp=1e20), "bad_exp"),
    Refusal("exp-beyond-2^53", with_claims(exp=2**53 + 1), "bad_exp"),
    Refusal("iat-non-numeric", with_claims(iat="now"), "bad_iat"),
    Refusal("nbf-non-numeric", with_claims(nbf=[1]), "bad_nbf"),
    Refusal("exp-more-than-24h-ahead", lambda c: c.mint(ttl=25 * 3600), "exp_too_far"),
    Refusal("aud-missing", with_claims(aud=None), "missing_aud"),
    Refusal("aud-empty-list", with_claims(aud=[]), "bad_aud"),
    Refusal("aud-number", with_claims(aud=7), "bad_aud"),
    Refusal("aud-list-with-non-string", with_claims(aud=[AUDIENCE, 7]), "bad_aud"),
    Refusal("aud-another-org", with_claims(aud="urn:pulumi:org:other"), "audience_mismatch"),
    Refusal(
        "aud-list-without-the-org",
        with_claims(aud=["urn:pulumi:org:other", "sts.amazonaws.com"]),
        "audience_mismatch",
    ),
    Refusal("aud-prefix-only", with_claims(aud="urn:pulumi:org:"), "audience_mismatch"),
    Refusal("aud-org-case", with_claims(aud="urn:pulumi:org:ACME"), "audience_mismatch"),
    # Single-use issuers need a usable jti (replay itself: test_exchange.py).
    Refusal("single-use-jti-number", single_use(jti=12345), "missing_jti"),
    Refusal("single-use-jti-empty", single_use(jti=""), "missing_jti"),
    Refusal("single-use-jti-257-chars", single_use(jti="j" * 257), "missing_jti"),
]


def _params(cases: list[Refusal]) -> list[Any]:
    return [
        pytest.param(
            case,
            id=case.id,
            marks=[pytest.mark.xfail(strict=True, reason=case.xfail)] if case.xfail else [],
        )
        for case in cases
    ]


@pytest.mark.parametrize("case", _params(REFUSALS))
def test_refused(api_client, ctx: Ctx, case: Refusal) -> None:
    token = case.build(ctx)
    before = snapshot()
    response = post(api_client, token)
    event = assert_refused(response, case.reason, before)
    if event.subject_token_sha256 or case.reason not in DECODE_REASONS:
        assert event.subject_token_sha256 == hashlib.sha256(token.encode()).hexdigest()
    assert token not in json.dumps(event.claims)
    only_issuer_documents_fetched(ctx.issuer)
    for path in case.never_fetched:
        if path.startswith("/attacker/"):
            assert path in ctx.issuer.canned  # the hostile document was really on offer
        assert not ctx.issuer.requests_to(path)


# --- the acceptance table: the boundaries just inside each check -------------------------------


@dataclass(frozen=True)
class Accepted:
    id: str
    build: Callable[[Ctx], str]
    overrides: dict[str, Any] = field(default_factory=dict)


def static_aws_audience(c: Ctx) -> str:
    c.update(audiences=["sts.amazonaws.com"])
    return c.mint({"aud": "sts.amazonaws.com"})


def longest_kid(c: Ctx) -> str:
    return c.mint(key=c.add_key("ES256", kid="k" * 128))


def punctuated_kid(c: Ctx) -> str:
    return c.mint(key=c.add_key("ES256", kid="a.B_c:9-z"))


ACCEPTED: list[Accepted] = [
    Accepted("exp-30s-ago-within-leeway", lambda c: c.mint(now=c.now - 330, ttl=300)),
    Accepted("nbf-30s-ahead-within-leeway", with_claims(nbf=lambda c: c.now + 30)),
    Accepted("iat-30s-ahead-within-leeway", with_claims(iat=lambda c: c.now + 30)),
    Accepted("no-nbf", with_claims(nbf=None)),
    Accepted("exp-24h-ahead", lambda c: c.mint(ttl=24 * 3600)),
    Accepted("exp-float", with_claims(exp=lambda c: c.now + 300.5)),
    Accepted("aud-list-with-the-org", with_claims(aud=["urn:pulumi:org:other", AUDIENCE])),
    Accepted(
        "aud-issuer-allowed-audience",
        static_aws_audience,
        {"requested_token_type": REQUESTED + "team", "scope": "team:platform"},
    ),
    Accepted("exactly-16KiB", lambda c: sized_token(c, 16 * 1024)),
    Accepted("kid-128-chars", longest_kid),
    Accepted("kid-all-allowed-punctuation", punctuated_kid),
    Accepted("unknown-header-members-ignored", with_header(x5t="abc", foo={"bar": 1})),
    Accepted("typ-missing", with_header(typ=None)),
]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in ACCEPTED])
def test_accepted_at_the_boundary(api_client, ctx: Ctx, case: Accepted) -> None:
    token = case.build(ctx)
    before = snapshot()
    assert_accepted(post(api_client, token, **case.overrides), before)


# --- unknown kid: one synchronous refresh per issuer per 60 s ----------------------------------


def test_unknown_kid_refreshes_once_per_minute(api_client, ctx: Ctx) -> None:
    ctx.issuer.clear_log()
    stranger = SigningKey(kid="rotated-1", alg="RS256", private_key=ctx.attacker.private_key)
    before = snapshot()
    assert_refused(post(api_client, ctx.mint(key=stranger)), "unknown_kid", before)
    assert len(ctx.issuer.requests_to(JWKS)) == 1  # refreshed once, synchronously
    assert {r.path for r in ctx.issuer.requests} == {JWKS}

    another = SigningKey(kid="rotated-2", alg="RS256", private_key=ctx.attacker.private_key)
    before = snapshot()
    assert_refused(post(api_client, ctx.mint(key=another)), "unknown_kid", before)
    assert len(ctx.issuer.requests_to(JWKS)) == 1  # within 60 s: no further fetch

    with time_machine.travel(timezone.now() + dt.timedelta(seconds=61), tick=True):
        third = SigningKey(kid="rotated-3", alg="RS256", private_key=ctx.attacker.private_key)
        before = snapshot()
        assert_refused(post(api_client, ctx.mint(key=third)), "unknown_kid", before)
    assert len(ctx.issuer.requests_to(JWKS)) == 2  # a minute later the gate opens again


def test_a_key_rotated_in_is_found_by_the_on_demand_refresh(api_client, ctx: Ctx) -> None:
    ctx.issuer.clear_log()
    rotated = ctx.issuer.add_key("ES256", kid="rotated-in")
    before = snapshot()
    assert_accepted(post(api_client, ctx.mint(key=rotated)), before)
    assert len(ctx.issuer.requests_to(JWKS)) == 1


def test_a_removed_key_stops_verifying_after_the_next_refresh(api_client, ctx: Ctx) -> None:
    spare = ctx.add_key("ES256", kid="spare-1")
    before = snapshot()
    assert_accepted(post(api_client, ctx.mint(key=spare)), before)
    ctx.issuer.remove_key("spare-1")
    issuer_refresh_keys(issuer=ctx.trusted, trigger="manual", outbound=ctx.outbound)
    before = snapshot()
    assert_refused(post(api_client, ctx.mint(key=spare)), "unknown_kid", before)


# --- the exact PyJWT call ----------------------------------------------------------------------


def test_jwt_decode_is_called_with_exactly_these_options(
    api_client, ctx: Ctx, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    real_decode = jwt.decode

    def recording_decode(*args: Any, **kwargs: Any) -> Any:
        calls.append((args, kwargs))
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(jwt, "decode", recording_decode)
    token = ctx.mint()
    before = snapshot()
    assert_accepted(post(api_client, token), before)

    assert len(calls) == 1
    args, kwargs = calls[0]
    assert args == (token,)
    assert set(kwargs) == {"key", "algorithms", "options"}
    assert kwargs["algorithms"] == ["RS256"]
    assert kwargs["options"] == {
        "verify_signature": True,
        "verify_exp": False,
        "verify_nbf": False,
        "verify_iat": False,
        "verify_aud": False,
        "verify_iss": False,
        "verify_sub": False,
        "verify_jti": False,
        "require": [],
    }
    published = ctx.issuer.current_key.private_key.public_key().public_numbers()  # type: ignore[union-attr]
    assert kwargs["key"].public_numbers() == published


# --- backstop: real signatures of every default algorithm verify, tampered ones never ----------

BACKSTOP_ALGORITHMS = [
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "EdDSA",
]


def test_backstop_every_default_algorithm_verifies_and_detects_tampering(
    api_client, ctx: Ctx, outbound: Outbound
) -> None:
    assert sorted(ctx.trusted.algorithms) == sorted(BACKSTOP_ALGORITHMS)
    keys = {
        alg: ctx.issuer.add_key(alg, kid=f"backstop-{alg.lower()}") for alg in BACKSTOP_ALGORITHMS
    }
    issuer_refresh_keys(issuer=ctx.trusted, trigger="manual", outbound=outbound)
    for alg, key in keys.items():
        token = ctx.mint(key=key)
        assert jwt.get_unverified_header(token)["alg"] == alg
        before = snapshot()
        event = assert_accepted(post(api_client, token), before)
        assert (event.alg, event.kid) == (alg, key.kid)

        head, payload, signature = token.split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        claims["repository"] = "acme/other"  # one claim changed, signature kept
        forged = f"{head}.{segment(claims)}.{signature}"
        before = snapshot()
        response = post(api_client, forged)
        assert response.status_code == 400, (alg, response.json())
        assert response.json()["reason"] == "bad_signature", alg
        assert [e.reason for e in before.new_events()] == ["bad_signature"]
    assert AccessToken.objects.count() == len(BACKSTOP_ALGORITHMS)


# --- never 500 for hostile strings -------------------------------------------------------------


def surrogate_body(token: str) -> bytes:
    """A JSON body whose subject token ends in a lone surrogate (legal JSON, not UTF-8-able)."""
    return json.dumps(exchange_body(token + "\ud800"), ensure_ascii=True).encode()


def test_lone_surrogate_in_the_signature_is_malformed_not_500(api_client, ctx: Ctx) -> None:
    before = snapshot()
    response = api_client.generic(
        "POST", "/api/oauth/token", surrogate_body(ctx.mint()), "application/json"
    )
    assert_refused(response, "malformed_body", before)


SURROGATE_500 = (
    "a lone surrogate escape ('\\ud800') is valid JSON, so tokens/verification.py _object "
    "(claims) and tokens/request.py read_body (fields) accept it; saving the exchange event then "
    "raises UnicodeEncodeError in the database driver (SQLite and psycopg): 500 and no event"
)


def test_lone_surrogate_in_a_claim_is_recorded_not_500(api_client, ctx: Ctx) -> None:
    # Unsigned: any anonymous caller can send it; the claims are refused while decoding.
    payload = json.dumps(ctx.claims(sub="\ud800"), ensure_ascii=True).encode()
    before = snapshot()
    response = post(api_client, sign_jws(ctx.header(alg="none"), payload, None))
    assert_refused(response, "malformed_token", before)


def test_lone_surrogate_in_a_request_field_is_refused_not_500(api_client, ctx: Ctx) -> None:
    body = json.dumps(exchange_body(ctx.mint(), scope="\ud800"), ensure_ascii=True).encode()
    before = snapshot()
    response = api_client.generic("POST", "/api/oauth/token", body, "application/json")
    assert_refused(response, "malformed_body", before)


ON_POSTGRESQL = "postgresql" in django_settings.DATABASES["default"]["ENGINE"]


@pytest.mark.parametrize(
    ("claim", "signed", "reason"),
    [("sub", False, "alg_not_allowed"), ("iss", True, "unknown_issuer")],
    ids=["sub-of-an-unsigned-token", "iss-of-a-signed-token"],
)
def test_nul_in_a_claim_is_recorded_not_500(
    api_client, ctx: Ctx, claim: str, signed: bool, reason: str
) -> None:
    claims = ctx.claims(**{claim: "https://e.example/a\x00b"})
    if signed:
        token = ctx.sign(ctx.header(), claims)
    else:
        token = sign_jws(ctx.header(alg="none"), claims, None)
    before = snapshot()
    assert_refused(post(api_client, token), "malformed_token", before)


def test_lone_surrogate_in_the_header_is_malformed(api_client, ctx: Ctx) -> None:
    before = snapshot()
    body = json.dumps(exchange_body("\ud800" + ctx.mint()), ensure_ascii=True).encode()
    response = api_client.generic("POST", "/api/oauth/token", body, "application/json")
    assert_refused(response, "malformed_body", before)


# --- every reason code in the verification code has a case -------------------------------------

EXTRA_CASES = {
    "test_unknown_kid_refreshes_once_per_minute": 3,
    "test_a_key_rotated_in_is_found_by_the_on_demand_refresh": 1,
    "test_a_removed_key_stops_verifying_after_the_next_refresh": 2,
    "test_jwt_decode_is_called_with_exactly_these_options": 1,
    "test_backstop_every_default_algorithm_verifies_and_detects_tampering": 2
    * len(BACKSTOP_ALGORITHMS),
    "test_lone_surrogate_in_the_signature_is_malformed_not_500": 1,
    "test_lone_surrogate_in_the_header_is_malformed": 1,
    "test_lone_surrogate_in_a_claim_is_recorded_not_500": 1,
    "test_lone_surrogate_in_a_request_field_is_refused_not_500": 1,
    "test_nul_in_a_claim_is_recorded_not_500": 2,
}


def reason_codes_in_source() -> set[str]:
    """Every literal reason code the verification code can raise (plus its f-string ones)."""
    codes: set[str] = set()
    for path in ("exchange/verification.py", "issuers/keys.py"):
        source = (ROOT / path).read_text()
        codes |= set(re.findall(r'(?:InvalidRequest|KeyLookupError)\(\s*"([a-z0-9_]+)"', source))
    # _numeric raises f"missing_{name}" / f"bad_{name}": exp and iat are required, nbf is not.
    codes |= {"missing_exp", "missing_iat", "bad_exp", "bad_iat", "bad_nbf"}
    return codes


def test_every_reason_code_has_a_refusal_case() -> None:
    covered = {case.reason for case in REFUSALS if not case.xfail}
    missing = reason_codes_in_source() - covered
    assert not missing, f"reason codes without a refusal case: {sorted(missing)}"


def test_count_the_cases() -> None:
    refusals, accepted = len(REFUSALS), len(ACCEPTED)
    total = refusals + accepted + sum(EXTRA_CASES.values())
    print(
        f"\nSPEC §4 verification: {total} cases "
        f"({refusals} refusals, {accepted} accepted boundaries, "
        f"{sum(EXTRA_CASES.values())} in dedicated tests)"
    )
    assert len({case.id for case in REFUSALS}) == refusals  # readable ids, no duplicates
    assert all(callable(globals().get(name)) for name in EXTRA_CASES)  # the tally is current
    assert refusals >= 90 and accepted >= 10
