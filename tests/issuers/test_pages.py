"""The issuer pages and admin: the wizard against a real local issuer, the issuer page, access."""

from __future__ import annotations

import dataclasses
import json
import re
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from devtools.issuer import CannedResponse, DevIssuer, SigningKey
from issuers.models import Issuer, IssuerKey, KeyFetch
from issuers.services import Outbound
from policies.registration import issuer_register
from portal.issuers.views import known_provider
from tests.conftest import LOOPBACK
from tests.factories import PASSWORD, MembershipFactory, OrganizationFactory, UserFactory
from tests.issuers.tls import TLSMaterial, make_tls_material
from trustportal.models import Organization, Role

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("allow_local_issuers")]


@pytest.fixture(autouse=True)
def _fast_passwords(settings: Any) -> None:
    # Signing in five users with the production hasher costs seconds per test.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def world() -> dict[str, Any]:
    a = OrganizationFactory(login="orga", name="Org A")
    b = OrganizationFactory(login="orgb", name="Org B")
    MembershipFactory(organization=a, role=Role.ADMIN, user__username="alice")
    MembershipFactory(organization=a, role=Role.AUDITOR, user__username="audrey")
    MembershipFactory(organization=a, role=Role.MEMBER, user__username="mallory")
    MembershipFactory(organization=b, role=Role.ADMIN, user__username="bob")
    UserFactory(username="olivia")  # in no organization
    return {"a": a, "b": b}


def signed_in(username: str) -> Client:
    client = Client()
    assert client.login(username=username, password=PASSWORD)
    return client


def url(name: str, org: Organization | str, issuer: Issuer | None = None) -> str:
    kwargs: dict[str, Any] = {"org": org if isinstance(org, str) else org.login}
    if issuer is not None:
        kwargs["issuer_id"] = issuer.pk
    return reverse(f"issuers:{name}", kwargs=kwargs)


def text(response: Any) -> str:
    return response.content.decode()


def registered(org: Organization, dev: DevIssuer, outbound: Outbound, **kwargs: Any) -> Issuer:
    return issuer_register(organization=org, url=dev.url, outbound=outbound, **kwargs)


def settings_step(source_url: str, **overrides: Any) -> dict[str, Any]:
    """A step-2 POST as the browser sends it after a step-1 page for `source_url`."""
    data: dict[str, Any] = {
        "step": "settings",
        "url": source_url,
        "thumbprints": "",
        "jwks": "",
        "name": "dev",
        "max_expiration": "7200",
        "audiences": "",
        "algorithms": ["RS256", "ES256"],
    }
    data.update(overrides)
    return data


# --- the wizard ---------------------------------------------------------------------------------
def test_wizard_discovers_then_registers(world, local_issuer: DevIssuer) -> None:
    client = signed_in("alice")
    start = client.get(url("register", "orga"))
    assert start.status_code == 200
    assert "Issuer URL" in text(start)

    step2 = client.post(url("register", "orga"), {"step": "source", "url": local_issuer.url})
    assert step2.status_code == 200
    page = text(step2)
    assert local_issuer.url in page
    assert f"{local_issuer.url}/.well-known/jwks" in page
    assert "test-key-1" in page and "RS256" in page and "2048 bits" in page
    assert "served over plain http (development only)" in page.lower()
    assert "denies every exchange until you add an allow policy" in page
    assert 'value="127.0.0.1"' in page  # the proposed name is the URL's host
    assert not Issuer.objects.exists(), "step 1 saves nothing"

    done = client.post(
        url("register", "orga"),
        settings_step(
            local_issuer.url,
            audiences="sts.example.test\nsts.example.test\nother",
            single_use="on",
            max_expiration="3600",
        ),
    )
    issuer = Issuer.objects.get()
    assert done.status_code == 302
    assert done["Location"] == url("detail", "orga", issuer)
    assert issuer.organization == world["a"]
    assert (issuer.name, issuer.issuer, issuer.max_expiration) == ("dev", local_issuer.url, 3600)
    assert issuer.audiences == ["sts.example.test", "other"]
    assert issuer.algorithms == ["RS256", "ES256"]
    assert issuer.single_use is True
    assert list(IssuerKey.objects.filter(issuer=issuer).values_list("kid", flat=True)) == [
        "test-key-1"
    ]
    detail = client.get(done["Location"])
    assert "Registered the issuer dev" in text(detail)
    # The message, the Policy tab and the policy summary all lead to the policy editor.
    editor = f"/orgs/orga/policies/{issuer.pk}/"
    assert f'until you <a href="{editor}">add an allow policy for it</a>.' in text(detail)
    assert text(detail).count(f'href="{editor}"') == 3
    assert "This issuer's policy:" in text(detail) and "denies everything" in text(detail)


