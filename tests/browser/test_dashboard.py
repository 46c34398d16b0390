"""The organization dashboard in a real browser: the chart is drawn, the tables are filled."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from issuers.models import Issuer
from policies.models import AuthPolicy
from tests.browser.conftest import screenshot
from tests.factories import make_event
from tokens.reasons import REASONS
from trustportal.models import Organization, User

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_dashboard_draws_allowed_and_denied_per_day(
    signed_in: Callable[[User], Page], org: Organization, org_admin: User
) -> None:
    now = timezone.now()
    for _ in range(3):
        make_event(org, created=now, decision="allow", reason="allowed", sub="repo:acme/top:main")
    make_event(org, created=now - timedelta(days=1), reason="bad_signature", sub="repo:acme/x:y")
    make_event(org, created=now - timedelta(days=2), reason="bad_signature", sub="repo:acme/x:y")
    page = signed_in(org_admin)
    page.goto("/orgs/acme/")
    expect(page.locator("h1")).to_have_text("ACME Corp")

    chart = page.locator('svg.chart[aria-labelledby="chart-title"]')
    expect(chart).to_be_visible()
    expect(chart.locator("title#chart-title")).to_have_text(
        "Allowed and denied exchanges per day (3 allowed, 2 denied)"
    )
    allowed = chart.locator("rect.bar-allow")
    denied = chart.locator("rect.bar-deny")
    expect(allowed).to_have_count(30)
    expect(denied).to_have_count(30)
    drawn = [
        (kind, rect.get_attribute("height"), rect.locator("title").text_content())
        for kind, bars in (("allow", allowed), ("deny", denied))
        for rect in bars.all()
        if float(rect.get_attribute("height") or 0) > 0
    ]
    assert [(kind, title) for kind, _height, title in drawn] == [
        ("allow", f"{now:%Y-%m-%d}: 3 allowed"),
        ("deny", f"{now - timedelta(days=2):%Y-%m-%d}: 1 denied"),
        ("deny", f"{now - timedelta(days=1):%Y-%m-%d}: 1 denied"),
    ]
    # Drawn at a readable size, the two series coloured apart by the style sheet (no style=).
    box = chart.bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 100
    allow_fill = allowed.first.evaluate("bar => getComputedStyle(bar).fill")
    deny_fill = denied.first.evaluate("bar => getComputedStyle(bar).fill")
    assert allow_fill != deny_fill and "rgb" in allow_fill
    expect(page.locator(".legend")).to_contain_text("Allowed: 3")
    expect(page.locator(".legend")).to_contain_text("Denied: 2")

    subjects = page.locator("section.card", has=page.locator("h2", has_text="Top subjects"))
    expect(subjects.locator("tbody tr td")).to_have_text(
        ["repo:acme/top:main", "3", "repo:acme/x:y", "2"]
    )
    reasons = page.locator("section.card", has=page.locator("h2", has_text="Top deny reasons"))
    expect(reasons.locator("tbody tr td")).to_have_text(
        [f"bad_signature{REASONS['bad_signature']}", "2"]
    )
    health = page.locator("section.card", has=page.locator("h2", has_text="Issuers and key health"))
    expect(health).to_contain_text("No issuer is registered yet.")
    expect(health.get_by_role("link", name="Register one")).to_have_attribute(
        "href", "/orgs/acme/issuers/register/"
    )
    screenshot(page, "dashboard")


def test_a_new_organization_gets_a_checklist_instead_of_an_empty_chart(
    signed_in: Callable[[User], Page], org: Organization, org_admin: User
) -> None:
    page = signed_in(org_admin)
    page.goto("/orgs/acme/")
    checklist = page.locator("section.getting-started")
    expect(checklist.locator("h2")).to_have_text("Get started")
    steps = checklist.locator("ol.checklist > li")
    expect(steps).to_have_count(3)
    expect(checklist.locator("li.todo")).to_have_count(3)
    expect(steps.nth(0).get_by_role("link")).to_have_attribute(
        "href", "/orgs/acme/issuers/register/"
    )
    expect(checklist.locator("pre.copy")).to_contain_text(
        f"trustportal-login --url {page.url.split('/orgs/')[0]} --org acme"
    )
    expect(page.locator("svg.chart")).to_have_count(0)
    screenshot(page, "dashboard-getting-started")


def test_dashboard_charts_denials_by_reason_issuers_and_repositories(
    signed_in: Callable[[User], Page], org: Organization, org_admin: User
) -> None:
    now = timezone.now()
    issuer = Issuer.objects.create(
        organization=org,
        name="github",
        url="https://gh",
        issuer="https://gh",
        thumbprints=["ab" * 32],
    )
    AuthPolicy.objects.create(
        organization=org,
        issuer=issuer,
        definitions=[{"decision": "allow", "tokenType": "organization", "rules": {"sub": "*"}}],
    )
    plan = [
        ("allowed", "allow", 0, 4, "acme/infra"),
        ("bad_signature", "deny", 1, 3, "acme/infra"),
        ("token_expired", "deny", 2, 2, "acme/app"),
        ("no_matching_policy", "deny", 2, 1, "acme/web"),
        ("unknown_kid", "deny", 5, 1, "acme/app"),
    ]
    for reason, decision, days_ago, times, repository in plan:
        for _ in range(times):
            make_event(
                org,
                issuer_id=issuer.pk,
                decision=decision,
                reason=reason,
                created=now - timedelta(days=days_ago),
                claims={"repository": repository},
            )
    page = signed_in(org_admin)
    page.goto("/orgs/acme/")
    expect(page.locator("section.getting-started")).to_have_count(0)

    denials = page.locator("section.card", has=page.locator("h2", has_text="Denials by reason"))
    chart = denials.locator("svg.chart")
    expect(chart.locator("title").first).to_have_text(
        "Denied exchanges per day, stacked by reason (7 denied)"
    )
    expect(chart.locator("rect")).to_have_count(4)
    fills = {
        rect.evaluate("bar => getComputedStyle(bar).fill") for rect in chart.locator("rect").all()
    }
    assert len(fills) == 4  # every reason in its own colour, from the style sheet
    expect(denials.locator(".legend-list li").first).to_contain_text("bad_signature: 3")
    expect(denials.locator(".legend-list li").first).to_contain_text(REASONS["bad_signature"])

    issuers = page.locator("section.card", has=page.locator("h2", has_text="Exchanges per issuer"))
    expect(issuers.locator("tbody tr td.num")).to_have_text(["4", "7"])
    repositories = page.locator(
        "section.card", has=page.locator("h2", has_text="Exchanges per repository")
    )
    expect(repositories.locator("tbody tr td.mono")).to_have_text(
        ["acme/infra", "acme/app", "acme/web"]
    )
    bar = repositories.locator("svg.hbar").first.bounding_box()
    assert bar is not None and bar["width"] > 50
    screenshot(page, "dashboard-charts")
