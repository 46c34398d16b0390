"""The portal trusting itself: an environment of `acme` mints an ID token with `fn::open::oidc`,
and `beta`, which registered the portal's own `/oidc` issuer, exchanges it for an access token.

Everything goes through real HTTP against the live server: the CI-style exchange for acme, the
ESC open and read, beta's issuer registration (discovery and JWKS fetched from the portal
itself through the outbound guard), and beta's exchange (keys looked up the same way).
"""

from __future__ import annotations

import dataclasses
import json
import urllib.error
import urllib.request
from datetime import timedelta
from typing import Any

import jwt
import pytest

from devtools.issuer import DevIssuer
from environments import signing
from issuers.services import Outbound
from policies.models import AuthPolicy
from policies.registration import issuer_register
from policies.services import policy_update
from tests.environments.conftest import exchange_over_http, make_environment, trust_local_issuer
from tests.tokens.conftest import GRANT, ID_TOKEN, REQUESTED
from tokens.models import Decision, ExchangeEvent
from trustportal.models import Organization

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

BETA_AUDIENCE = "urn:pulumi:org:beta"
SUBJECT = "pulumi:environments:pulumi.organization.login:acme:currentEnvironment.name:app/dev"
DEFINITION = f"""\
values:
  beta:
    fn::open::oidc:
      audience: {BETA_AUDIENCE}
      subjectAttributes: [currentEnvironment.name]
      duration: 5m
"""


def call(
    method: str, url: str, *, token: str | None = None, body: dict[str, Any] | None = None
) -> tuple[int, Any]:
    """One JSON request over HTTP; (status, decoded body)."""
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"token {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read() or b"null")


def open_and_read(base: str, token: str, project: str, name: str) -> str:
    """Open an acme environment over the ESC API and return the ID token it minted."""
    path = f"{base}/api/esc/environments/acme/{project}/{name}"
    status, opened = call("POST", f"{path}/open", token=token)
    assert status == 200, opened
    status, read = call("GET", f"{path}/open/{opened['id']}", token=token)
    assert status == 200, read
    value = read["properties"]["beta"]["value"]["token"]
    assert value["secret"] is True
    minted: str = value["value"]
    return minted


def exchange_at_beta(base: str, id_token: str) -> tuple[int, Any]:
    return call(
        "POST",
        f"{base}/api/oauth/token",
        body={
            "audience": BETA_AUDIENCE,
            "grant_type": GRANT,
            "subject_token_type": ID_TOKEN,
            "requested_token_type": REQUESTED + "organization",
            "subject_token": id_token,
        },
    )


def test_an_environment_id_token_is_exchanged_by_another_organization(
    live_server: Any,
    settings: Any,
    allow_local_issuers: None,
    local_issuer: DevIssuer,
    outbound: Outbound,
) -> None:
    base = live_server.url
    portal_issuer = f"{base}/oidc"
    settings.TRUSTPORTAL = dataclasses.replace(settings.TRUSTPORTAL, oidc_issuer_url=portal_issuer)
    signing.signing_keys_rotate(rotation_period=timedelta(days=30))

    acme = Organization.objects.create(login="acme", name="ACME")
    trust_local_issuer(acme, local_issuer, outbound)
    make_environment(acme, "app", "dev", text=DEFINITION)
    make_environment(acme, "app", "other", text=DEFINITION)
    acme_token = exchange_over_http(base, local_issuer)

    beta = Organization.objects.create(login="beta", name="Beta")
    portal = issuer_register(
        organization=beta, url=portal_issuer, name="trust-portal", max_expiration=3600,
        outbound=outbound,
    )
    assert portal.issuer == portal_issuer
    assert {key.kid for key in portal.keys.all()} == {
        key["kid"] for key in signing.jwks_document()["keys"]
    }
    policy_update(
        policy=AuthPolicy.objects.get(issuer=portal),
        definitions=[
            {
                "decision": "allow",
                "tokenType": "organization",
                "authorizedPermissions": ["standard"],
                "rules": {"sub": SUBJECT, "aud": BETA_AUDIENCE, "org": "acme"},
            }
        ],
    )

    id_token = open_and_read(base, acme_token, "app", "dev")
    assert jwt.decode(id_token, options={"verify_signature": False})["iss"] == portal_issuer

    status, granted = exchange_at_beta(base, id_token)
    assert status == 200, granted
    beta_token = granted["access_token"]
    status, listed = call("GET", f"{base}/api/esc/environments/beta", token=beta_token)
    assert status == 200 and listed["environments"] == []
    allowed = ExchangeEvent.objects.get(organization=beta, decision=Decision.ALLOW)
    assert (allowed.iss, allowed.sub) == (portal_issuer, SUBJECT)
    assert allowed.issuer_id == portal.pk

    # Another environment of acme mints a token with another subject: beta refuses it.
    other = open_and_read(base, acme_token, "app", "other")
    status, refused = exchange_at_beta(base, other)
    assert status == 400, refused
    assert "access_token" not in refused
    denied = ExchangeEvent.objects.get(organization=beta, decision=Decision.DENY)
    assert denied.sub.endswith(":currentEnvironment.name:app/other")

    # A token signed by anything but the portal's published keys is refused too.
    forged = jwt.encode(
        jwt.decode(id_token, options={"verify_signature": False}),
        local_issuer.current_key.private_key,
        algorithm="RS256",
        headers={"kid": jwt.get_unverified_header(id_token)["kid"]},
    )
    status, refused = exchange_at_beta(base, forged)
    assert status == 400 and refused["reason"] == "bad_signature", refused