@pytest.fixture(scope="module")
def tls_material(tmp_path_factory: pytest.TempPathFactory) -> TLSMaterial:
    return make_tls_material(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def https_issuer(
    tls_material: TLSMaterial, _issuer_key: SigningKey, settings: Any
) -> Iterator[DevIssuer]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls_material.leaf_pem, tls_material.key_pem)
    settings.TRUSTPORTAL = dataclasses.replace(
        settings.TRUSTPORTAL,
        allow_http_issuers=False,
        issuer_allowed_networks=LOOPBACK,
        issuer_ca_bundle=str(tls_material.ca_pem),
    )
    with DevIssuer(keys=[_issuer_key], ssl_context=context) as dev:
        yield dev


def test_wizard_shows_the_certificate_and_records_it_as_observed(
    world, https_issuer: DevIssuer, tls_material: TLSMaterial
) -> None:
    client = signed_in("alice")
    page = text(client.post(url("register", "orga"), {"url": https_issuer.url}))
    assert https_issuer.url.startswith("https://")
    assert tls_material.leaf_sha256 in page
    assert "CN=localhost" in page  # subject
    assert "CN=trustportal test CA" in page  # issued by
    assert f"{tls_material.leaf_not_after:%Y-%m-%d}" in page
    assert "plain HTTP" not in page
    # Nothing entered, nothing pinned: step 2 carries no thumbprint, the page says why.
    assert 'name="thumbprints" value=""' in page or 'name="thumbprints" id' in page
    assert f'name="thumbprints" value="{tls_material.leaf_sha256}"' not in page
    assert "No thumbprints are pinned" in page

    response = client.post(url("register", "orga"), settings_step(https_issuer.url))
    assert response.status_code == 302
    issuer = Issuer.objects.get()
    assert issuer.thumbprints == []
    assert issuer.observed_thumbprints == [tls_material.leaf_sha256]
    detail = text(client.get(response["Location"]))
    assert "Observed thumbprints" in detail and tls_material.leaf_sha256 in detail
    assert "verified against the trusted certificate authorities" in detail
    again = text(client.post(url("regenerate-thumbprints", "orga", issuer), follow=True))
    assert "Recorded the certificate served now as observed" in again
    issuer.refresh_from_db()
    assert issuer.thumbprints == []  # regenerating never starts pinning


def test_wizard_pins_the_thumbprints_the_admin_entered(
    world, https_issuer: DevIssuer, tls_material: TLSMaterial
) -> None:
    client = signed_in("alice")
    page = text(
        client.post(
            url("register", "orga"),
            {"url": https_issuer.url, "thumbprints": tls_material.leaf_sha256.upper()},
        )
    )
    # Step 2 carries the thumbprint the admin entered, so that is what gets pinned.
    assert f'name="thumbprints" value="{tls_material.leaf_sha256}"' in page
    assert "Thumbprints that will be pinned" in page

    response = client.post(
        url("register", "orga"),
        settings_step(https_issuer.url, thumbprints=tls_material.leaf_sha256),
    )
    assert response.status_code == 302
    issuer = Issuer.objects.get()
    assert issuer.thumbprints == [tls_material.leaf_sha256]
    detail = text(client.get(response["Location"]))
    assert tls_material.leaf_sha256 in detail and "CN=localhost" in detail
    assert "enforced: every fetch must present one of them" in detail
    again = text(client.post(url("regenerate-thumbprints", "orga", issuer), follow=True))
    assert "Pinned 1 certificate thumbprint." in again


