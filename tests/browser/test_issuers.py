"""The Register Issuer wizard in a real browser, against real local issuers (http and https)."""

from __future__ import annotations

import dataclasses
import re
import ssl
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

from devtools.issuer import DevIssuer, SigningKey
from issuers.models import Issuer
from tests.browser.conftest import screenshot
from tests.conftest import LOOPBACK
from tests.issuers.tls import TLSMaterial, make_tls_material
from trustportal.models import Organization, User

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def fact(scope: Page | Locator, term: str) -> Locator:
    """The <dd> that follows the <dt> reading exactly `term`."""
    return scope.locator(f"xpath=//dt[normalize-space()={term!r}]/following-sibling::dd[1]")


def discover(page: Page, url: str) -> None:
    page.get_by_label("Issuer URL").fill(url)
    page.get_by_role("button", name="Discover issuer").click()


@pytest.fixture
def admin_page(signed_in: Callable[[User], Page], org_admin: User) -> Page:
    return signed_in(org_admin)


@pytest.mark.usefixtures("allow_local_issuers")
def test_register_the_local_issuer_step_by_step(
    admin_page: Page, org: Organization, local_issuer: DevIssuer
) -> None:
    page = admin_page
    page.goto("/orgs/acme/issuers/")
    empty = page.locator(".empty-state")
    expect(empty.locator("h2")).to_have_text("No issuers yet")
    expect(empty).to_contain_text("no CI job can exchange a token for it yet")
    screenshot(page, "issuers-empty")
    empty.get_by_role("link", name="Register the first issuer").click()
    expect(page.locator("h1")).to_have_text("Register an issuer")
    expect(page.locator(".steps [aria-current=step]")).to_contain_text("1. Issuer URL")

    # Private and cloud-metadata addresses are refused on the page, next to the URL.
    discover(page, "https://10.0.0.1/")
    expect(page.locator(".form-errors")).to_contain_text("Please correct the problem below.")
    url_error = page.locator("#id_url_error")
    expect(url_error).to_contain_text("10.0.0.1 is a private address, which is not allowed")
    expect(url_error).to_contain_text("Issuers must be reachable at a public address")
    expect(page.get_by_label("Issuer URL")).to_have_value("https://10.0.0.1/")
    screenshot(page, "issuer-register-private-address")
    discover(page, "https://169.254.169.254/")
    expect(page.locator("#id_url_error")).to_contain_text("169.254.169.254 is a")
    expect(page.locator("#id_url_error")).to_contain_text("not allowed")
    assert not Issuer.objects.exists()

    # The real issuer: what discovery found, before anything is saved.
    discover(page, local_issuer.url)
    expect(page.locator(".steps [aria-current=step]")).to_contain_text("2. Check what was found")
    found = page.locator("section.found")
    expect(found.locator("h2")).to_have_text("What the portal found")
    expect(fact(found, "URL")).to_have_text(local_issuer.url)
    expect(fact(found, "Issuer (tokens' iss must equal it)")).to_have_text(local_issuer.url)
    expect(fact(found, "JWKS URI")).to_have_text(f"{local_issuer.url}/.well-known/jwks")
    expect(found.locator("h3").first).to_have_text("Signing keys (1)")
    key_cells = found.locator("table.list tbody tr").first.locator("td")
    expect(key_cells).to_have_text(["test-key-1", "RSA", "RS256", "2048 bits"])
    expect(found).to_contain_text("Served over plain HTTP (development only)")
    expect(page.locator("body")).to_contain_text("denies every exchange until you add an allow")
    screenshot(page, "issuer-register-discovered")
    assert not Issuer.objects.exists(), "discovery saves nothing"

    # Name and limits, then save.
    expect(page.get_by_label("Name")).to_have_value("127.0.0.1")
    page.get_by_label("Name").fill("Local CI")
    page.get_by_label("Maximum access-token lifetime (seconds)").fill("1800")
    page.get_by_label("Other accepted audiences (optional)").fill(
        "sts.example.test\nsts.example.test"
    )
    page.get_by_role("button", name="Register issuer").click()

    issuer = Issuer.objects.get()
    expect(page).to_have_url(re.compile(rf"/orgs/acme/issuers/{issuer.pk}/$"))
    expect(page.locator(".messages")).to_contain_text("Registered the issuer Local CI.")
    expect(page.locator(".messages").get_by_role("link")).to_have_text("add an allow policy for it")
    expect(page.locator("h1")).to_have_text("Local CI")
    expect(fact(page, "Maximum access-token lifetime")).to_have_text("1800 seconds")
    expect(fact(page, "Other accepted audiences")).to_have_text("sts.example.test")
    expect(fact(page, "Keys from")).to_have_text(f"{local_issuer.url}/.well-known/jwks")
    screenshot(page, "issuer-detail")
    assert (issuer.name, issuer.max_expiration, issuer.audiences) == (
        "Local CI",
        1800,
        ["sts.example.test"],
    )

    page.goto("/orgs/acme/issuers/")
    row = page.locator("table.issuers tbody tr")
    expect(row).to_have_count(1)
    expect(row.locator("td").nth(0)).to_have_text("Local CI")
    expect(row.locator("td").nth(2)).to_have_text("Enabled")
    expect(row.locator("td").nth(3)).to_have_text("denies everything")
    expect(row.locator("td").nth(5)).to_have_text("1")
    screenshot(page, "issuers-list")
    # The policy summary leads to the policy editor.
    row.locator("td").nth(3).get_by_role("link").click()
    expect(page).to_have_url(re.compile(rf"/orgs/acme/policies/{issuer.pk}/$"))


