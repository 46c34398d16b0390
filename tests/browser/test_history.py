"""The exchange history in a real browser: filter, a denied attempt's trace, export, revoke."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect
from rest_framework.test import APIClient

from devtools.issuer import DevIssuer
from issuers.models import Issuer
from issuers.services import Outbound
from tests.browser.conftest import screenshot
from tests.environments.conftest import trust_local_issuer
from tests.factories import MembershipFactory
from tests.tokens.conftest import AUDIENCE, DEFAULT_POLICY, exchange_body
from tokens.models import AccessToken, ExchangeEvent
from trustportal.models import Organization, Role, User

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("allow_local_issuers"),
]

INFRA_MAIN = {
    "sub": "repo:acme/infra:ref:refs/heads/main",
    "repository": "acme/infra",
    "event_name": "push",
}
WEB_MAIN = {"sub": "repo:acme/web:ref:refs/heads/main", "repository": "acme/web"}
APP_PR = {
    "sub": "repo:acme/app:pull_request",
    "repository": "acme/app",
    "event_name": "pull_request",
}


def exchange(dev: DevIssuer, claims: dict[str, Any], scope: str, **mint: Any) -> int:
    """Exchange a fresh token of the local issuer through the real endpoint; the HTTP status."""
    body = exchange_body(dev.mint(claims, audience=AUDIENCE, **mint), scope=scope)
    return APIClient().post("/api/oauth/token", body, format="json").status_code


@pytest.fixture
def history(org: Organization, local_issuer: DevIssuer, outbound: Outbound) -> Issuer:
    """The local issuer with the exchange tests' policy, and five real attempts."""
    issuer = trust_local_issuer(org, local_issuer, outbound)
    assert exchange(local_issuer, INFRA_MAIN, "admin") == 200
    assert exchange(local_issuer, INFRA_MAIN, "admin") == 200
    assert exchange(local_issuer, WEB_MAIN, "") == 200
    assert exchange(local_issuer, APP_PR, "admin") == 400
    # Refused before any policy is evaluated: the issuer never published this key id.
    assert exchange(local_issuer, APP_PR, "admin", headers={"kid": "not-published"}) == 400
    return issuer


def rows(page: Page) -> Locator:
    """The rows of the page's (first) list: the exchange attempts, or the tokens."""
    return page.locator("main table.list").first.locator(":scope > tbody > tr")


def column(page: Page, index: int) -> list[str]:
    """The cells of a column, each its first line (a reason code's explanation follows it)."""
    cells = rows(page).locator(f"td:nth-child({index})").all_inner_texts()
    return [text.strip().splitlines()[0].strip() if text.strip() else "" for text in cells]


@pytest.fixture
def auditor_page(signed_in: Callable[[User], Page], org: Organization) -> Page:
    auditor = MembershipFactory(organization=org, role=Role.AUDITOR, user__username="audrey").user
    return signed_in(auditor)


def test_filter_the_history_and_read_a_denied_attempts_trace(
    auditor_page: Page, history: Issuer
) -> None:
    page = auditor_page
    page.goto("/orgs/acme/history/")
    expect(page.locator("h1")).to_have_text("Exchange history")
    expect(rows(page)).to_have_count(5)
    assert column(page, 2) == ["Denied", "Denied", "Allowed", "Allowed", "Allowed"]
    screenshot(page, "history")

    page.get_by_label("Decision").select_option("deny")
    page.get_by_label("Subject pattern").fill("repo:acme/app:*")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"decision=deny"))
    expect(rows(page)).to_have_count(2)
    assert sorted(column(page, 3)) == ["denied_by_policy", "unknown_kid"]
    page.get_by_label("Reason code").fill("denied_by_policy")
    page.get_by_role("button", name="Filter").click()
    expect(rows(page)).to_have_count(1)
    assert column(page, 3) == ["denied_by_policy"]
    assert column(page, 4) == [APP_PR["sub"]]
    assert column(page, 5) == ["acme/app"]
    expect(page.get_by_label("Subject pattern")).to_have_value("repo:acme/app:*")
    expect(page.locator(".exports")).to_contain_text("Export the filtered history")
    screenshot(page, "history-filtered")

    rows(page).first.locator("td").first.get_by_role("link").click()
    denied = ExchangeEvent.objects.get(reason="denied_by_policy")
    expect(page).to_have_url(re.compile(rf"/orgs/acme/history/{denied.pk}/$"))
    expect(page.locator("h1")).to_contain_text(f"Exchange attempt #{denied.pk}")
    expect(page.locator("h1 .badge")).to_have_text("Denied")
    outcome = page.locator("section.card", has=page.locator("h2", has_text="Outcome"))
    expect(outcome).to_contain_text("denied_by_policy")
    expect(outcome).to_contain_text(f"version {denied.policy_version}")
    claims = page.locator("section.card", has=page.locator("h2", has_text="Subject token"))
    expect(claims.locator("tr", has_text="event_name")).to_contain_text("pull_request")
    trace = page.locator("section.card", has=page.locator("h2", has_text="Policy evaluation"))
    definitions = trace.locator("table.trace").first.locator(":scope > tbody > tr")
    expect(definitions).to_have_count(len(DEFAULT_POLICY))
    applies = definitions.and_(page.locator("tr.applies"))
    expect(applies).to_have_count(1)
    expect(applies.locator("td").nth(1)).to_have_text("deny")
    expect(applies).to_contain_text("event_name")
    expect(applies.locator("td").nth(3)).to_have_text("applies")
    # Every definition that did not apply says why.
    for failure in [d["failure"] for d in denied.trace if not d["applies"]]:
        expect(trace).to_contain_text(failure)
    # Definitions are numbered from 1, as in the policy editor and the simulator.
    expect(definitions.locator(":scope > td:first-child")).to_have_text(
        [str(n) for n in range(1, len(DEFAULT_POLICY) + 1)]
    )
    expect(applies.locator("td").first).to_have_text(str(len(DEFAULT_POLICY)))
    screenshot(page, "history-denied-attempt")

    # The policy version that decided opens in the version history, scrolled to it.
    outcome.get_by_role("link", name=f"version {denied.policy_version}").click()
    expect(page).to_have_url(re.compile(rf"/versions/#version-{denied.policy_version}$"))
    expect(page.locator(f"#version-{denied.policy_version} h2")).to_contain_text(
        f"Version {denied.policy_version}"
    )
    expect(page.locator(f"#version-{denied.policy_version}")).to_be_in_viewport()