def test_wrong_pinned_thumbprint_is_explained_next_to_the_field(
    world, https_issuer: DevIssuer, tls_material: TLSMaterial
) -> None:
    response = signed_in("alice").post(
        url("register", "orga"), {"url": https_issuer.url, "thumbprints": "AB:" * 31 + "AB"}
    )
    page = text(response)
    assert response.status_code == 200
    # The message names the thumbprint actually served, so the operator can compare.
    assert tls_material.leaf_sha256 in page and "matches none of the pinned" in page
    assert not Issuer.objects.exists()


def test_certificate_changed_between_the_steps_is_refused(
    world, https_issuer: DevIssuer, tls_material: TLSMaterial
) -> None:
    stale = "ab" * 32  # what step 1 showed, before the issuer replaced its certificate
    response = signed_in("alice").post(
        url("register", "orga"), settings_step(https_issuer.url, thumbprints=stale)
    )
    page = text(response)
    assert response.status_code == 200
    assert tls_material.leaf_sha256 in page and "matches none of the pinned" in page
    assert not Issuer.objects.exists()


def test_private_address_is_refused_in_plain_words(world) -> None:
    response = signed_in("alice").post(url("register", "orga"), {"url": "https://10.0.0.5/"})
    page = text(response)
    assert response.status_code == 200
    assert "10.0.0.5 is a private address, which is not allowed" in page
    assert "Issuers must be reachable at a public address" in page
    assert "Please correct the problem" in page
    assert not Issuer.objects.exists()


def test_wizard_does_not_name_what_a_host_resolves_to(world, settings: Any) -> None:
    # No network is allowed: "localhost" resolves (through the system resolver) to loopback.
    settings.TRUSTPORTAL = dataclasses.replace(settings.TRUSTPORTAL, issuer_allowed_networks=())
    response = signed_in("alice").post(url("register", "orga"), {"url": "https://localhost/"})
    page = text(response)
    assert response.status_code == 200
    assert "localhost resolves to a non-public address, which is not allowed" in page
    assert "127.0.0.1" not in page
    assert "::1" not in page
    assert "a loopback address" not in page
    assert not Issuer.objects.exists()


@pytest.mark.parametrize(
    ("entered", "explained"),
    [
        ("", "This field is required."),
        ("token.actions.githubusercontent.com", "the URL is not absolute"),
        ("https://user@example.com/", "user name or password"),
        ("http://192.0.2.10/", "plain http is only allowed to a loopback host"),
        ("https://2852039166/", "not in canonical dotted-quad form"),
        ("https://[::1/", "This URL cannot be parsed: Invalid IPv6 URL."),
    ],
)
def test_bad_urls_are_explained(world, entered: str, explained: str) -> None:
    response = signed_in("alice").post(url("register", "orga"), {"url": entered})
    assert response.status_code == 200
    assert explained in text(response)


def test_issuer_mismatch_is_explained(world, local_issuer: DevIssuer) -> None:
    document = {**local_issuer.discovery(), "issuer": "https://evil.example"}
    local_issuer.canned["/.well-known/openid-configuration"] = CannedResponse(
        body=json.dumps(document).encode()
    )
    response = signed_in("alice").post(url("register", "orga"), {"url": local_issuer.url})
    page = text(response)
    assert response.status_code == 200
    assert "discovery says the issuer is" in page and "https://evil.example" in page
    assert not Issuer.objects.exists()


def test_duplicate_registration_is_refused(world, local_issuer: DevIssuer, outbound) -> None:
    registered(world["a"], local_issuer, outbound, name="first")
    client = signed_in("alice")
    preview = text(client.post(url("register", "orga"), {"url": local_issuer.url}))
    assert "already registered this issuer as" in preview and "first" in preview

    response = client.post(url("register", "orga"), settings_step(local_issuer.url, name="x"))
    assert response.status_code == 200
    assert "is already registered as" in text(response)
    assert Issuer.objects.count() == 1
    clash = client.post(url("register", "orga"), settings_step(local_issuer.url, name="first"))
    assert "already registered" in text(clash)


