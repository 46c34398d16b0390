"""A real local OpenID Connect issuer for development and tests.

Serves discovery and JWKS over HTTP (or HTTPS) on a local port, a GitHub-Actions-style
`ACTIONS_ID_TOKEN_REQUEST_URL` endpoint, and mints ID tokens with any claims, headers, key and
algorithm — including deliberately broken ones for the refusal tests. Every request it receives
is logged, so a test can prove that something was (or was never) fetched.

Not for production: keys live in a plain file under var/ and anyone who can reach the
token endpoint with the request token gets a signed token.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import ssl
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm, RSAPSSAlgorithm

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

_ALGORITHMS: dict[str, Any] = {
    "RS256": RSAAlgorithm(RSAAlgorithm.SHA256),
    "RS384": RSAAlgorithm(RSAAlgorithm.SHA384),
    "RS512": RSAAlgorithm(RSAAlgorithm.SHA512),
    "PS256": RSAPSSAlgorithm(RSAPSSAlgorithm.SHA256),
    "PS384": RSAPSSAlgorithm(RSAPSSAlgorithm.SHA384),
    "PS512": RSAPSSAlgorithm(RSAPSSAlgorithm.SHA512),
    "ES256": ECAlgorithm(ECAlgorithm.SHA256),
    "ES384": ECAlgorithm(ECAlgorithm.SHA384),
    "ES512": ECAlgorithm(ECAlgorithm.SHA512),
    "EdDSA": OKPAlgorithm(),
}

GITHUB_LIKE_CLAIMS: dict[str, Any] = {
    "sub": "repo:acme/infra:ref:refs/heads/main",
    "ref": "refs/heads/main",
    "ref_type": "branch",
    "repository": "acme/infra",
    "repository_id": "704117",
    "repository_owner": "acme",
    "repository_owner_id": "88310",
    "repository_visibility": "private",
    "actor": "octocat",
    "workflow": "deploy",
    "event_name": "push",
    "runner_environment": "self-hosted",
}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def generate_private_key(alg: str, *, rsa_bits: int = 2048) -> PrivateKey:
    """A fresh private key suited to the JWS algorithm."""
    if alg.startswith(("RS", "PS")):
        return rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "ES384":
        return ec.generate_private_key(ec.SECP384R1())
    if alg == "ES512":
        return ec.generate_private_key(ec.SECP521R1())
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unsupported algorithm {alg}")


@dataclass
class SigningKey:
    kid: str
    alg: str
    private_key: PrivateKey

    def public_jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = json.loads(
            _ALGORITHMS[self.alg].to_jwk(self.private_key.public_key())
        )
        jwk.update({"kid": self.kid, "alg": self.alg, "use": "sig"})
        return jwk

    def private_jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = json.loads(_ALGORITHMS[self.alg].to_jwk(self.private_key))
        jwk.update({"kid": self.kid, "alg": self.alg})
        return jwk

    @classmethod
    def from_private_jwk(cls, jwk: Mapping[str, Any]) -> SigningKey:
        alg = str(jwk["alg"])
        key = _ALGORITHMS[alg].from_jwk(json.dumps(dict(jwk)))
        return cls(kid=str(jwk["kid"]), alg=alg, private_key=key)

    @classmethod
    def generate(
        cls, alg: str = "RS256", *, kid: str | None = None, rsa_bits: int = 2048
    ) -> SigningKey:
        return cls(
            kid=kid or f"dev-{secrets.token_hex(6)}",
            alg=alg,
            private_key=generate_private_key(alg, rsa_bits=rsa_bits),
        )


def sign_jws(
    header: Mapping[str, Any],
    payload: Mapping[str, Any] | bytes,
    key: SigningKey | None,
    *,
    alg: str | None = None,
) -> str:
    """Compact JWS over exactly the given header and payload (no defaults added).

    `alg` chooses the signing algorithm independently of the header's claim, so tests can sign
    tokens whose header lies. With `key=None` the signature segment is empty.
    """
    header_segment = b64url(json.dumps(dict(header), separators=(",", ":")).encode())
    body = (
        payload
        if isinstance(payload, bytes)
        else json.dumps(dict(payload), separators=(",", ":")).encode()
    )
    signing_input = f"{header_segment}.{b64url(body)}".encode("ascii")
    if key is None:
        return signing_input.decode() + "."
    algorithm = _ALGORITHMS[alg or key.alg]
    signature = algorithm.sign(signing_input, key.private_key)
    return signing_input.decode() + "." + b64url(signature)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    at: float


@dataclass
class CannedResponse:
    """What to answer on a path instead of the normal document (for hostile-issuer tests)."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})
    delay: float = 0.0


