"""The organization dashboard: chart, top subjects and deny reasons, issuer health, tokens."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from issuers.models import Issuer
from portal.tokens.charts import daily_chart, nice_ceiling
from tests.factories import make_event
from tests.text import visible_text
from tests.tokens.conftest import signed_in
from tokens.reasons import REASONS
from tokens.selectors import DayCount, exchanges_per_day
from tokens.services import token_create

pytestmark = pytest.mark.django_db


def dashboard_url(org: str = "acme") -> str:
    return reverse("tokens:dashboard", kwargs={"org": org})


@pytest.fixture
def activity(people) -> None:
    acme = people["acme"]
    now = timezone.now()
    for _ in range(3):
        make_event(acme, created=now, decision="allow", reason="allowed", sub="repo:acme/top:main")
    make_event(acme, created=now - timedelta(days=1), reason="bad_signature", sub="repo:acme/x:y")
    make_event(acme, created=now - timedelta(days=2), reason="bad_signature", sub="repo:acme/x:y")
    make_event(acme, created=now - timedelta(days=2), reason="expired", sub="repo:acme/x:y")
    make_event(acme, created=now - timedelta(days=45), reason="too_old", sub="repo:acme/old:y")
    make_event(people["beta"], created=now, reason="beta_reason", sub="repo:beta/secret:y")
    token_create(token_type="organization", organization=acme)
    token_create(token_type="organization", organization=acme, expires=now - timedelta(hours=1))
    Issuer.objects.create(
        organization=acme,
        name="github",
        url="https://gh",
        issuer="https://gh",
        thumbprints=["ab" * 32],
        cert_sha256="ab" * 32,
        cert_not_after=now + timedelta(days=3),
    )


def test_dashboard_shows_chart_tops_health_and_tokens(activity) -> None:
    response = signed_in("audrey").get(dashboard_url())
    assert response.status_code == 200
    page = response.content.decode()
    assert '<svg class="chart"' in page
    assert page.count('class="bar-allow"') == 30 and page.count('class="bar-deny"') == 30
    assert "Allowed: 3" in page and "Denied: 3" in page  # the 45-day-old attempt is outside
    text = visible_text(page)
    assert "repo:acme/top:main 3" in text and "repo:acme/old:y" not in text
    assert f"bad_signature {REASONS['bad_signature']} 2" in text
    assert "beta" not in page.replace("Beta", "")  # nothing of another organization
    assert "github" in page and "pinned certificate expires" in page
    assert re.search(r'<span class="stat">1</span> active now', page)


def test_dashboard_links_to_the_organizations_pages(people) -> None:
    page = signed_in("alice").get(dashboard_url()).content.decode()
    for href in (
        "/orgs/acme/issuers/",
        "/orgs/acme/history/",
        "/orgs/acme/tokens/",
        "/orgs/acme/environments/",
    ):
        assert f'href="{href}"' in page, href


def test_dashboard_follows_the_csp(activity) -> None:
    page = signed_in("alice").get(dashboard_url()).content.decode()
    assert "style=" not in page and "<script" not in page
    # Everything it loads or links is on this site: no CDN, no external chart library.
    assert all(
        url.startswith(("/", "#", "?")) for url in re.findall(r'(?:src|href)="([^"]*)"', page)
    )


def test_dashboard_access(people) -> None:
    assert signed_in("alice").get(dashboard_url()).status_code == 200
    assert signed_in("audrey").get(dashboard_url()).status_code == 200
    assert signed_in("mallory").get(dashboard_url()).status_code == 403
    assert signed_in("bob").get(dashboard_url()).status_code == 404
    assert signed_in("bob").get(dashboard_url("nope")).status_code == 404


def test_landing_page_links_each_org_to_its_dashboard(people) -> None:
    page = signed_in("audrey").get("/").content.decode()
    assert f'href="{dashboard_url()}"' in page
    member = signed_in("mallory").get("/").content.decode()
    assert f'href="{dashboard_url()}"' not in member  # members have no dashboard


def test_other_org_pages_are_not_shadowed(people) -> None:
    """The dashboard include comes after orgs/<org>/issuers/ and friends."""
    client = signed_in("alice")
    assert client.get("/orgs/acme/issuers/").templates[0].name == "issuers/list.html"


def test_exchanges_per_day_fills_gaps(people) -> None:
    now = timezone.now()
    make_event(people["acme"], created=now, decision="allow", reason="allowed")
    make_event(people["acme"], created=now - timedelta(days=2))
    days = exchanges_per_day(organization=people["acme"], days=5, now=now)
    assert [d.day for d in days] == [now.date() - timedelta(days=4 - i) for i in range(5)]
    assert [(d.allowed, d.denied) for d in days] == [(0, 0), (0, 0), (0, 1), (0, 0), (1, 0)]


@pytest.mark.parametrize(
    ("value", "ceiling"), [(0, 1), (1, 1), (2, 2), (3, 5), (7, 10), (10, 10), (11, 20), (480, 500)]
)
def test_nice_ceiling(value: int, ceiling: int) -> None:
    assert nice_ceiling(value) == ceiling


def test_chart_geometry() -> None:
    days = [
        DayCount(day=date(2026, 3, 1) + timedelta(days=i), allowed=i, denied=10 - i)
        for i in range(11)
    ]
    chart = daily_chart(days)
    assert len(chart.bars) == 22 and chart.allowed == 55 and chart.denied == 55
    tallest = max(chart.bars, key=lambda b: float(b.height))
    assert float(tallest.y) == 10.0  # reaches the top of the plot (TOP margin)
    assert float(chart.bars[1].height) == pytest.approx(float(tallest.height))  # denied=10 on day 0
    assert chart.bars[0].height == "0.0" and chart.bars[0].title == "2026-03-01: 0 allowed"
    assert [t.label for t in chart.ticks] == ["0", "5", "10"]
    assert [label.label for label in chart.labels] == ["03-01", "03-06", "03-11"]