def test_settings_errors_are_shown_per_field_without_fetching(world) -> None:
    github = "https://token.actions.githubusercontent.com"
    response = signed_in("alice").post(
        url("register", "orga"),
        settings_step(github, max_expiration="30", algorithms=[], name=""),
    )
    page = text(response)
    assert response.status_code == 200
    assert "Ensure this value is greater than or equal to 60." in page
    assert page.count("This field is required.") == 2  # name and algorithms
    # The example-policy note for a known CI platform.
    assert "This is a GitHub Actions URL" in page
    assert not Issuer.objects.exists()


@pytest.mark.parametrize(
    ("value", "provider"),
    [
        ("https://token.actions.githubusercontent.com", "GitHub Actions"),
        ("https://token.actions.githubusercontent.com/", "GitHub Actions"),
        ("https://gitlab.com", "GitLab CI/CD"),
        ("https://oidc.circleci.com/org/5d4b2a8e-0000-4000-8000-000000000000", "CircleCI"),
        ("https://oidc.circleci.com/org", None),
        ("https://gitlab.example.com", None),
        ("https://token.actions.githubusercontent.com.evil.example", None),
    ],
)
def test_known_providers(value: str, provider: str | None) -> None:
    assert known_provider(value) == provider


def test_static_jwks_registration_fetches_nothing(world) -> None:
    key = SigningKey.generate("ES256", kid="static-1")
    jwks = json.dumps({"keys": [key.public_jwk()]})
    client = signed_in("alice")
    preview = client.post(
        url("register", "orga"), {"url": "https://kubernetes.default.svc", "jwks": jwks}
    )
    page = text(preview)
    assert preview.status_code == 200
    assert "static-1" in page and "ES256" in page and "never fetched" in page

    response = client.post(
        url("register", "orga"),
        settings_step("https://kubernetes.default.svc", jwks=jwks, name="k8s"),
    )
    assert response.status_code == 302
    issuer = Issuer.objects.get()
    assert issuer.is_static and issuer.issuer == "https://kubernetes.default.svc"
    detail = text(client.get(response["Location"]))
    assert "static-1" in detail
    assert url("refresh", "orga", issuer) not in detail
    assert url("regenerate-thumbprints", "orga", issuer) not in detail


@pytest.mark.parametrize(
    ("jwks", "explained"),
    [
        ("{not json", "This is not valid JSON"),
        ('{"keys": []}', "the key set is empty"),
        ('{"keys": [{"kty": "oct", "kid": "s", "k": "c2VjcmV0"}]}', "symmetric"),
    ],
)
def test_bad_static_jwks_is_explained(world, jwks: str, explained: str) -> None:
    response = signed_in("alice").post(
        url("register", "orga"), {"url": "https://kubernetes.default.svc", "jwks": jwks}
    )
    assert response.status_code == 200
    assert explained in text(response)
    assert not Issuer.objects.exists()


# --- list and detail ----------------------------------------------------------------------------
def test_empty_list_explains_and_links_to_the_wizard(world) -> None:
    page = text(signed_in("alice").get(url("list", "orga")))
    assert "No issuers yet" in page
    assert url("register", "orga") in page
    auditor_page = text(signed_in("audrey").get(url("list", "orga")))
    assert "No issuers yet" in auditor_page
    assert url("register", "orga") not in auditor_page


def test_list_shows_issuers_with_key_health(world, local_issuer: DevIssuer, outbound) -> None:
    issuer = registered(world["a"], local_issuer, outbound, name="dev-issuer")
    registered(world["b"], local_issuer, outbound, name="b-only-issuer")
    page = text(signed_in("alice").get(url("list", "orga")))
    assert "dev-issuer" in page and "b-only-issuer" not in page
    assert url("detail", "orga", issuer) in page
    assert local_issuer.url in page and "Enabled" in page
    assert re.search(r"<td>1</td>", page), "one active key"
    assert "Register issuer" in page
    assert f'/orgs/orga/policies/{issuer.pk}/">denies everything</a>' in page