def test_export_the_filtered_history(auditor_page: Page, history: Issuer) -> None:
    page = auditor_page
    page.goto("/orgs/acme/history/?decision=allow")
    expect(rows(page)).to_have_count(3)
    with page.expect_download() as download_info:
        page.locator(".exports").get_by_role("link", name="CSV").click()
    download = download_info.value
    assert re.fullmatch(r"exchanges-acme-\d{8}T\d{6}Z\.csv", download.suggested_filename)
    exported = list(csv.DictReader(io.StringIO(download.path().read_text(encoding="utf-8"))))
    assert [row["decision"] for row in exported] == ["allow"] * 3
    assert sorted(row["sub"] for row in exported) == sorted(
        [INFRA_MAIN["sub"], INFRA_MAIN["sub"], WEB_MAIN["sub"]]
    )
    with page.expect_download() as download_info:
        page.locator(".exports").get_by_role("link", name="JSON lines").click()
    lines = download_info.value.path().read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["decision"] for line in lines] == ["allow"] * 3


def test_bulk_revoke_with_preview(
    signed_in: Callable[[User], Page], org_admin: User, history: Issuer
) -> None:
    page = signed_in(org_admin)
    page.goto("/orgs/acme/tokens/revoke/")
    expect(page.locator("h1")).to_have_text("Revoke tokens by filter")
    expect(page.locator(".note")).to_contain_text("Choose at least one filter")
    page.get_by_label("Repository pattern").fill("acme/infra")
    page.get_by_role("button", name="Preview").click()
    preview = page.locator("section.card")
    expect(preview.locator("h2")).to_have_text("2 active tokens will be revoked")
    expect(preview.locator("tbody tr")).to_have_count(2)
    for cell in preview.locator("tbody tr td:nth-child(3)").all():
        expect(cell).to_have_text(INFRA_MAIN["sub"])
    screenshot(page, "revoke-preview")
    assert AccessToken.objects.filter(revoked_at__isnull=True).count() == 3, (
        "preview revokes nothing"
    )

    page.get_by_label("Reason (kept with each token)").fill("rotating infra credentials")
    page.get_by_label("Yes, revoke these 2 tokens").check()
    page.get_by_role("button", name="Revoke 2 tokens").click()
    expect(page.locator(".messages")).to_contain_text("Revoked 2 tokens.")
    expect(page).to_have_url(re.compile(r"/orgs/acme/tokens/\?.*status=revoked"))
    expect(rows(page)).to_have_count(2)
    assert column(page, 9) == ["Revoked", "Revoked"]
    screenshot(page, "tokens-revoked")
    still_active = AccessToken.objects.filter(revoked_at__isnull=True)
    assert [token.subject for token in still_active] == [WEB_MAIN["sub"]]


def test_a_refused_exchange_is_found_by_its_request_id(
    auditor_page: Page, history: Issuer, local_issuer: DevIssuer
) -> None:
    """The request id a refused job prints leads the admin to that one attempt."""
    body = exchange_body(local_issuer.mint(APP_PR, audience=AUDIENCE), scope="admin")
    refused = APIClient().post("/api/oauth/token", body, format="json")
    assert refused.status_code == 400
    request_id = refused["X-Request-Id"]
    attempt = ExchangeEvent.objects.get(request_id=request_id)

    page = auditor_page
    page.goto("/orgs/acme/")
    page.get_by_label("Find an exchange by request id").fill(request_id)
    page.get_by_role("button", name="Find").click()
    expect(page).to_have_url(re.compile(rf"/orgs/acme/history/\?requestId={request_id}$"))
    expect(rows(page)).to_have_count(1)
    assert column(page, 2) == ["Denied"]
    assert column(page, 3) == ["denied_by_policy"]
    expect(page.get_by_label("Request id")).to_have_value(request_id)
    screenshot(page, "history-request-id")
    rows(page).first.locator("td").first.get_by_role("link").click()
    expect(page.locator("h1")).to_contain_text(f"Exchange attempt #{attempt.pk}")

    # A request id that matches nothing says so instead of showing everything.
    page.goto("/orgs/acme/history/?requestId=no-such-request")
    expect(rows(page)).to_have_count(0)