class DevIssuer:
    """A local OIDC issuer: keys, discovery, JWKS, token minting and a request log."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        keys: list[SigningKey] | None = None,
        default_claims: Mapping[str, Any] | None = None,
        request_token: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        public_host: str | None = None,
        listen: bool = True,
        url: str | None = None,
    ) -> None:
        self.keys: list[SigningKey] = keys if keys is not None else [SigningKey.generate("RS256")]
        self.default_claims = dict(default_claims or GITHUB_LIKE_CLAIMS)
        self.request_token = request_token or secrets.token_urlsafe(24)
        self.requests: list[RecordedRequest] = []
        self.canned: dict[str, CannedResponse] = {}
        self.jwks_max_age = 300
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._server: ThreadingHTTPServer | None = None
        self._ssl_context = ssl_context
        if not listen:
            # A minter only: signs tokens for an issuer served elsewhere (`devissuer mint`).
            self.url = url or f"http://{host}:{port}"
            return
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        if ssl_context is not None:
            self._server.socket = ssl_context.wrap_socket(self._server.socket, server_side=True)
        scheme = "https" if ssl_context is not None else "http"
        self.url = url or f"{scheme}://{public_host or host}:{self._server.server_address[1]}"

    # --- serving -----------------------------------------------------------------------------
    def serve_certificate(self, certificate: Path, key: Path) -> None:
        """Serve another TLS certificate from the next connection on (a certificate renewal)."""
        if self._ssl_context is None:
            raise RuntimeError("this issuer serves plain HTTP; there is no certificate to renew")
        self._ssl_context.load_cert_chain(certificate, key)

    def _listening(self) -> ThreadingHTTPServer:
        if self._server is None:
            raise RuntimeError("this DevIssuer was created with listen=False")
        return self._server

    @property
    def port(self) -> int:
        return int(self._listening().server_address[1])

    def start(self) -> DevIssuer:
        # A short poll interval: stop() waits up to one interval (tests start and stop many).
        self._thread = threading.Thread(
            target=self._listening().serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._listening().serve_forever()

    def stop(self) -> None:
        server = self._listening()
        server.shutdown()
        server.server_close()

    def __enter__(self) -> DevIssuer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- documents ---------------------------------------------------------------------------
    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.url,
            "jwks_uri": f"{self.url}/.well-known/jwks",
            "subject_types_supported": ["public", "pairwise"],
            "response_types_supported": ["id_token"],
            "id_token_signing_alg_values_supported": sorted({k.alg for k in self.keys}),
            "claims_supported": sorted(
                {"sub", "aud", "exp", "iat", "iss", "jti", "nbf", *self.default_claims}
            ),
            "scopes_supported": ["openid"],
        }

    def jwks(self) -> dict[str, Any]:
        return {"keys": [key.public_jwk() for key in self.keys]}

    # --- keys --------------------------------------------------------------------------------
    @property
    def current_key(self) -> SigningKey:
        return self.keys[-1]

    def add_key(
        self, alg: str = "RS256", *, kid: str | None = None, rsa_bits: int = 2048
    ) -> SigningKey:
        key = SigningKey.generate(alg, kid=kid, rsa_bits=rsa_bits)
        with self._lock:
            self.keys.append(key)
        return key

    def remove_key(self, kid: str) -> None:
        with self._lock:
            self.keys = [k for k in self.keys if k.kid != kid]

    def rotate(self, alg: str = "RS256", *, keep_old: bool = False) -> SigningKey:
        """Make a new key current; drop the old ones unless `keep_old`."""
        old = list(self.keys)
        key = self.add_key(alg)
        if not keep_old:
            for previous in old:
                self.remove_key(previous.kid)
        return key

    # --- minting -----------------------------------------------------------------------------
    def claims(
        self, *, audience: str | None = None, ttl: int = 300, now: float | None = None, **extra: Any
    ) -> dict[str, Any]:
        issued = int(now if now is not None else time.time())
        claims: dict[str, Any] = {
            "iss": self.url,
            **self.default_claims,
            "jti": str(uuid.uuid4()),
            "iat": issued,
            "nbf": issued - 5,
            "exp": issued + ttl,
        }
        if audience is not None:
            claims["aud"] = audience
        claims.update(extra)
        return claims

    def mint(
        self,
        claims: Mapping[str, Any] | None = None,
        *,
        audience: str | None = None,
        headers: Mapping[str, Any] | None = None,
        key: SigningKey | None = None,
        alg: str | None = None,
        ttl: int = 300,
        now: float | None = None,
        drop: tuple[str, ...] = (),
    ) -> str:
        """A signed ID token: default claims overlaid with `claims`; header overlaid with `headers`.

        `drop` removes claims (e.g. `("exp",)`); a header value of None removes that header field.
        """
        signing_key = key or self.current_key
        payload = self.claims(audience=audience, ttl=ttl, now=now)
        payload.update(claims or {})
        for name in drop:
            payload.pop(name, None)
        header: dict[str, Any] = {
            "alg": alg or signing_key.alg,
            "typ": "JWT",
            "kid": signing_key.kid,
        }
        header.update(headers or {})
        header = {k: v for k, v in header.items() if v is not None}
        return sign_jws(header, payload, signing_key, alg=alg or signing_key.alg)

    # --- request log -------------------------------------------------------------------------
    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def clear_log(self) -> None:
        with self._lock:
            self.requests.clear()


def _handler_for(issuer: DevIssuer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "trustportal-devissuer"
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Silent: the request log is the record."""

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            issuer.record(
                RecordedRequest(
                    method="GET",
                    path=parts.path,
                    query=parse_qs(parts.query),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    at=time.time(),
                )
            )
            canned = issuer.canned.get(parts.path)
            if canned is not None:
                if canned.delay:
                    time.sleep(canned.delay)
                self._send(canned.status, canned.body, canned.headers)
                return
            if parts.path == "/.well-known/openid-configuration":
                self._send_json(issuer.discovery())
            elif parts.path in ("/.well-known/jwks", "/.well-known/jwks.json"):
                body = json.dumps(issuer.jwks()).encode()
                # A digest of the whole set: two sets of same-size keys must not share an ETag.
                etag = '"' + hashlib.sha256(body).hexdigest()[:24] + '"'
                if self.headers.get("If-None-Match") == etag:
                    self._send(304, b"", {"ETag": etag})
                    return
                self._send(
                    200,
                    body,
                    {
                        "Content-Type": "application/json",
                        "Cache-Control": f"public, max-age={issuer.jwks_max_age}",
                        "ETag": etag,
                    },
                )
            elif parts.path == "/token":
                self._token(parse_qs(parts.query))
            else:
                self._send_json({"error": "not found"}, status=404)

        def _token(self, query: dict[str, list[str]]) -> None:
            supplied = self.headers.get("Authorization", "")
            expected = f"Bearer {issuer.request_token}"
            if not secrets.compare_digest(supplied.encode(), expected.encode()):
                self._send_json({"message": "Bad credentials"}, status=401)
                return
            audiences = query.get("audience")
            audience = audiences[0] if audiences else None
            self._send_json({"count": 1, "value": issuer.mint(audience=audience)})

        def _send_json(self, document: Any, status: int = 200) -> None:
            self._send(status, json.dumps(document).encode(), {"Content-Type": "application/json"})

        def _send(self, status: int, body: bytes, headers: Mapping[str, str]) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

    return Handler


def load_keys(path: Path) -> list[SigningKey]:
    """The persisted development keys, created (RS256) on first use."""
    if path.exists():
        data = json.loads(path.read_text())
        return [SigningKey.from_private_jwk(jwk) for jwk in data["keys"]]
    keys = [SigningKey.generate("RS256")]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"keys": [k.private_jwk() for k in keys]}))
    path.chmod(0o600)
    return keys


def load_request_token(path: Path) -> str:
    """The persisted bearer token the GitHub-style endpoint expects, created on first use."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(24)
    path.write_text(token)
    path.chmod(0o600)
    return token