def test_detail_shows_settings_keys_and_fetch_history(
    world, local_issuer: DevIssuer, outbound
) -> None:
    issuer = registered(world["a"], local_issuer, outbound, name="dev", audiences=["aud-x"])
    page = text(signed_in("alice").get(url("detail", "orga", issuer)))
    assert "test-key-1" in page and "2048 bits" in page
    assert f"{local_issuer.url}/.well-known/jwks" in page
    assert "aud-x" in page and "7200 seconds" in page
    assert "register" in page  # the fetch history's trigger
    assert "served over plain HTTP (development only)" in page
    assert "No warnings" in page
    for action in ("refresh", "regenerate-thumbprints", "disable", "delete"):
        assert url(action, "orga", issuer) in page
    assert "Save settings" in page
    assert f"/orgs/orga/tokens/revoke/?issuer={issuer.pk}" in page


def test_refresh_picks_up_a_rotated_key(world, local_issuer: DevIssuer, outbound) -> None:
    issuer = registered(world["a"], local_issuer, outbound)
    new_key = local_issuer.rotate()
    client = signed_in("alice")
    response = client.post(url("refresh", "orga", issuer))
    assert response.status_code == 302
    page = text(client.get(response["Location"]))
    assert "Keys refreshed: 1 added, 1 removed." in page
    assert new_key.kid in page
    active = IssuerKey.objects.filter(issuer=issuer, removed_at__isnull=True)
    assert list(active.values_list("kid", flat=True)) == [new_key.kid]
    assert KeyFetch.objects.filter(issuer=issuer, trigger="manual", ok=True).exists()


def test_failed_refresh_is_reported_and_keeps_the_keys(
    world, local_issuer: DevIssuer, outbound
) -> None:
    issuer = registered(world["a"], local_issuer, outbound)
    local_issuer.canned["/.well-known/jwks"] = CannedResponse(status=503, body=b"{}")
    client = signed_in("alice")
    page = text(client.post(url("refresh", "orga", issuer), follow=True))
    assert "Fetching keys failed" in page and "HTTP 503" in page
    assert "The previous keys stay in use." in page
    assert IssuerKey.objects.filter(issuer=issuer, removed_at__isnull=True).count() == 1


def test_regenerate_thumbprints_over_plain_http_says_there_is_nothing_to_pin(
    world, local_issuer: DevIssuer, outbound
) -> None:
    issuer = registered(world["a"], local_issuer, outbound)
    page = text(signed_in("alice").post(url("regenerate-thumbprints", "orga", issuer), follow=True))
    assert "no certificate to pin" in page


def test_disable_and_enable(world, local_issuer: DevIssuer, outbound) -> None:
    issuer = registered(world["a"], local_issuer, outbound)
    client = signed_in("alice")
    page = text(client.post(url("set-enabled", "orga", issuer), {"enabled": "false"}, follow=True))
    issuer.refresh_from_db()
    assert issuer.enabled is False
    assert "Disabled the issuer" in page and ">Enable</button>" in page
    client.post(url("set-enabled", "orga", issuer), {"enabled": "true"})
    issuer.refresh_from_db()
    assert issuer.enabled is True


def test_edit_settings(world, local_issuer: DevIssuer, outbound) -> None:
    issuer = registered(world["a"], local_issuer, outbound, name="dev")
    client = signed_in("alice")
    response = client.post(
        url("detail", "orga", issuer),
        {
            "name": "renamed",
            "max_expiration": "600",
            "audiences": "a\nb",
            "algorithms": ["ES256"],
            "single_use": "on",
        },
    )
    assert response.status_code == 302
    issuer.refresh_from_db()
    assert (issuer.name, issuer.max_expiration, issuer.audiences) == ("renamed", 600, ["a", "b"])
    assert issuer.algorithms == ["ES256"] and issuer.single_use is True


