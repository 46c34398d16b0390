"""A slow issuer cannot hold web workers: one deadline per registration, one at a time per org."""

from __future__ import annotations

import json
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import pytest

from devtools.issuer import CannedResponse, DevIssuer, SigningKey
from issuers import limits
from issuers.errors import IssuerBusy, IssuerInvalid
from issuers.models import Issuer
from issuers.services import issuer_preview, web_outbound
from policies.registration import issuer_register
from tests.conftest import auth
from tests.factories import MembershipFactory, OrganizationFactory, make_token
from trustportal.models import Role

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("allow_local_issuers")]


def slow(dev: DevIssuer, seconds: float) -> None:
    """Make the issuer answer both discovery and JWKS after `seconds` each."""
    document = dev.discovery()
    dev.canned["/.well-known/openid-configuration"] = CannedResponse(
        body=json.dumps(document).encode(), delay=seconds
    )
    dev.canned[urlsplit(document["jwks_uri"]).path] = CannedResponse(
        body=json.dumps(dev.jwks()).encode(), delay=seconds
    )


@pytest.fixture
def short_deadline(monkeypatch: pytest.MonkeyPatch) -> float:
    monkeypatch.setattr(limits, "WEB_DEADLINE", 1.0)
    return 1.0


def test_one_deadline_covers_discovery_and_jwks_together(
    org, local_issuer: DevIssuer, short_deadline: float
) -> None:
    # Each step alone is well within the guard's 5 s per fetch; together they exceed 1 s.
    slow(local_issuer, 0.9)
    started = time.monotonic()
    with pytest.raises(IssuerInvalid) as info:
        issuer_register(organization=org, url=local_issuer.url, outbound=web_outbound(org))
    elapsed = time.monotonic() - started
    assert info.value.reason == "timeout"
    assert "did not answer within the 1 s allowed" in info.value.message
    assert elapsed < short_deadline + 0.5  # not 2 x 0.9 s
    assert not Issuer.objects.exists()


def test_a_fast_issuer_registers_within_the_deadline(
    org, local_issuer: DevIssuer, short_deadline: float
) -> None:
    slow(local_issuer, 0.1)
    issuer = issuer_register(organization=org, url=local_issuer.url, outbound=web_outbound(org))
    assert issuer.jwks_uri


def _preview_in_background(org: Any, dev: DevIssuer) -> tuple[threading.Thread, list[Any]]:
    """A registration's discovery for `org`, running in another worker (thread)."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(issuer_preview(url=dev.url, outbound=web_outbound(org)))
        except Exception as exc:  # handed to the test
            outcome.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    deadline = time.monotonic() + 2
    while not dev.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    assert dev.requests, "the first registration never reached the issuer"
    return worker, outcome


def test_second_concurrent_registration_of_an_org_is_refused_quickly(
    org, local_issuer: DevIssuer, api_client, admin_token: str
) -> None:
    slow(local_issuer, 1.5)
    worker, outcome = _preview_in_background(org, local_issuer)

    # The API: 429 at once, with a clear message and Retry-After.
    started = time.monotonic()
    response = auth(api_client, admin_token).post(
        "/api/orgs/acme/oidc/issuers", {"url": local_issuer.url}, format="json"
    )
    assert time.monotonic() - started < 1.5  # not after the 3 s of its own slow fetches
    assert response.status_code == 429, response.json()
    assert "in progress; try again in a few seconds" in response.json()["message"]
    assert response["Retry-After"]

    # The wizard: the same refusal, on the form rather than an error page.
    MembershipFactory(organization=org, role=Role.ADMIN, user__username="alice")
    from tests.issuers.test_pages import signed_in

    page = signed_in("alice").post(f"/orgs/{org.login}/issuers/register/", {"url": "https://x/"})
    assert page.status_code == 200
    assert "in progress; try again in a few seconds" in page.content.decode()

    # Another organization is not held up by this one.
    other = OrganizationFactory(login="other")
    with DevIssuer(keys=[SigningKey.generate("ES256")]) as fast:
        token = make_token("organization", organization=other, permission="admin", name="ci")
        api_client.credentials()
        created = auth(api_client, token).post(
            "/api/orgs/other/oidc/issuers", {"url": fast.url}, format="json"
        )
    assert created.status_code == 201, created.json()

    worker.join(10)
    assert outcome and not isinstance(outcome[0], Exception)
    # The slot is free again once the first registration is over.
    issuer_register(organization=org, url=local_issuer.url, outbound=web_outbound(org))


def test_slot_is_released_after_a_failure_and_limits_per_org() -> None:
    with pytest.raises(RuntimeError), limits.organization_fetch_slot("org-1"):
        raise RuntimeError("the fetch failed")
    with limits.organization_fetch_slot("org-1"):
        with pytest.raises(IssuerBusy), limits.organization_fetch_slot("org-1"):
            pass
        with limits.organization_fetch_slot("org-2"):
            pass
    with (
        limits.organization_fetch_slot("org-1", limit=2),
        limits.organization_fetch_slot("org-1", limit=2),
        pytest.raises(IssuerBusy),
        limits.organization_fetch_slot("org-1", limit=2),
    ):
        pass


def test_slots_fail_open_when_the_cache_is_down(monkeypatch: pytest.MonkeyPatch) -> None:
    def down(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("redis is down")

    monkeypatch.setattr(limits.cache, "add", down)
    with limits.organization_fetch_slot("org-1"), limits.organization_fetch_slot("org-1"):
        pass
