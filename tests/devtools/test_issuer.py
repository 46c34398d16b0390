"""The local OIDC issuer used by `make run` and every test that needs an issuer."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from io import StringIO
from pathlib import Path

import jwt
import pytest
from django.core.management import call_command
from django.test import override_settings

from devtools.issuer import DevIssuer, SigningKey, sign_jws


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict, dict]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read() or b"{}")


def verify(token: str, issuer: DevIssuer, audience: str) -> dict:
    """Verify a token the way a relying party would: discovery → JWKS → signature."""
    _, _, discovery = get(f"{issuer.url}/.well-known/openid-configuration")
    _, _, jwks = get(discovery["jwks_uri"])
    kid = jwt.get_unverified_header(token)["kid"]
    jwk = next(k for k in jwks["keys"] if k["kid"] == kid)
    key = jwt.PyJWK(jwk)
    return jwt.decode(
        token, key=key, algorithms=[jwk["alg"]], audience=audience, issuer=discovery["issuer"]
    )


def test_discovery_and_jwks_are_served(local_issuer: DevIssuer) -> None:
    status, _, discovery = get(f"{local_issuer.url}/.well-known/openid-configuration")
    assert status == 200
    assert discovery["issuer"] == local_issuer.url
    assert discovery["jwks_uri"] == f"{local_issuer.url}/.well-known/jwks"
    status, headers, jwks = get(discovery["jwks_uri"])
    assert status == 200
    assert "max-age=300" in headers["Cache-Control"]
    assert [k["kid"] for k in jwks["keys"]] == ["test-key-1"]
    assert "d" not in jwks["keys"][0]  # public material only


def test_minted_tokens_verify_against_the_published_keys(local_issuer: DevIssuer) -> None:
    token = local_issuer.mint({"sub": "repo:acme/infra:environment:prod"}, audience="urn:x")
    claims = verify(token, local_issuer, "urn:x")
    assert claims["sub"] == "repo:acme/infra:environment:prod"
    assert claims["repository_owner"] == "acme"
    assert claims["exp"] - claims["iat"] == 300


@pytest.mark.parametrize("alg", ["ES256", "ES384", "PS256", "EdDSA", "RS512"])
def test_other_key_types(local_issuer: DevIssuer, alg: str) -> None:
    key = local_issuer.add_key(alg)
    token = local_issuer.mint(key=key, audience="aud")
    assert jwt.get_unverified_header(token)["alg"] == alg
    assert verify(token, local_issuer, "aud")["iss"] == local_issuer.url


def test_rotation_replaces_the_published_key(local_issuer: DevIssuer) -> None:
    old = local_issuer.current_key.kid
    new = local_issuer.rotate().kid
    _, _, jwks = get(f"{local_issuer.url}/.well-known/jwks")
    assert [k["kid"] for k in jwks["keys"]] == [new]
    assert new != old


def test_mint_can_break_tokens_on_purpose(local_issuer: DevIssuer) -> None:
    token = local_issuer.mint(headers={"alg": "none", "kid": None}, drop=("exp",))
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "none" and "kid" not in header
    assert "exp" not in jwt.decode(token, options={"verify_signature": False})
    unsigned = sign_jws({"alg": "none"}, {"sub": "x"}, None)
    assert unsigned.endswith(".")


def test_github_style_token_endpoint(local_issuer: DevIssuer) -> None:
    url = f"{local_issuer.url}/token?audience=urn:pulumi:org:acme"
    status, _, _ = get(url)
    assert status == 401
    status, _, _ = get(url, {"Authorization": "Bearer wrong"})
    assert status == 401
    status, _, body = get(url, {"Authorization": f"Bearer {local_issuer.request_token}"})
    assert status == 200
    assert (
        verify(body["value"], local_issuer, "urn:pulumi:org:acme")["aud"] == "urn:pulumi:org:acme"
    )


def test_request_log_records_every_request(local_issuer: DevIssuer) -> None:
    get(f"{local_issuer.url}/.well-known/jwks", {"X-Probe": "1"})
    get(f"{local_issuer.url}/nothing")
    paths = [r.path for r in local_issuer.requests]
    assert paths == ["/.well-known/jwks", "/nothing"]
    assert local_issuer.requests_to("/.well-known/jwks")[0].headers["x-probe"] == "1"
    local_issuer.clear_log()
    assert local_issuer.requests == []


def test_canned_responses_replace_documents(local_issuer: DevIssuer) -> None:
    from devtools.issuer import CannedResponse

    local_issuer.canned["/.well-known/jwks"] = CannedResponse(status=500, body=b'{"x":1}')
    status, _, body = get(f"{local_issuer.url}/.well-known/jwks")
    assert status == 500 and body == {"x": 1}


def test_keys_round_trip_through_private_jwk() -> None:
    key = SigningKey.generate("ES256")
    again = SigningKey.from_private_jwk(key.private_jwk())
    assert again.public_jwk() == key.public_jwk()


def test_mint_command_signs_with_the_persisted_key(tmp_path: Path) -> None:
    with override_settings(VAR_DIR=tmp_path):
        out = StringIO()
        call_command(
            "devissuer",
            "mint",
            "--sub",
            "repo:acme/app:ref:refs/heads/main",
            "--aud",
            "urn:pulumi:org:acme",
            "--claim",
            "run_attempt=2",
            "--claim",
            "ref_protected=true",
            "--issuer",
            "http://127.0.0.1:9999",
            stdout=out,
        )
        token = out.getvalue().strip()
        keys = json.loads((tmp_path / "devissuer" / "keys.json").read_text())["keys"]
        assert (tmp_path / "devissuer" / "keys.json").stat().st_mode & 0o077 == 0
    public = SigningKey.from_private_jwk(keys[0]).public_jwk()
    claims = jwt.decode(
        token, key=jwt.PyJWK(public), algorithms=["RS256"], audience="urn:pulumi:org:acme"
    )
    assert claims["iss"] == "http://127.0.0.1:9999"
    assert claims["sub"] == "repo:acme/app:ref:refs/heads/main"
    assert claims["run_attempt"] == 2 and claims["ref_protected"] is True