def test_edit_name_clash_is_shown_and_nothing_changes(
    world, local_issuer: DevIssuer, outbound
) -> None:
    issuer = registered(world["a"], local_issuer, outbound, name="dev")
    key = SigningKey.generate("ES256", kid="s1")
    issuer_register(
        organization=world["a"],
        url="https://static.example",
        name="taken",
        jwks={"keys": [key.public_jwk()]},
        outbound=outbound,
    )
    response = signed_in("alice").post(
        url("detail", "orga", issuer),
        {"name": "taken", "max_expiration": "600", "algorithms": ["RS256"]},
    )
    page = text(response)
    assert response.status_code == 200
    assert "an issuer named &#x27;taken&#x27; already exists" in page
    issuer.refresh_from_db()
    assert (issuer.name, issuer.max_expiration) == ("dev", 7200)
    # The page shows the saved settings, not the refused ones.
    assert "7200 seconds" in page


# --- access -------------------------------------------------------------------------------------
def test_auditor_sees_everything_read_only(world, local_issuer: DevIssuer, outbound) -> None:
    issuer = registered(world["a"], local_issuer, outbound)
    client = signed_in("audrey")
    page = text(client.get(url("detail", "orga", issuer)))
    assert "test-key-1" in page and "read-only" in page
    # The only form on the page is the header's sign-out form.
    assert page.count("<form") == 1 and 'action="/logout/"' in page
    assert "Refresh keys now" not in page and "Save settings" not in page
    for action in ("detail", "refresh", "regenerate-thumbprints", "set-enabled"):
        assert client.post(url(action, "orga", issuer), {"enabled": "false"}).status_code == 403
    assert client.get(url("register", "orga")).status_code == 403
    assert client.post(url("register", "orga"), {"url": local_issuer.url}).status_code == 403
    issuer.refresh_from_db()
    assert issuer.enabled is True


def test_member_without_configuration_access_gets_403(world) -> None:
    assert signed_in("mallory").get(url("list", "orga")).status_code == 403


def test_non_member_gets_404(world, local_issuer: DevIssuer, outbound) -> None:
    issuer = registered(world["a"], local_issuer, outbound)
    client = signed_in("olivia")
    assert client.get(url("list", "orga")).status_code == 404
    assert client.get(url("register", "orga")).status_code == 404
    assert client.get(url("detail", "orga", issuer)).status_code == 404
    assert client.post(url("refresh", "orga", issuer)).status_code == 404
    assert client.get(url("list", "no-such-org")).status_code == 404


def test_other_orgs_issuer_is_404(world, local_issuer: DevIssuer, outbound) -> None:
    theirs = registered(world["b"], local_issuer, outbound, name="theirs")
    client = signed_in("alice")
    assert client.get(url("detail", "orga", theirs)).status_code == 404
    assert client.post(url("refresh", "orga", theirs)).status_code == 404
    assert client.post(url("set-enabled", "orga", theirs), {"enabled": "false"}).status_code == 404
    theirs.refresh_from_db()
    assert theirs.enabled is True
    # Through their own org's URL, alice is not a member at all.
    assert client.get(url("detail", "orgb", theirs)).status_code == 404


def test_malformed_and_unknown_issuer_ids_are_404(world) -> None:
    client = signed_in("alice")
    assert client.get("/orgs/orga/issuers/not-a-uuid/").status_code == 404
    assert client.get("/orgs/orga/issuers/123/refresh/").status_code == 404
    unknown = "/orgs/orga/issuers/00000000-0000-4000-8000-000000000000/"
    assert client.get(unknown).status_code == 404


def test_actions_need_the_csrf_token(world, local_issuer: DevIssuer, outbound) -> None:
    issuer = registered(world["a"], local_issuer, outbound)
    client = Client(enforce_csrf_checks=True)
    assert client.login(username="alice", password=PASSWORD)
    response = client.post(url("set-enabled", "orga", issuer), {"enabled": "false"})
    assert response.status_code == 403
    issuer.refresh_from_db()
    assert issuer.enabled is True


