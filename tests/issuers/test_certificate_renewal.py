"""A routine TLS certificate renewal (same CA, new leaf) against real HTTPS issuers.

An issuer registered without thumbprints trusts its hosts through the CA bundle and only
observes the thumbprints: after the renewal, key refreshes and exchanges keep working and the
change is a warning. An issuer whose admin pinned the old leaf stops refreshing, with a warning
that says what to do.
"""

from __future__ import annotations

import dataclasses
import logging
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from devtools.issuer import DevIssuer, SigningKey
from issuers import tasks
from issuers.models import Issuer
from issuers.selectors import issuer_warnings
from issuers.services import default_outbound
from policies.models import AuthPolicy
from policies.registration import issuer_register
from policies.services import policy_update
from tests.conftest import LOOPBACK
from tests.issuers.tls import TLSMaterial, make_tls_material, renew_leaf
from tests.tokens.conftest import AUDIENCE, exchange_body
from tokens.models import ExchangeEvent

pytestmark = pytest.mark.django_db

POLICY = [
    {
        "decision": "allow",
        "tokenType": "organization",
        "authorizedPermissions": ["standard"],
        "rules": {"aud": AUDIENCE},
    }
]


@pytest.fixture
def tls(tmp_path: Path) -> TLSMaterial:
    return make_tls_material(tmp_path / "v1")


@pytest.fixture
def trust_test_ca(settings: Any, tls: TLSMaterial) -> None:
    """Issuers on loopback over HTTPS, verified against the test CA (as in production)."""
    settings.TRUSTPORTAL = dataclasses.replace(
        settings.TRUSTPORTAL,
        allow_http_issuers=False,
        issuer_allowed_networks=LOOPBACK,
        issuer_ca_bundle=str(tls.ca_pem),
    )


def _https_issuer(tls: TLSMaterial) -> DevIssuer:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls.leaf_pem, tls.key_pem)
    return DevIssuer(
        keys=[SigningKey.generate("ES256", kid="before")],
        ssl_context=context,
        public_host="localhost",
    )


@pytest.fixture
def hosts(tls: TLSMaterial) -> Iterator[tuple[DevIssuer, DevIssuer]]:
    with _https_issuer(tls) as observed, _https_issuer(tls) as pinned:
        yield observed, pinned


def _exchange(api_client: Any, dev: DevIssuer) -> int:
    token = dev.mint(audience=AUDIENCE)
    response = api_client.post("/api/oauth/token", exchange_body(token), format="json")
    return int(response.status_code)


def test_renewal_keeps_unpinned_issuers_working_and_stops_pinned_ones_with_a_warning(
    org, api_client, hosts, tls, trust_test_ca, tmp_path, caplog
) -> None:
    observed_dev, pinned_dev = hosts
    outbound = default_outbound()
    observed = issuer_register(
        organization=org, url=observed_dev.url, name="observed", outbound=outbound
    )
    pinned = issuer_register(
        organization=org,
        url=pinned_dev.url,
        name="pinned",
        thumbprints=[tls.leaf_sha256],
        outbound=outbound,
    )
    for issuer in (observed, pinned):
        policy_update(policy=AuthPolicy.objects.get(issuer=issuer), definitions=POLICY)
    assert (observed.thumbprints, observed.observed_thumbprints) == ([], [tls.leaf_sha256])
    assert pinned.thumbprints == [tls.leaf_sha256]
    assert _exchange(api_client, observed_dev) == 200
    assert _exchange(api_client, pinned_dev) == 200

    # The routine renewal: same CA, new key and leaf. Both issuers also rotate their signing
    # key, so the next exchange needs a key refresh through the renewed certificate.
    renewed = renew_leaf(tls, tmp_path / "v2")
    assert renewed.leaf_sha256 != tls.leaf_sha256
    for dev in hosts:
        dev.serve_certificate(renewed.leaf_pem, renewed.key_pem)
        dev.rotate("ES256")

    with caplog.at_level(logging.WARNING, logger="issuers.certificates"):
        assert _exchange(api_client, observed_dev) == 200  # on-demand refresh succeeded
        assert _exchange(api_client, pinned_dev) != 200
    refused = ExchangeEvent.objects.filter(issuer=pinned).order_by("-id").first()
    assert refused is not None and refused.reason == "unknown_kid"

    # The scheduled refresh (the Celery task body) agrees.
    assert tasks.refresh_issuer_keys(str(observed.pk)) == {"ok": True, "reason": ""}
    assert tasks.refresh_issuer_keys(str(pinned.pk)) == {
        "ok": False,
        "reason": "thumbprint_mismatch",
    }

    now = timezone.now()
    observed = Issuer.objects.get(pk=observed.pk)
    assert observed.thumbprints == []
    assert observed.observed_thumbprints == [renewed.leaf_sha256]
    assert observed.cert_previous_sha256 == tls.leaf_sha256
    assert observed.last_error == ""
    codes = {w.code: w.message for w in issuer_warnings(observed, now)}
    assert "certificate_changed" in codes
    assert not set(codes) & {"unhealthy", "fetch_failing", "pin_mismatch"}
    assert renewed.leaf_sha256 in codes["certificate_changed"]
    assert "fetches keep working" in codes["certificate_changed"]

    pinned = Issuer.objects.get(pk=pinned.pk)
    assert pinned.thumbprints == [tls.leaf_sha256]  # the admin's pin is never replaced silently
    assert pinned.last_error_reason == "thumbprint_mismatch"
    codes = {w.code: w.message for w in issuer_warnings(pinned, now)}
    assert "pin_mismatch" in codes and "fetch_failing" not in codes
    assert renewed.leaf_sha256 in codes["pin_mismatch"]  # what is served now, to compare
    assert "regenerate the thumbprints" in codes["pin_mismatch"]

    # Both events reached the operator's log.
    assert f"changed from {tls.leaf_sha256} to {renewed.leaf_sha256}" in caplog.text
    assert "matches none of the pinned thumbprints" in caplog.text


