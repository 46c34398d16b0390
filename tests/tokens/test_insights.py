"""The dashboard's getting-started checklist and chart data (selectors and geometry)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from issuers.models import Issuer
from policies.models import AuthPolicy
from portal.tokens.charts import bar_rows, stacked_chart
from portal.tokens.dashboard import portal_url
from tests.factories import make_event
from tests.text import visible_text
from tests.tokens.conftest import people, signed_in  # noqa: F401  (fixture)
from tokens.insights import (
    OTHER,
    Split,
    denials_by_reason,
    exchanges_per_issuer,
    exchanges_per_repository,
    getting_started,
)
from trustportal.models import Organization

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
ALLOW = {"decision": "allow", "tokenType": "organization", "rules": {"sub": "repo:acme/*"}}
DENY = {"decision": "deny", "tokenType": "organization", "rules": {"sub": "repo:evil/*"}}


def make_issuer(organization: Organization, name: str = "github", *definitions: dict) -> Issuer:
    issuer = Issuer.objects.create(
        organization=organization,
        name=name,
        url=f"https://{name}.example",
        issuer=f"https://{name}.example",
        thumbprints=["ab" * 32],
    )
    AuthPolicy.objects.create(
        organization=organization, issuer=issuer, definitions=list(definitions)
    )
    return issuer


def dashboard(username: str = "alice") -> str:
    return visible_text(
        signed_in(username).get(reverse("tokens:dashboard", kwargs={"org": "acme"}))
    )


# --- the checklist -----------------------------------------------------------------------------
def test_a_new_organization_sees_three_open_steps_and_no_empty_chart(people) -> None:  # noqa: F811
    progress = getting_started(people["acme"])
    assert (progress.has_issuer, progress.has_allow, progress.has_exchange) == (False,) * 3
    assert not progress.complete and not progress.attempted
    response = signed_in("alice").get(reverse("tokens:dashboard", kwargs={"org": "acme"}))
    page = response.content.decode()
    text = visible_text(response)
    assert "Get started" in text and text.count("To do") == 3 and "Done" not in text
    assert 'href="/orgs/acme/issuers/register/"' in page
    assert 'eval "$(trustportal-login --url http://testserver --org acme)"' in text
    assert '<svg class="chart"' not in page and "Exchanges per day" not in text


def test_steps_tick_as_the_organization_gets_there(people) -> None:  # noqa: F811
    acme = people["acme"]
    issuer = make_issuer(acme, "github", DENY)
    progress = getting_started(acme)
    assert (progress.has_issuer, progress.has_allow, progress.has_exchange) == (True, False, False)
    page = signed_in("alice").get(reverse("tokens:dashboard", kwargs={"org": "acme"}))
    assert f'href="/orgs/acme/policies/{issuer.pk}/"' in page.content.decode()
    assert visible_text(page).count("Done") == 1

    AuthPolicy.objects.filter(issuer=issuer).update(definitions=[DENY, ALLOW])
    make_event(acme, reason="denied_by_policy")
    progress = getting_started(acme)
    assert (progress.has_allow, progress.attempted, progress.has_exchange) == (True, True, False)
    text = dashboard()
    assert text.count("Done") == 2 and "none was allowed yet" in text
    assert "Exchanges per day" in text  # the attempts are charted beside the checklist

    make_event(acme, decision="allow", reason="allowed")
    assert getting_started(acme).complete
    assert "Get started" not in dashboard()


def test_another_organizations_setup_counts_for_nothing(people) -> None:  # noqa: F811
    make_issuer(people["beta"], "github", ALLOW)
    make_event(people["beta"], decision="allow", reason="allowed")
    progress = getting_started(people["acme"])
    assert not (progress.has_issuer or progress.has_allow or progress.attempted)


def test_the_command_names_the_public_url_when_it_is_set(settings) -> None:
    request = RequestFactory().get("/orgs/acme/", HTTP_HOST="localhost:8443")
    assert portal_url(request) == "http://localhost:8443"
    settings.TRUSTPORTAL = type(settings.TRUSTPORTAL)(public_url="https://portal.example.com")
    assert portal_url(request) == "https://portal.example.com"


# --- chart data --------------------------------------------------------------------------------
def test_denials_by_reason_stack_the_top_reasons_per_day_and_group_the_rest(people) -> None:  # noqa: F811
    acme = people["acme"]
    day1, day2 = NOW - timedelta(days=1), NOW
    for reason, when, times in [
        ("bad_signature", day1, 3),
        ("bad_signature", day2, 1),
        ("token_expired", day2, 2),
        ("unknown_kid", day1, 1),
        ("jti_replayed", day2, 1),
    ]:
        for _ in range(times):
            make_event(acme, reason=reason, created=when)
    make_event(acme, decision="allow", reason="allowed", created=day2)
    make_event(acme, reason="bad_signature", created=NOW - timedelta(days=40))
    make_event(people["beta"], reason="bad_signature", created=day2)

    data = denials_by_reason(organization=acme, days=7, now=NOW, top=2)
    assert data.reasons == ("bad_signature", "token_expired", OTHER)
    assert len(data.days) == 7 and data.days[-1].day == NOW.date()
    assert data.days[-2].counts == (3, 0, 1) and data.days[-1].counts == (1, 2, 1)
    assert data.total == 8 and all(day.total == 0 for day in data.days[:-2])

    chart = stacked_chart(data)
    assert [s.name for s in chart.series] == ["bad_signature", "token_expired", OTHER]
    assert [s.total for s in chart.series] == [4, 2, 2]
    assert len(chart.bars) == 5  # one rect per non-empty (day, reason)
    assert [day.day for day in chart.table] == [day1.date(), day2.date()]
    # Stacked: each day's segments sit on top of each other, up from the baseline.
    last = [bar for bar in chart.bars if bar.title.startswith(f"{NOW:%Y-%m-%d}")]
    assert float(last[0].y) + float(last[0].height) == pytest.approx(float(chart.baseline))
    assert float(last[1].y) + float(last[1].height) == pytest.approx(float(last[0].y))


def test_exchanges_per_issuer_and_repository(people) -> None:  # noqa: F811
    acme = people["acme"]
    now = timezone.now()
    github, gitlab = make_issuer(acme, "github"), make_issuer(acme, "gitlab")
    for issuer, repository, decision, times in [
        (github, "acme/infra", "allow", 3),
        (github, "acme/infra", "deny", 1),
        (gitlab, "acme/app", "deny", 2),
        (None, "", "deny", 4),  # refused before an issuer was resolved
    ]:
        for _ in range(times):
            make_event(
                acme,
                issuer_id=issuer.pk if issuer else None,
                decision=decision,
                reason="allowed" if decision == "allow" else "bad_signature",
                claims={"repository": repository} if repository else {"repository": 7},
                created=now,
            )
    make_event(people["beta"], claims={"repository": "beta/secret"}, created=now)

    issuers = exchanges_per_issuer(organization=acme, days=7, now=now)
    assert [(s.label, s.allowed, s.denied) for s in issuers] == [("github", 3, 1), ("gitlab", 0, 2)]
    assert issuers[0].key == str(github.pk)
    repositories = exchanges_per_repository(organization=acme, days=7, now=now, limit=1)
    assert [(s.label, s.allowed, s.denied) for s in repositories] == [("acme/infra", 3, 1)]

    rows = bar_rows(issuers)
    assert [(r.allow_width, r.deny_x, r.deny_width) for r in rows] == [
        ("180.0", "180.0", "60.0"),
        ("0.0", "0.0", "120.0"),
    ]
    text = dashboard("audrey")
    assert "Exchanges per issuer" in text and "github 3 1" in text and "acme/infra 3 1" in text
    assert "beta/secret" not in text


def test_bar_rows_of_nothing() -> None:
    assert bar_rows([]) == []
    assert bar_rows([Split(label="x", key="x", allowed=0, denied=0)])[0].allow_width == "0.0"


def test_the_dashboard_charts_follow_the_csp(people) -> None:  # noqa: F811
    make_issuer(people["acme"], "github", ALLOW)
    make_event(people["acme"], reason="bad_signature", claims={"repository": "acme/x"})
    page = signed_in("alice").get(reverse("tokens:dashboard", kwargs={"org": "acme"}))
    html = page.content.decode()
    assert "style=" not in html and "<script" not in html
    assert 'aria-labelledby="denials-chart-title"' in html and "<table" in html