def test_anonymous_is_sent_to_sign_in(world) -> None:
    response = Client().get(url("list", "orga"))
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_pages_have_no_inline_script_or_style(world, local_issuer: DevIssuer, outbound) -> None:
    issuer = registered(world["a"], local_issuer, outbound)
    client = signed_in("alice")
    pages = [
        client.get(url("list", "orga")),
        client.get(url("register", "orga")),
        client.post(url("register", "orga"), {"url": local_issuer.url}),
        client.get(url("detail", "orga", issuer)),
    ]
    for response in pages:
        page = text(response)
        assert "<script" not in page and "<style" not in page and "style=" not in page
        assert not re.search(r"\son[a-z]+=", page), "no inline event handlers"
        assert "trustportal/issuers.css" in page
    css = Path(__file__).parents[2] / "trustportal/static/trustportal/issuers.css"
    assert css.is_file()
    assert client.get("/static/trustportal/issuers.css").status_code == 200


# --- Django admin -------------------------------------------------------------------------------
def test_admin_changelist_is_scoped_and_links_to_the_wizard(
    world, local_issuer: DevIssuer, outbound
) -> None:
    mine = registered(world["a"], local_issuer, outbound, name="issuer-of-a")
    theirs = registered(world["b"], local_issuer, outbound, name="issuer-of-b")
    client = signed_in("alice")
    page = text(client.get("/admin/issuers/issuer/"))
    assert "issuer-of-a" in page and "issuer-of-b" not in page
    assert url("register", "orga") in page and url("register", "orgb") not in page
    assert client.get("/admin/issuers/issuer/add/").status_code == 403
    assert client.get(f"/admin/issuers/issuer/{theirs.pk}/change/").status_code in (302, 404)

    change = text(client.get(f"/admin/issuers/issuer/{mine.pk}/change/"))
    assert url("detail", "orga", mine) in change
    assert "test-key-1" in change  # the read-only keys inline
    assert "Recent key fetches" in change and 'class="field-trigger"' in change


def test_admin_edits_go_through_the_service_checks(
    world, local_issuer: DevIssuer, outbound
) -> None:
    issuer = registered(world["a"], local_issuer, outbound, name="dev")
    client = signed_in("alice")
    form = {
        "name": "renamed",
        "enabled": "on",
        "max_expiration": "900",
        "audiences": "aud-1",
        "algorithms": ["RS256"],
        "keys-TOTAL_FORMS": "0",
        "keys-INITIAL_FORMS": "0",
        "fetches-TOTAL_FORMS": "0",
        "fetches-INITIAL_FORMS": "0",
        # Read-only fields in the POST are ignored.
        "url": "https://evil.example",
    }
    response = client.post(f"/admin/issuers/issuer/{issuer.pk}/change/", form)
    assert response.status_code == 302, text(response)
    issuer.refresh_from_db()
    assert (issuer.name, issuer.max_expiration, issuer.audiences) == ("renamed", 900, ["aud-1"])
    assert issuer.url == local_issuer.url

    bad = client.post(f"/admin/issuers/issuer/{issuer.pk}/change/", {**form, "max_expiration": "5"})
    assert bad.status_code == 200
    issuer.refresh_from_db()
    assert issuer.max_expiration == 900


def test_auditor_views_the_admin_read_only(world, local_issuer: DevIssuer, outbound) -> None:
    issuer = registered(world["a"], local_issuer, outbound, name="dev")
    client = signed_in("audrey")
    assert "dev" in text(client.get("/admin/issuers/issuer/"))
    response = client.get(f"/admin/issuers/issuer/{issuer.pk}/change/")
    assert response.status_code == 200
    assert 'name="name"' not in text(response)
    posted = client.post(f"/admin/issuers/issuer/{issuer.pk}/change/", {"name": "x"})
    assert posted.status_code == 403