def test_issuer_page_and_api_show_observed_and_pinned_apart(
    org, org_admin, admin_token, api_client, hosts, tls, trust_test_ca, tmp_path, client
) -> None:
    from tests.conftest import auth
    from tests.factories import PASSWORD

    observed_dev, pinned_dev = hosts
    outbound = default_outbound()
    observed = issuer_register(organization=org, url=observed_dev.url, outbound=outbound)
    pinned = issuer_register(
        organization=org,
        url=pinned_dev.url,
        name="pinned",
        thumbprints=[tls.leaf_sha256],
        outbound=outbound,
    )
    renewed = renew_leaf(tls, tmp_path / "v2")
    for dev in hosts:
        dev.serve_certificate(renewed.leaf_pem, renewed.key_pem)
    for issuer in (observed, pinned):
        tasks.refresh_issuer_keys(str(issuer.pk))

    api = auth(api_client, admin_token)
    body = api.get(f"/api/orgs/acme/oidc/issuers/{observed.pk}").json()
    assert body["thumbprints"] == [] and body["observedThumbprints"] == [renewed.leaf_sha256]
    assert [w["code"] for w in body["health"]["warnings"]] == ["certificate_changed"]
    body = api.get(f"/api/orgs/acme/oidc/issuers/{pinned.pk}").json()
    assert body["thumbprints"] == [tls.leaf_sha256]
    assert body["observedThumbprints"] == [tls.leaf_sha256]
    assert [w["code"] for w in body["health"]["warnings"]] == ["pin_mismatch"]

    assert client.login(username="alice", password=PASSWORD)
    page = client.get(f"/orgs/acme/issuers/{observed.pk}/").content.decode()
    assert "Observed thumbprints" in page and renewed.leaf_sha256 in page
    assert "The served TLS certificate changed" in page
    page = client.get(f"/orgs/acme/issuers/{pinned.pk}/").content.decode()
    assert "matches none of the pinned thumbprints" in page
    assert "regenerate the thumbprints" in page


def test_migration_turns_auto_pins_into_observed_thumbprints(org) -> None:
    import importlib

    from django.apps import apps

    migration = importlib.import_module("issuers.migrations.0003_auto_pins_become_observed")

    def make(name: str, pins: list[str], jwks_uri: str) -> Issuer:
        return Issuer.objects.create(
            organization=org,
            name=name,
            url=f"https://{name}.example",
            issuer=f"https://{name}.example",
            jwks_uri=jwks_uri,
            thumbprints=pins,
        )

    a, b, c = "aa" * 32, "bb" * 32, "cc" * 32
    auto_one_host = make("one", [a], "https://one.example/keys")
    auto_two_hosts = make("two", [a, b], "https://keys.two.example/jwks")
    chosen = make("spare", [a, b], "https://spare.example/keys")  # a spare pin: an admin's
    chosen_three = make("three", [a, b, c], "https://keys.three.example/jwks")
    unpinned = make("none", [], "https://none.example/keys")

    migration.auto_pins_become_observed(apps, None)

    def pins(issuer: Issuer) -> tuple[list[str], list[str]]:
        issuer.refresh_from_db()
        return issuer.thumbprints, issuer.observed_thumbprints

    assert pins(auto_one_host) == ([], [a])
    assert pins(auto_two_hosts) == ([], [a, b])
    assert pins(chosen) == ([a, b], [])
    assert pins(chosen_three) == ([a, b, c], [])
    assert pins(unpinned) == ([], [])