def test_a_bad_limit_is_explained_next_to_its_field(
    admin_page: Page, org: Organization, local_issuer: DevIssuer, allow_local_issuers: None
) -> None:
    page = admin_page
    page.goto("/orgs/acme/issuers/register/")
    discover(page, local_issuer.url)
    page.get_by_label("Maximum access-token lifetime (seconds)").fill("0")
    page.get_by_role("button", name="Register issuer").click()
    expect(page.locator(".form-errors")).to_contain_text("Please correct the problem below.")
    field = page.locator(".field.has-error")
    expect(field).to_have_count(1)
    expect(field.locator("label")).to_have_text("Maximum access-token lifetime (seconds)")
    expect(field.locator(".error")).to_have_text(
        "Ensure this value is greater than or equal to 60."
    )
    screenshot(page, "issuer-register-bad-limit")
    assert not Issuer.objects.exists()


@pytest.fixture
def https_issuer(
    tmp_path_factory: pytest.TempPathFactory, _issuer_key: SigningKey, settings: Any
) -> Iterator[tuple[DevIssuer, TLSMaterial]]:
    """The local issuer over https with a test CA the portal trusts (plain http refused)."""
    tls = make_tls_material(tmp_path_factory.mktemp("tls"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls.leaf_pem, tls.key_pem)
    settings.TRUSTPORTAL = dataclasses.replace(
        settings.TRUSTPORTAL,
        allow_http_issuers=False,
        issuer_allowed_networks=LOOPBACK,
        issuer_ca_bundle=str(tls.ca_pem),
    )
    with DevIssuer(keys=[_issuer_key], ssl_context=context) as dev:
        yield dev, tls


def test_the_wizard_shows_the_certificate_and_records_its_thumbprint_as_observed(
    admin_page: Page, org: Organization, https_issuer: tuple[DevIssuer, TLSMaterial]
) -> None:
    dev, tls = https_issuer
    page = admin_page
    page.goto("/orgs/acme/issuers/register/")
    discover(page, dev.url)
    found = page.locator("section.found")
    expect(fact(found, "Issuer (tokens' iss must equal it)")).to_have_text(dev.url)
    expect(fact(found, "Subject")).to_contain_text("CN=localhost")
    expect(fact(found, "Issued by")).to_contain_text("CN=trustportal test CA")
    expect(fact(found, "SHA-256 thumbprint")).to_have_text(tls.leaf_sha256)
    expect(found.locator("ul.mono li")).to_have_text([tls.leaf_sha256])
    expect(found).not_to_contain_text("plain HTTP")
    screenshot(page, "issuer-register-https-thumbprint")

    page.get_by_role("button", name="Register issuer").click()
    expect(page.locator(".messages")).to_contain_text("Registered the issuer")
    # Nothing typed, nothing pinned: the hosts are verified against the certificate
    # authorities, and the served thumbprint is recorded as observed.
    expect(fact(page, "Pinned thumbprints")).to_contain_text("none")
    expect(fact(page, "Observed thumbprints")).to_contain_text(tls.leaf_sha256)
    issuer = Issuer.objects.get()
    assert (issuer.thumbprints, issuer.observed_thumbprints) == ([], [tls.leaf_sha256])
