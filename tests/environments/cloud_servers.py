"""Local stand-ins for the services that accept the portal's ID token, over real HTTP.

Each fake checks a request the way its real service documents it (content type, grant type,
audience, assertion type, required fields), verifies the ID token's RS256 signature with keys
fetched over HTTP from the portal's JWKS, checks `iss`, `aud`, `exp` and `sub` the way the
service's trust configuration would, and answers in the service's own success and error shapes.
AWS STS itself runs for real under moto (test_provider_aws.py); `FakeSts` covers what moto does
not check: the token, the trust policy and STS's XML errors.

`Portal` plays the portal: it serves the JWKS under the issuer URL, and its minter builds
claims and signs them with the real `environments.signing` code, so the subjects and claims the
fakes check are the ones the portal really mints. Its providers reach the fakes as an operator
would let them: through `TRUSTPORTAL_PROVIDER_ENDPOINTS` listing each fake's URL (`LISTENING`).
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol, Self
from urllib.parse import parse_qs, unquote
from xml.sax.saxutils import escape

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from devtools.issuer import SigningKey
from environments.providers.base import IdTokenRequest, OpenContext
from environments.providers.endpoints import ProviderEndpoints
from environments.signing import ActiveKey, id_token_claims, id_token_sign
from kernel.config import load_config
from outbound.policy import OutboundPolicy
from tests.conftest import LOOPBACK

LOCAL = OutboundPolicy(allow_http=True, allowed_networks=LOOPBACK)
# Every local stand-in started in this process (and the closed ports of 'server down' tests):
# the allow-list a test portal's operator would write.
LISTENING: list[str] = []


def listen(url: str) -> str:
    """Record a local service's URL for the test portal's provider allow-list."""
    if url not in LISTENING:
        LISTENING.append(url)
    return url


def provider_endpoints(setting: str | None = None) -> ProviderEndpoints:
    """The allow-list read from `TRUSTPORTAL_PROVIDER_ENDPOINTS` (default: every local fake)."""
    value = ",".join(LISTENING) if setting is None else setting
    config = load_config({"TRUSTPORTAL_ENV": "test", "TRUSTPORTAL_PROVIDER_ENDPOINTS": value})
    return ProviderEndpoints.from_config(config)


# ------------------------------------------------------------------------------ the portal


def subject(organization: str = "acme", environment: str = "app/dev") -> str:
    """The default `sub` the portal mints (Pulumi ESC's format)."""
    return f"pulumi:environments:org:{organization}:env:{environment}"


class Trusted(Protocol):
    """The issuer a fake service trusts: `iss` and where its JWKS is served."""

    @property
    def url(self) -> str: ...

    @property
    def jwks_url(self) -> str: ...


@dataclass(frozen=True)
class TrustedIssuer:
    """An issuer served elsewhere (the real portal under a live server)."""

    url: str
    jwks_url: str


class Rejected(Exception):
    """A token a fake service refuses; the message is what the service would say."""


def verify_id_token(
    token: str, *, jwks_url: str, issuer: str, audiences: Sequence[str]
) -> dict[str, Any]:
    """Verify as relying parties do: RS256 signature by a JWKS key, iss, aud, exp, iat, sub."""
    try:
        key = jwt.PyJWKClient(jwks_url, cache_keys=False).get_signing_key_from_jwt(token)
        claims: dict[str, Any] = jwt.decode(
            token,
            key.key,
            algorithms=["RS256"],
            audience=list(audiences),
            issuer=issuer,
            options={"require": ["iss", "aud", "exp", "iat", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise Rejected("token is expired (exp)") from None
    except jwt.InvalidAudienceError:
        raise Rejected("invalid audience (aud) claim") from None
    except jwt.InvalidIssuerError:
        raise Rejected("invalid issuer (iss) claim") from None
    except (jwt.PyJWTError, jwt.PyJWKClientError) as exc:
        raise Rejected(f"failed to verify id token signature ({type(exc).__name__})") from None
    return claims


# ------------------------------------------------------------------------------ the servers


@dataclass(frozen=True)
class Request:
    """One request a fake received (header names lower-case)."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    def form(self) -> dict[str, str]:
        """The form fields; a repeated field is a client bug, so it raises."""
        fields = parse_qs(self.body.decode("ascii"), keep_blank_values=True, strict_parsing=True)
        if any(len(values) > 1 for values in fields.values()):
            raise ValueError("repeated form field")
        return {name: values[0] for name, values in fields.items()}

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Reply:
    """What a fake answers."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def json(cls, status: int, document: Any) -> Reply:
        return cls(status, json.dumps(document).encode())


class FakeService:
    """A threaded HTTP server on 127.0.0.1 that records requests and answers with `handle`.

    `canned[path]` replaces the answer on a path (oversized, non-JSON, HTML error pages).
    """

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.canned: dict[str, Reply] = {}
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                """Silent: `requests` is the record."""

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = Request(
                    method=self.command,
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=self.rfile.read(length),
                )
                service.requests.append(request)
                path = unquote(self.path.split("?")[0])
                reply = service.canned.get(path) or service.handle(request, path)
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                for name, value in reply.headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(reply.body)

            do_GET = _serve
            do_POST = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = listen(f"http://127.0.0.1:{self._server.server_address[1]}")
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def handle(self, request: Request, path: str) -> Reply:
        raise NotImplementedError


def closed_port_url() -> str:
    """An http URL on 127.0.0.1 where nothing listens (for 'server down' tests)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = server.server_address[1]
    server.server_close()
    return listen(f"http://127.0.0.1:{port}")


class Portal(FakeService):
    """The portal's issuer side for tests: JWKS over HTTP, real claims, a recording minter."""

    def __init__(self, key: SigningKey) -> None:
        if key.alg != "RS256":
            raise ValueError("the portal signs with RS256")
        super().__init__()
        self.key = key
        self.minted: list[IdTokenRequest] = []
        self.tokens: list[str] = []
        self.clock_offset = timedelta()

    @property
    def jwks_url(self) -> str:
        """Where relying parties fetch the keys; `url` is the issuer (`iss`)."""
        return f"{self.url}/.well-known/jwks"

    def handle(self, request: Request, path: str) -> Reply:
        if path == "/.well-known/jwks":
            return Reply.json(200, {"keys": [self.key.public_jwk()]})
        if path == "/.well-known/openid-configuration":
            return Reply.json(200, {"issuer": self.url, "jwks_uri": self.jwks_url})
        return Reply.json(404, {"error": "not found"})

    def now(self) -> datetime:
        return datetime.now(UTC) + self.clock_offset

    def context(
        self,
        *,
        endpoints: str | None = None,
        organization: str = "acme",
        project: str = "app",
        environment: str = "dev",
        actor: str = "alice",
    ) -> OpenContext:
        """An OpenContext whose minter and poster are the real ones (with a test key).

        `endpoints` is the TRUSTPORTAL_PROVIDER_ENDPOINTS value (default: every local fake).
        """
        holder: list[OpenContext] = []
        allowed = provider_endpoints(endpoints)
        private_key = self.key.private_key
        assert isinstance(private_key, rsa.RSAPrivateKey)

        def mint(request: IdTokenRequest) -> str:
            self.minted.append(request)
            claims = id_token_claims(
                request,
                holder[0],
                issuer=self.url,
                now=self.now(),
                jti=secrets.token_hex(16),
            )
            token = id_token_sign(claims, ActiveKey(kid=self.key.kid, private_key=private_key))
            self.tokens.append(token)
            return token

        context = OpenContext(
            organization=organization,
            project=project,
            environment=environment,
            root_project=project,
            root_environment=environment,
            actor=actor,
            exchange_event_id=None,
            id_token=mint,
            post=allowed.poster(),
            now=lambda: datetime.now(UTC),
            endpoints=allowed,
        )
        holder.append(context)
        return context


def _random_token(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


# ------------------------------------------------------------------------------------ Vault


@dataclass(frozen=True)
class VaultRole:
    """A JWT auth role: `bound_audiences`, `bound_subject`, `user_claim`, policies, TTL."""

    bound_audiences: tuple[str, ...]
    bound_subject: str
    policies: tuple[str, ...] = ("reader",)
    ttl: int = 3600
    user_claim: str = "sub"


class FakeVault(FakeService):
    """Vault's JWT auth method (`auth/<mount>/login`) and `auth/token/lookup-self`."""

    def __init__(
        self,
        portal: Trusted,
        roles: Mapping[str, VaultRole],
        *,
        mount: str = "jwt",
        namespace: str | None = None,
    ) -> None:
        super().__init__()
        self.portal = portal
        self.roles = dict(roles)
        self.mount = mount
        self.namespace = namespace
        self.issued: dict[str, dict[str, Any]] = {}

    @staticmethod
    def _errors(status: int, *messages: str) -> Reply:
        return Reply.json(status, {"errors": list(messages)})

    def handle(self, request: Request, path: str) -> Reply:
        namespace = request.headers.get("x-vault-namespace")
        route = path.removeprefix("/v1/")
        if self.namespace is not None and namespace != self.namespace:
            return self._errors(404, f'no handler for route "{route}". route entry not found.')
        if request.method == "GET" and path == "/v1/auth/token/lookup-self":
            issued = self.issued.get(request.headers.get("x-vault-token", ""))
            if issued is None:
                return self._errors(403, "permission denied")
            return Reply.json(200, {"data": issued})
        if request.method != "POST" or path != f"/v1/auth/{self.mount}/login":
            return self._errors(404, f'no handler for route "{route}". route entry not found.')
        if request.content_type != "application/json":
            return self._errors(400, "error parsing JSON")
        try:
            body = request.json()
        except ValueError:
            return self._errors(400, "error parsing JSON")
        if not isinstance(body, dict) or not body.get("role"):
            return self._errors(400, "missing role")
        if not isinstance(body.get("jwt"), str) or not body["jwt"]:
            return self._errors(400, "missing token")
        role = self.roles.get(body["role"])
        if role is None:
            return self._errors(400, f'role "{body["role"]}" could not be found')
        try:
            claims = verify_id_token(
                body["jwt"],
                jwks_url=self.portal.jwks_url,
                issuer=self.portal.url,
                audiences=role.bound_audiences,
            )
        except Rejected as exc:
            return self._errors(400, f"error validating token: {exc}")
        if claims["sub"] != role.bound_subject:
            return self._errors(
                400, "error validating claims: sub claim does not match bound subject"
            )
        token = _random_token("hvs.")
        self.issued[token] = {
            "display_name": f"{self.mount}-{claims[role.user_claim]}",
            "policies": ["default", *role.policies],
            "ttl": role.ttl,
            "meta": {"role": body["role"]},
        }
        return Reply.json(
            200,
            {
                "request_id": secrets.token_hex(8),
                "auth": {
                    "client_token": token,
                    "accessor": secrets.token_hex(12),
                    "policies": ["default", *role.policies],
                    "token_policies": ["default", *role.policies],
                    "lease_duration": role.ttl,
                    "renewable": True,
                    "metadata": {"role": body["role"]},
                },
            },
        )


# ----------------------------------------------------------------------------- Google Cloud

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"


class FakeGoogle(FakeService):
    """Google STS `v1/token` (token exchange) and IAM Credentials `generateAccessToken`.

    The pool provider trusts `issuer` with `allowed_audiences` and maps `google.subject` to
    `assertion.sub`; `service_accounts` maps an e-mail to the subjects granted
    `roles/iam.workloadIdentityUser` on it (`principal://…/subject/<sub>`).
    """

    def __init__(
        self,
        portal: Trusted,
        *,
        project: str,
        pool: str,
        provider: str,
        allowed_audiences: Sequence[str],
        service_accounts: Mapping[str, Sequence[str]],
    ) -> None:
        super().__init__()
        self.portal = portal
        self.audience = (
            f"//iam.googleapis.com/projects/{project}/locations/global"
            f"/workloadIdentityPools/{pool}/providers/{provider}"
        )
        self.allowed_audiences = tuple(allowed_audiences)
        self.service_accounts = {k: tuple(v) for k, v in service_accounts.items()}
        self.federated: dict[str, str] = {}  # federated token → google.subject
        self.access_tokens: dict[str, str] = {}  # service-account token → e-mail

    @staticmethod
    def _oauth_error(error: str, description: str, status: int = 400) -> Reply:
        return Reply.json(status, {"error": error, "error_description": description})

    @staticmethod
    def _api_error(status: int, state: str, message: str) -> Reply:
        return Reply.json(status, {"error": {"code": status, "message": message, "status": state}})

    def handle(self, request: Request, path: str) -> Reply:
        if request.method == "POST" and path == "/v1/token":
            return self._exchange(request)
        prefix, suffix = "/v1/projects/-/serviceAccounts/", ":generateAccessToken"
        if request.method == "POST" and path.startswith(prefix) and path.endswith(suffix):
            return self._generate(request, path[len(prefix) : -len(suffix)])
        return self._api_error(404, "NOT_FOUND", "Requested entity was not found.")

    def _exchange(self, request: Request) -> Reply:
        if request.content_type != "application/x-www-form-urlencoded":
            return self._oauth_error("invalid_request", "Unsupported content type.")
        try:
            form = request.form()
        except (ValueError, UnicodeDecodeError):
            return self._oauth_error("invalid_request", "Malformed request body.")
        expected = {
            "grant_type": TOKEN_EXCHANGE,
            "subject_token_type": JWT_TYPE,
            "requested_token_type": ACCESS_TOKEN_TYPE,
        }
        for name, value in expected.items():
            if form.get(name) != value:
                return self._oauth_error("invalid_request", f'Invalid value for "{name}".')
        if CLOUD_PLATFORM not in form.get("scope", "").split():
            return self._oauth_error("invalid_scope", "The scope is invalid.")
        if form.get("audience") != self.audience:
            return self._oauth_error(
                "invalid_target",
                'The target service indicated by the "audience" parameters is invalid.',
            )
        try:
            claims = verify_id_token(
                form.get("subject_token", ""),
                jwks_url=self.portal.jwks_url,
                issuer=self.portal.url,
                audiences=self.allowed_audiences,
            )
        except Rejected as exc:
            return self._oauth_error("invalid_grant", f"The ID Token was rejected: {exc}.")
        token = _random_token("ya29.fed.")
        self.federated[token] = claims["sub"]
        return Reply.json(
            200,
            {
                "access_token": token,
                "issued_token_type": ACCESS_TOKEN_TYPE,
                "token_type": "Bearer",
                "expires_in": 3599,
            },
        )

    def _generate(self, request: Request, email: str) -> Reply:
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        principal = self.federated.get(bearer)
        if principal is None:
            return self._api_error(
                401, "UNAUTHENTICATED", "Request had invalid authentication credentials."
            )
        if request.content_type != "application/json":
            return self._api_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        body = request.json()
        lifetime = str(body.get("lifetime", "3600s"))
        if not body.get("scope") or not lifetime.endswith("s") or not lifetime[:-1].isdigit():
            return self._api_error(
                400, "INVALID_ARGUMENT", "Invalid value at 'scope' or 'lifetime'."
            )
        if principal not in self.service_accounts.get(email, ()):
            return self._api_error(
                403,
                "PERMISSION_DENIED",
                "Permission 'iam.serviceAccounts.getAccessToken' denied on resource "
                "(or it may not exist).",
            )
        token = _random_token("ya29.sa.")
        self.access_tokens[token] = email
        expires = datetime.now(UTC) + timedelta(seconds=int(lifetime[:-1]))
        return Reply.json(
            200,
            {"accessToken": token, "expireTime": expires.strftime("%Y-%m-%dT%H:%M:%S.%fZ")},
        )


# --------------------------------------------------------------------------- Microsoft Entra

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass(frozen=True)
class FederatedCredential:
    """An app registration's federated identity credential: issuer, subject, audiences."""

    issuer: str
    subject: str
    audiences: tuple[str, ...]


class FakeEntra(FakeService):
    """Microsoft Entra ID's v2.0 token endpoint for the client-credentials grant with a
    federated client assertion (`AADSTS…` errors as the real one words them)."""

    def __init__(
        self, portal: Trusted, *, tenant: str, apps: Mapping[str, Sequence[FederatedCredential]]
    ) -> None:
        super().__init__()
        self.portal = portal
        self.tenant = tenant
        self.apps = {k: tuple(v) for k, v in apps.items()}
        self.issued: dict[str, str] = {}  # access token → client id

    @staticmethod
    def _error(error: str, description: str, status: int = 400) -> Reply:
        return Reply.json(
            status, {"error": error, "error_description": description, "error_codes": [0]}
        )

    def handle(self, request: Request, path: str) -> Reply:
        if request.method != "POST" or not path.endswith("/oauth2/v2.0/token"):
            return self._error("invalid_request", "AADSTS900561: The endpoint only accepts POST.")
        if path != f"/{self.tenant}/oauth2/v2.0/token":
            return self._error("invalid_request", "AADSTS90002: Tenant not found.")
        if request.content_type != "application/x-www-form-urlencoded":
            return self._error(
                "invalid_request",
                "AADSTS900144: The request body must contain "
                "the following parameter: 'grant_type'.",
            )
        form = request.form()
        if form.get("grant_type") != "client_credentials":
            return self._error("unsupported_grant_type", "AADSTS70003: unsupported grant type.")
        credentials = self.apps.get(form.get("client_id", ""))
        if credentials is None:
            return self._error(
                "unauthorized_client",
                f"AADSTS700016: Application with identifier '{form.get('client_id')}' was not "
                "found in the directory.",
            )
        if form.get("client_assertion_type") != JWT_BEARER:
            return self._error("invalid_request", "AADSTS50027: invalid client assertion type.")
        if not form.get("scope", "").endswith("/.default"):
            return self._error(
                "invalid_scope", "AADSTS1002012: The provided value for scope is not valid."
            )
        assertion = form.get("client_assertion", "")
        audiences = sorted({aud for c in credentials for aud in c.audiences})
        try:
            claims = verify_id_token(
                assertion,
                jwks_url=self.portal.jwks_url,
                issuer=self.portal.url,
                audiences=audiences,
            )
        except Rejected as exc:
            return self._error(
                "invalid_client",
                f"AADSTS700212: No matching federated identity record found for presented "
                f"assertion ({exc}).",
                status=401,
            )
        if not any(c.subject == claims["sub"] and c.issuer == claims["iss"] for c in credentials):
            return self._error(
                "invalid_client",
                "AADSTS700213: No matching federated identity record found for presented "
                f"assertion subject '{claims['sub']}'.",
                status=401,
            )
        token = _random_token("entra.")
        self.issued[token] = form["client_id"]
        return Reply.json(
            200,
            {
                "token_type": "Bearer",
                "expires_in": 3599,
                "ext_expires_in": 3599,
                "access_token": token,
            },
        )


# ----------------------------------------------------------------------------------- AWS STS

STS_NAMESPACE = "https://sts.amazonaws.com/doc/2011-06-15/"


class FakeSts(FakeService):
    """STS AssumeRoleWithWebIdentity with trust policies (`<issuer>:aud`, `<issuer>:sub`)."""

    def __init__(self, portal: Trusted, *, trust: Mapping[str, tuple[str, str]]) -> None:
        super().__init__()
        self.portal = portal
        self.trust = dict(trust)  # role ARN → (audience, subject)
        self.forms: list[dict[str, str]] = []

    @staticmethod
    def error(status: int, code: str, message: str) -> Reply:
        body = (
            f'<ErrorResponse xmlns="{STS_NAMESPACE}"><Error><Type>Sender</Type>'
            f"<Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
            f"<RequestId>{secrets.token_hex(8)}</RequestId></ErrorResponse>"
        )
        return Reply(status, body.encode(), "text/xml")

    def handle(self, request: Request, path: str) -> Reply:
        if request.method != "POST" or request.content_type != "application/x-www-form-urlencoded":
            return self.error(400, "InvalidAction", "Could not find operation")
        form = request.form()
        self.forms.append(form)
        if form.get("Action") != "AssumeRoleWithWebIdentity" or form.get("Version") != "2011-06-15":
            return self.error(400, "InvalidAction", "Could not find operation")
        for name in ("RoleArn", "RoleSessionName", "WebIdentityToken"):
            if not form.get(name):
                return self.error(400, "MissingParameter", f"The request must contain {name}")
        trust = self.trust.get(form["RoleArn"])
        if trust is None:
            return self.error(
                403, "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity"
            )
        audience, wanted_subject = trust
        try:
            claims = verify_id_token(
                form["WebIdentityToken"],
                jwks_url=self.portal.jwks_url,
                issuer=self.portal.url,
                audiences=[audience],
            )
        except Rejected as exc:
            return self.error(400, "InvalidIdentityToken", f"Incorrect token: {exc}")
        if claims["sub"] != wanted_subject:
            return self.error(
                403, "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity"
            )
        expires = datetime.now(UTC) + timedelta(seconds=int(form.get("DurationSeconds", "3600")))
        role_name = form["RoleArn"].rpartition("/")[2]
        account = form["RoleArn"].split(":")[4]
        body = (
            f'<AssumeRoleWithWebIdentityResponse xmlns="{STS_NAMESPACE}">'
            "<AssumeRoleWithWebIdentityResult><Credentials>"
            f"<AccessKeyId>ASIA{secrets.token_hex(8).upper()}</AccessKeyId>"
            f"<SecretAccessKey>{secrets.token_urlsafe(30)}</SecretAccessKey>"
            f"<SessionToken>{secrets.token_urlsafe(120)}</SessionToken>"
            f"<Expiration>{expires.strftime('%Y-%m-%dT%H:%M:%SZ')}</Expiration>"
            "</Credentials><AssumedRoleUser>"
            f"<Arn>arn:aws:sts::{account}:assumed-role/{role_name}/"
            f"{escape(form['RoleSessionName'])}</Arn>"
            "</AssumedRoleUser></AssumeRoleWithWebIdentityResult>"
            "</AssumeRoleWithWebIdentityResponse>"
        )
        return Reply(200, body.encode(), "text/xml")
