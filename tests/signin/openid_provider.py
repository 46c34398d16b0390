"""A real OpenID Provider (node's `oidc-provider`, tests/signin/op/) on 127.0.0.1 for sign-in.

`npm ci` in tests/signin/op installs it (.ci/run does). Without node or the installed package the
tests skip with the reason, except under CI, where that is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from signin.models import IdentityProvider
from signin.services import provider_set_secret
from trustportal.models import Organization

OP_DIR = Path(__file__).resolve().parent / "op"
CLIENT_SECRET = "client-secret-for-tests-0123456789abcdef"
OTHER_SECRET = "other-client-secret-for-tests-0123456789"


def _require_provider() -> None:
    if shutil.which("node") and (OP_DIR / "node_modules" / "oidc-provider").is_dir():
        return
    reason = "sign-in tests need node and `npm ci` in tests/signin/op"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI must provide them")
    pytest.skip(reason)


@dataclass
class OpenIDProvider:
    """One running provider: its issuer URL and the people it knows (claims per login)."""

    issuer: str
    accounts_file: Path
    process: subprocess.Popen[str]
    people: dict[str, dict[str, Any]] = field(default_factory=dict)

    def set_person(self, login: str, **claims: Any) -> None:
        """Create or change a person (e.g. their groups); read by the provider at sign-in."""
        self.people[login] = claims
        self.accounts_file.write_text(json.dumps(self.people))


@pytest.fixture(scope="session")
def provider_jwk() -> dict[str, Any]:
    """One RSA signing key, shared by every provider started (so only `iss` tells them apart)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(key))
    jwk.pop("key_ops", None)
    return {**jwk, "kid": "op-key-1", "alg": "RS256", "use": "sig"}


@pytest.fixture
def start_provider(
    tmp_path: Path, provider_jwk: dict[str, Any]
) -> Iterator[Callable[..., OpenIDProvider]]:
    _require_provider()
    started: list[OpenIDProvider] = []

    def start(redirect_uris: list[str]) -> OpenIDProvider:
        index = len(started)
        accounts = tmp_path / f"accounts-{index}.json"
        accounts.write_text("{}")
        clients = [
            {"client_id": "portal", "client_secret": CLIENT_SECRET, "redirect_uris": redirect_uris},
            {"client_id": "other", "client_secret": OTHER_SECRET, "redirect_uris": redirect_uris},
        ]
        config = tmp_path / f"op-{index}.json"
        config.write_text(
            json.dumps(
                {"clients": clients, "jwks": {"keys": [provider_jwk]}, "accounts": str(accounts)}
            )
        )
        process = subprocess.Popen(
            ["node", str(OP_DIR / "provider.mjs"), str(config)],
            cwd=OP_DIR,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        if not line.startswith("READY "):
            process.kill()
            pytest.fail(f"the OpenID Provider did not start: {line!r}")
        provider = OpenIDProvider(issuer=line.split()[1], accounts_file=accounts, process=process)
        started.append(provider)
        return provider

    yield start
    for provider in started:
        provider.process.terminate()
        try:
            provider.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            provider.process.kill()


def make_provider(
    op: OpenIDProvider,
    *,
    organization: Organization | None,
    client_id: str = "portal",
    secret: str = CLIENT_SECRET,
    name: str = "Test IdP",
) -> IdentityProvider:
    provider = IdentityProvider(
        organization=organization,
        name=name,
        issuer=op.issuer,
        client_id=client_id,
        scopes="openid email profile groups",
    )
    provider_set_secret(provider, secret)
    provider.save()
    return provider


def authorize(op: OpenIDProvider, authorization_url: str, login: str) -> dict[str, str]:
    """Go through the provider's sign-in form as a browser would, without following the final
    redirect back to the portal: the callback's query (code, state, iss)."""
    import requests

    session = requests.Session()
    url = authorization_url
    for _ in range(10):
        answer = session.get(url, allow_redirects=False, timeout=10)
        if answer.status_code == 200 and "/interaction/" in url:
            answer = session.post(
                url,
                data={"prompt": "login", "login": login, "password": "any"},
                allow_redirects=False,
                timeout=10,
            )
        assert answer.status_code in (302, 303), (answer.status_code, answer.text[:300])
        url = requests.compat.urljoin(url, answer.headers["Location"])
        if url.startswith("http://testserver/"):
            from urllib.parse import parse_qsl, urlsplit

            return dict(parse_qsl(urlsplit(url).query))
    raise AssertionError("the provider never sent the browser back")


def exchange_code(
    op: OpenIDProvider, *, code: str, verifier: str, client_id: str, secret: str
) -> dict[str, Any]:
    """The provider's token response, asked for directly (to hold a real token of another kind)."""
    import requests

    answer = requests.post(
        f"{op.issuer}/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": verifier,
            "redirect_uri": "http://testserver/signin/oidc/callback/",
        },
        auth=(client_id, secret),
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return dict(answer.json())
