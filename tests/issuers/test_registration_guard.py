"""Registration through the outbound guard: hostile URLs, TLS thumbprints over real HTTPS."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.issuer import CannedResponse, DevIssuer, SigningKey
from issuers.errors import IssuerInvalid
from issuers.models import Issuer
from issuers.services import (
    Outbound,
    issuer_refresh_keys,
    issuer_regenerate_thumbprints,
)
from outbound.policy import OutboundPolicy
from policies.registration import issuer_register
from tests.conftest import LOOPBACK
from tests.issuers.tls import TLSMaterial, make_tls_material

pytestmark = pytest.mark.django_db


def hostile_urls(port: int) -> list[tuple[str, str]]:
    """URLs that all lead to the local issuer (or metadata addresses) in some disguise."""
    return [
        (f"http://127.0.0.1:{port}", "scheme_not_allowed"),
        (f"https://127.0.0.1:{port}", "address_not_allowed"),
        (f"https://localhost:{port}", "address_not_allowed"),
        (f"https://127.1:{port}", "non_canonical_ip"),
        (f"https://2130706433:{port}", "non_canonical_ip"),
        (f"https://0x7f000001:{port}", "non_canonical_ip"),
        (f"https://0177.0.0.1:{port}", "non_canonical_ip"),
        (f"https://[::ffff:127.0.0.1]:{port}", "non_canonical_ip"),
        (f"https://[::1]:{port}", "address_not_allowed"),
        (f"https://0.0.0.0:{port}", "address_not_allowed"),
        (f"https://user:pw@127.0.0.1:{port}", "userinfo_not_allowed"),
        (f"https://issuer.example@127.0.0.1:{port}", "userinfo_not_allowed"),
        (f"https://issuer.example:{port}#@127.0.0.1", "fragment_not_allowed"),
        (f"https://rebind.test:{port}", "address_not_allowed"),  # test resolver → 127.0.0.1
        (f"https://metadata.test:{port}", "address_not_allowed"),  # → 169.254.169.254
        (f"https://mixed.test:{port}", "address_not_allowed"),  # → public + 10.0.0.5
        ("https://169.254.169.254/latest/meta-data", "address_not_allowed"),
        ("https://10.0.0.5/", "address_not_allowed"),
        ("https://192.168.1.1/", "address_not_allowed"),
        ("https://[fd00::1]/", "address_not_allowed"),
        ("https://[fe80::1]/", "address_not_allowed"),
        ("https://100.64.0.1/", "address_not_allowed"),
        ("file:///etc/passwd", "scheme_not_allowed"),
        (f"ftp://127.0.0.1:{port}/", "scheme_not_allowed"),
        (f"gopher://127.0.0.1:{port}/", "scheme_not_allowed"),
    ]


def test_resolver(host: str, port: int) -> list[str]:
    table = {
        "rebind.test": ["127.0.0.1"],
        "metadata.test": ["169.254.169.254"],
        "mixed.test": ["93.184.216.34", "10.0.0.5"],
        "localhost": ["127.0.0.1"],
        "issuer.example": ["93.184.216.34"],
    }
    return table.get(host, ["192.0.2.1"])


test_resolver.__test__ = False  # type: ignore[attr-defined]


def test_hostile_urls_are_refused_without_any_connection(org, local_issuer: DevIssuer) -> None:
    strict = Outbound(policy=OutboundPolicy(), resolve=test_resolver)
    refused = []
    for url, reason in hostile_urls(local_issuer.port):
        with pytest.raises(IssuerInvalid) as info:
            issuer_register(organization=org, url=url, outbound=strict)
        assert info.value.reason == reason, (url, info.value.reason, info.value.message)
        refused.append(url)
    assert len(refused) >= 25
    assert local_issuer.requests == []  # nothing ever reached the local issuer
    assert not Issuer.objects.exists()


def test_private_address_is_refused_without_naming_it(org) -> None:
    strict = Outbound(policy=OutboundPolicy(), resolve=test_resolver)
    for url in ("https://mixed.test/", "https://metadata.test/", "https://rebind.test/"):
        with pytest.raises(IssuerInvalid) as info:
            issuer_register(organization=org, url=url, outbound=strict)
        assert "resolves to a non-public address" in info.value.message
        for address in ("10.0.0.5", "169.254.169.254", "127.0.0.1", "93.184.216.34"):
            assert address not in info.value.message


def test_redirect_to_metadata_is_refused(org, local_issuer: DevIssuer, outbound) -> None:
    local_issuer.canned["/.well-known/openid-configuration"] = CannedResponse(
        status=302, headers={"Location": "http://169.254.169.254/latest/meta-data/"}
    )
    with pytest.raises(IssuerInvalid) as info:
        issuer_register(organization=org, url=local_issuer.url, outbound=outbound)
    assert info.value.reason == "redirect_refused"
    assert "169.254.169.254" in info.value.message


def test_jwks_uri_is_guarded_too(org, local_issuer: DevIssuer, outbound) -> None:
    document = {**local_issuer.discovery(), "jwks_uri": "https://169.254.169.254/keys"}
    import json

    local_issuer.canned["/.well-known/openid-configuration"] = CannedResponse(
        body=json.dumps(document).encode()
    )
    with pytest.raises(IssuerInvalid) as info:
        issuer_register(organization=org, url=local_issuer.url, outbound=outbound)
    assert info.value.reason == "address_not_allowed"


# --- HTTPS with a generated CA --------------------------------------------------------------------
@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLSMaterial:
    return make_tls_material(Path(tmp_path_factory.mktemp("tls")))


@pytest.fixture
def https_issuer(tls: TLSMaterial, _issuer_key: SigningKey) -> Iterator[DevIssuer]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls.leaf_pem, tls.key_pem)
    issuer = DevIssuer(keys=[_issuer_key], ssl_context=context, public_host="localhost")
    with issuer:
        yield issuer


@pytest.fixture
def tls_outbound(tls: TLSMaterial) -> Outbound:
    return Outbound(policy=OutboundPolicy(allowed_networks=LOOPBACK, ca_bundle=str(tls.ca_pem)))


def test_https_registration_records_the_served_certificate_without_pinning_it(
    org, https_issuer, tls, tls_outbound
) -> None:
    issuer = issuer_register(organization=org, url=https_issuer.url, outbound=tls_outbound)
    assert issuer.thumbprints == []  # nothing the admin chose: trust comes from the CA
    assert issuer.observed_thumbprints == [tls.leaf_sha256]
    assert issuer.cert_sha256 == tls.leaf_sha256
    assert issuer.cert_not_after is not None
    assert "localhost" in issuer.cert_subject


@pytest.mark.parametrize("form", ["lower", "upper", "colons"])
def test_given_thumbprint_in_any_form_is_accepted(
    org, https_issuer, tls, tls_outbound, form
) -> None:
    value = {
        "lower": tls.leaf_sha256,
        "upper": tls.leaf_sha256.upper(),
        "colons": ":".join(tls.leaf_sha256[i : i + 2] for i in range(0, 64, 2)).upper(),
    }[form]
    issuer = issuer_register(
        organization=org, url=https_issuer.url, thumbprints=[value], outbound=tls_outbound
    )
    assert issuer.thumbprints == [tls.leaf_sha256]


def test_wrong_thumbprint_names_the_computed_one(org, https_issuer, tls, tls_outbound) -> None:
    with pytest.raises(IssuerInvalid) as info:
        issuer_register(
            organization=org, url=https_issuer.url, thumbprints=["ab" * 32], outbound=tls_outbound
        )
    assert info.value.reason == "thumbprint_mismatch"
    assert tls.leaf_sha256 in info.value.message
    assert not Issuer.objects.exists()


def test_pin_is_enforced_on_every_fetch_and_regenerated(
    org, https_issuer, tls, tls_outbound, tmp_path
) -> None:
    issuer = issuer_register(organization=org, url=https_issuer.url, outbound=tls_outbound)
    # The issuer's host now serves another certificate (same CA, new leaf).
    issuer.thumbprints = ["cd" * 32]
    issuer.save()
    fetch = issuer_refresh_keys(issuer=issuer, trigger="schedule", outbound=tls_outbound)
    assert fetch is not None and not fetch.ok and fetch.reason == "thumbprint_mismatch"
    issuer = issuer_regenerate_thumbprints(issuer=issuer, outbound=tls_outbound)
    assert issuer.thumbprints == [tls.leaf_sha256]
    fetch = issuer_refresh_keys(issuer=issuer, trigger="schedule", outbound=tls_outbound)
    assert fetch is not None and fetch.ok


def test_untrusted_certificate_is_refused(org, https_issuer) -> None:
    system_store = Outbound(policy=OutboundPolicy(allowed_networks=LOOPBACK))
    with pytest.raises(IssuerInvalid) as info:
        issuer_register(organization=org, url=https_issuer.url, outbound=system_store)
    assert info.value.reason == "tls_error"


def test_regenerate_is_refused_for_static_issuers(org, outbound) -> None:
    key = SigningKey.generate("ES256", kid="s")
    issuer = issuer_register(
        organization=org,
        url="https://static.example",
        jwks={"keys": [key.public_jwk()]},
        outbound=outbound,
    )
    with pytest.raises(IssuerInvalid, match="static JWKS"):
        issuer_regenerate_thumbprints(issuer=issuer, outbound=outbound)
