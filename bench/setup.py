"""The data the benchmark runs against (built in the benchmark's own fresh database)."""

from __future__ import annotations

import ipaddress
import uuid
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization
from django.db import connection

from devtools.issuer import DevIssuer
from issuers.models import Issuer
from issuers.services import Outbound
from outbound.policy import OutboundPolicy
from policies.models import AuthPolicy
from policies.registration import issuer_register
from policies.services import policy_update
from tokens.services import token_create
from trustportal.models import Organization

SUB = "repo:acme/infra:ref:refs/heads/main"
# Callers are spread over this many subjects (and as many client addresses, see bench/run.py), so
# the production rate limits (600 per address, 120 per subject, per minute) count every request
# without refusing the benchmark's own load; the definitions match them all by one pattern.
CALLERS = 1000
PATTERN = "repo:acme/*"


def subject(n: int) -> str:
    return f"repo:acme/svc-{n:04d}:ref:refs/heads/main"


@dataclass
class World:
    issuer: DevIssuer
    token: str
    scale_token: str
    api_token: str
    public_pem: str
    unknown_kid_tokens: list[str] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)  # one per caller, acme
    scale_tokens: list[str] = field(default_factory=list)  # one per caller, big


def _allow(sub: str, audience: str) -> dict[str, object]:
    return {
        "decision": "allow",
        "tokenType": "organization",
        "authorizedPermissions": ["admin"],
        "rules": {"sub": sub, "aud": audience, "repository_owner_id": "88310"},
    }


def build(*, scale: bool) -> World:
    issuer = DevIssuer().start()
    outbound = Outbound(
        policy=OutboundPolicy(
            allow_http=True, allowed_networks=(ipaddress.ip_network("127.0.0.0/8"),)
        )
    )
    acme = Organization.objects.create(login="acme", name="ACME")
    registered = issuer_register(organization=acme, url=issuer.url, name="bench", outbound=outbound)
    policy_update(
        policy=AuthPolicy.objects.get(issuer=registered),
        definitions=[_allow(PATTERN, "urn:pulumi:org:acme")],
    )
    day = 24 * 3600 - 120
    token = issuer.mint({"sub": SUB}, audience="urn:pulumi:org:acme", ttl=day)
    _, api_token = token_create(token_type="organization", organization=acme, permission="admin")
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE floor_event (id bigserial primary key, sub text, created timestamptz)"
        )
    public_pem = (
        issuer.current_key.private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    tokens = [
        issuer.mint({"sub": subject(n)}, audience="urn:pulumi:org:acme", ttl=day)
        for n in range(CALLERS)
    ]
    scale_tokens = _build_scale(issuer, day) if scale else [""]
    unknown = [
        issuer.mint(
            {"sub": SUB},
            audience="urn:pulumi:org:acme",
            ttl=day,
            headers={"kid": f"unknown-{uuid.uuid4().hex}"},
        )
        for _ in range(1000)
    ]
    return World(
        issuer, token, scale_tokens[0], api_token, public_pem, unknown, tokens, scale_tokens
    )


def _build_scale(issuer: DevIssuer, ttl: int) -> list[str]:
    """Organization `big`: 1,000 issuers (static JWKS) with 40 definitions each."""
    print("scale: creating 1,000 issuers x 40 definitions…", flush=True)
    big = Organization.objects.create(login="big", name="Big")
    jwks = issuer.jwks()
    chosen = ""
    for n in range(1000):
        url = f"https://issuer-{n}.bench.example"
        registered = issuer_register(
            organization=big,
            url=url,
            name=f"issuer {n}",
            jwks=jwks,
            outbound=Outbound(policy=OutboundPolicy()),
        )
        definitions = [_allow(f"repo:team-{n}-{i}/*", "urn:pulumi:org:big") for i in range(39)]
        definitions.append(_allow(PATTERN, "urn:pulumi:org:big"))
        policy_update(policy=AuthPolicy.objects.get(issuer=registered), definitions=definitions)
        if n == 500:
            chosen = url
    assert Issuer.objects.filter(organization=big).count() == 1000
    return [
        issuer.mint({"sub": subject(n), "iss": chosen}, audience="urn:pulumi:org:big", ttl=ttl)
        for n in range(CALLERS)
    ]
