"""The exchange history pages: every filter, keyset pages, the detail page, both exports, access."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.urls import reverse
from django.utils.html import escape

from issuers.models import Issuer
from policies.patterns import compile_pattern
from tests.conftest import auth
from tests.factories import make_event
from tests.tokens.conftest import AUDIENCE, exchange_body, signed_in
from tokens.filters import FilterError, event_filters_from, parse_time
from tokens.models import AccessToken, ExchangeEvent
from tokens.patterns import glob_text, like_text, matches_pattern

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def history_url(org: str = "acme", **params: Any) -> str:
    from urllib.parse import urlencode

    url = reverse("tokens:history", kwargs={"org": org})
    return url + ("?" + urlencode(params) if params else "")


def event_ids(response: Any) -> list[int]:
    """Ids of the events listed on a history page, in page order."""
    return [int(i) for i in re.findall(r'/history/(\d+)/"', response.content.decode())]


@pytest.fixture
def issuers(people) -> dict[str, Issuer]:
    acme = people["acme"]
    return {
        "gh": Issuer.objects.create(
            organization=acme, name="github", url="https://gh", issuer="https://gh"
        ),
        "gl": Issuer.objects.create(
            organization=acme, name="gitlab", url="https://gl", issuer="https://gl"
        ),
    }


@pytest.fixture
def events(people, issuers) -> dict[str, ExchangeEvent]:
    """A small, varied history of acme, and one event of beta that must never show."""
    acme = people["acme"]
    gh, gl = issuers["gh"], issuers["gl"]
    return {
        "allowed": make_event(
            acme,
            created=T0,
            issuer=gh,
            decision="allow",
            reason="allowed",
            error="",
            sub="repo:acme/infra:ref:refs/heads/main",
            claims={"repository": "acme/infra", "actor": "octocat"},
        ),
        "denied": make_event(
            acme,
            created=T0 + timedelta(hours=1),
            issuer=gh,
            sub="repo:acme/app:pull_request",
            claims={"repository": "acme/app"},
        ),
        "team": make_event(
            acme,
            created=T0 + timedelta(days=1),
            issuer=gl,
            decision="allow",
            reason="allowed",
            error="",
            sub="project_path:acme/deploy:ref_type:branch:ref:main",
            requested_token_type="team",
            claims={"project_path": "acme/deploy"},
        ),
        "bad_sig": make_event(
            acme,
            created=T0 + timedelta(days=2),
            issuer=gh,
            reason="bad_signature",
            sub="repo:ACME/infra:ref:refs/heads/main",
            claims={"repository": "ACME/infra"},
        ),
        "other_org": make_event(people["beta"], created=T0, sub="repo:acme/infra:secret"),
    }


def test_the_history_lists_the_orgs_events_newest_first(people, events) -> None:
    response = signed_in("audrey").get(history_url())
    assert response.status_code == 200
    expected = [events[k].pk for k in ("bad_sig", "team", "denied", "allowed")]
    assert event_ids(response) == expected
    assert events["other_org"].pk not in event_ids(response)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"decision": "allow"}, ["team", "allowed"]),
        ({"decision": "deny"}, ["bad_sig", "denied"]),
        ({"reason": "bad_signature"}, ["bad_sig"]),
        ({"type": "team"}, ["team"]),
        ({"subject": "repo:acme/*"}, ["denied", "allowed"]),
        ({"subject": "repo:acme/infra:ref:refs/heads/main"}, ["allowed"]),
        ({"subject": "repo:acme/???:*"}, ["denied"]),
        ({"subject": "*:pull_request"}, ["denied"]),
        ({"subject": "repo:*/infra:*"}, ["bad_sig", "allowed"]),  # case-sensitive: both
        ({"repository": "acme/infra"}, ["allowed"]),  # not ACME/infra
        ({"repository": "acme/*"}, ["denied", "allowed"]),
        ({"since": "2026-03-02"}, ["bad_sig", "team"]),
        ({"until": "2026-03-01"}, ["denied", "allowed"]),  # a date means its whole day
        ({"since": "2026-03-01T12:30:00Z", "until": "2026-03-02T13:00"}, ["team", "denied"]),
        ({"decision": "deny", "subject": "repo:acme/*"}, ["denied"]),
    ],
)
def test_each_filter(people, events, params: dict[str, str], expected: list[str]) -> None:
    response = signed_in("audrey").get(history_url(**params))
    assert response.status_code == 200
    assert event_ids(response) == [events[k].pk for k in expected]


def test_issuer_filter(people, events, issuers) -> None:
    response = signed_in("audrey").get(history_url(issuer=str(issuers["gl"].pk)))
    assert event_ids(response) == [events["team"].pk]


def test_bad_filters_are_explained_not_a_500(people, events) -> None:
    response = signed_in("audrey").get(
        history_url(issuer="nope", since="yesterday", subject="bad\\escape")
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "must be an id" in page and "must be a date" in page and "unknown escape" in page


def test_keyset_pages_without_counting(people, django_assert_max_num_queries) -> None:
    acme = people["acme"]
    created = [make_event(acme, created=T0 + timedelta(seconds=i)) for i in range(120)]
    newest_first = [e.pk for e in reversed(created)]
    client = signed_in("audrey")
    first = client.get(history_url())
    assert event_ids(first) == newest_first[:50]
    cursor = re.search(r'href="\?before=(\d+)"', first.content.decode())
    assert cursor is not None and int(cursor.group(1)) == newest_first[49]
    second = client.get(history_url(before=cursor.group(1)))
    assert event_ids(second) == newest_first[50:100]
    third = client.get(history_url(before=str(newest_first[99])))
    assert event_ids(third) == newest_first[100:]
    assert "?before=" not in third.content.decode()  # no next page
    with django_assert_max_num_queries(8) as captured:
        client.get(history_url())
    assert not any("COUNT(" in q["sql"].upper() for q in captured.captured_queries)


def test_next_page_links_keep_the_filters(people) -> None:
    acme = people["acme"]
    for i in range(55):
        make_event(acme, created=T0 + timedelta(seconds=i), reason="bad_signature")
    page = signed_in("audrey").get(history_url(reason="bad_signature")).content.decode()
    assert re.search(r'href="\?reason=bad_signature&amp;before=\d+"', page)


def test_detail_page_shows_request_claims_trace_token_and_links(
    people, trusted, local_issuer, api_client
) -> None:
    token = local_issuer.mint({"actor": "octocat", "repository": "acme/infra"}, audience=AUDIENCE)
    response = api_client.post(
        "/api/oauth/token", exchange_body(token, scope="admin"), format="json"
    )
    assert response.status_code == 200
    denied = local_issuer.mint({"event_name": "pull_request"}, audience=AUDIENCE)
    api_client.post("/api/oauth/token", exchange_body(denied, scope="admin"), format="json")
    allowed_event, denied_event = ExchangeEvent.objects.order_by("id")
    minted = AccessToken.objects.get()
    client = signed_in("audrey")

    page = client.get(reverse("tokens:event", args=["acme", allowed_event.pk])).content.decode()
    assert allowed_event.request_id in page and "octocat" in page and "acme/infra" in page
    versions = f"/orgs/acme/policies/{trusted.pk}/versions/"
    assert f"{versions}#version-{allowed_event.policy_version}" in page
    assert reverse("tokens:token", args=["acme", minted.pk]) in page
    assert minted.prefix in page and f"/orgs/acme/issuers/{trusted.pk}/" in page
    assert "repo:acme/infra:ref:refs/heads/main" in page  # the matched sub pattern

    page = client.get(reverse("tokens:event", args=["acme", denied_event.pk])).content.decode()
    assert "denied_by_policy" in page and "pull_request" in page
    assert 'class="applies"' in page  # the deny definition that applied
    failures = [d["failure"] for d in denied_event.trace if not d["applies"]]
    assert failures and all(escape(f) in page for f in failures)  # why each did not apply

    token_page = client.get(reverse("tokens:token", args=["acme", minted.pk])).content.decode()
    assert reverse("tokens:event", args=["acme", allowed_event.pk]) in token_page
    assert f"/orgs/acme/policies/{trusted.pk}/versions/" in token_page


def test_detail_of_a_purged_token_says_so(people) -> None:
    event = make_event(people["acme"], decision="allow", reason="allowed", token_id=999_999)
    page = signed_in("audrey").get(reverse("tokens:event", args=["acme", event.pk]))
    assert "purged" in page.content.decode()


def read_stream(response: Any) -> str:
    assert response.streaming
    return b"".join(response.streaming_content).decode()


def test_csv_export_of_the_filtered_set(people, events) -> None:
    url = reverse("tokens:history-export", args=["acme", "csv"]) + "?decision=deny"
    response = signed_in("audrey").get(url)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith('attachment; filename="exchanges-acme-')
    rows = list(csv.DictReader(io.StringIO(read_stream(response))))
    assert [int(r["id"]) for r in rows] == [events["bad_sig"].pk, events["denied"].pk]
    assert rows[1]["sub"] == "repo:acme/app:pull_request"
    assert rows[1]["repository"] == "acme/app"
    assert json.loads(rows[1]["claims"])["repository"] == "acme/app"


def test_csv_cells_that_look_like_formulas_are_neutralised(people) -> None:
    make_event(people["acme"], sub='=HYPERLINK("http://evil")', claims={"x": "+1"})
    url = reverse("tokens:history-export", args=["acme", "csv"])
    rows = list(csv.DictReader(io.StringIO(read_stream(signed_in("audrey").get(url)))))
    assert rows[0]["sub"].startswith("'=")


def test_jsonl_export_has_claims_and_trace(people, events) -> None:
    url = reverse("tokens:history-export", args=["acme", "jsonl"]) + "?subject=repo:acme/*"
    response = signed_in("audrey").get(url)
    assert response["Content-Type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in read_stream(response).splitlines()]
    assert [line["id"] for line in lines] == [str(events["denied"].pk), str(events["allowed"].pk)]
    assert lines[1]["claims"]["actor"] == "octocat" and "trace" in lines[1]
    assert lines[1]["issuerId"] == str(events["allowed"].issuer_id)


def test_export_uses_a_chunked_iterator(people, events, monkeypatch) -> None:
    """The export never materialises the set: it walks `.iterator(chunk_size=…)`."""
    seen: list[int] = []
    original = ExchangeEvent.objects.none().__class__.iterator

    def spy(self, chunk_size=None):
        seen.append(chunk_size)
        return original(self, chunk_size=chunk_size)

    monkeypatch.setattr(ExchangeEvent.objects.none().__class__, "iterator", spy)
    url = reverse("tokens:history-export", args=["acme", "jsonl"])
    assert len(read_stream(signed_in("audrey").get(url)).splitlines()) == 4
    assert seen == [2000]


def test_export_refuses_unknown_formats_and_bad_filters(people) -> None:
    client = signed_in("audrey")
    assert client.get(reverse("tokens:history-export", args=["acme", "xml"])).status_code == 404
    url = reverse("tokens:history-export", args=["acme", "csv"]) + "?decision=maybe"
    assert client.get(url).status_code == 400


@pytest.mark.parametrize("username", ["alice", "audrey"])
def test_admins_and_auditors_read_history(people, events, username: str) -> None:
    client = signed_in(username)
    event = events["denied"]
    assert client.get(history_url()).status_code == 200
    assert client.get(reverse("tokens:event", args=["acme", event.pk])).status_code == 200
    assert client.get(reverse("tokens:history-export", args=["acme", "csv"])).status_code == 200


def test_members_are_refused_and_other_orgs_are_not_found(people, events) -> None:
    event = events["denied"]
    urls = [
        history_url(),
        reverse("tokens:event", args=["acme", event.pk]),
        reverse("tokens:history-export", args=["acme", "csv"]),
    ]
    for url in urls:
        assert signed_in("mallory").get(url).status_code == 403
        assert signed_in("bob").get(url).status_code == 404
    # beta's admin cannot read acme's event through beta either.
    assert signed_in("bob").get(reverse("tokens:event", args=["beta", event.pk])).status_code == 404
    assert (
        signed_in("audrey")
        .get(reverse("tokens:event", args=["acme", events["other_org"].pk]))
        .status_code
        == 404
    )


def test_history_needs_sign_in(people) -> None:
    from django.test import Client

    response = Client().get(history_url())
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_history_pages_follow_the_csp(people, events) -> None:
    client = signed_in("alice")
    for url in (history_url(), reverse("tokens:event", args=["acme", events["allowed"].pk])):
        page = client.get(url).content.decode()
        assert "style=" not in page and "<script" not in page


def test_history_writes_nothing_on_post(people) -> None:
    assert signed_in("alice").post(history_url()).status_code == 405


# --- the pattern language in SQL -------------------------------------------------------------
VALUES = [
    "repo:acme/infra:ref:refs/heads/main",
    "repo:acme/infra",
    "repo:ACME/infra:ref:refs/heads/main",
    "repo:acme.io/x",
    "repo:acmexio/x",
    "100%_sure",
    "100ab_sure",
    "a*b",
    "axb",
    "a?b",
    "a\\b",
    "[x]",
    "x",
    "é",
    "日本",
    "",
]
PATTERNS = [
    "repo:acme/infra:*",
    "repo:acme/*",
    "repo:*",
    "*infra*",
    "repo:acme.io/x",
    "repo:acme?io/x",
    "100%_sure",
    "100*_sure",
    "a\\*b",
    "a*b",
    "a\\?b",
    "a?b",
    "a\\\\b",
    "[x]",
    "[*",
    "?",
    "??",
    "*",
    "REPO:*",
]


@pytest.mark.parametrize("source", PATTERNS)
def test_sql_patterns_match_exactly_like_policy_patterns(people, source: str) -> None:
    """The database answers exactly what `compile_pattern(...).matches` answers, per value."""
    acme = people["acme"]
    by_sub = {make_event(acme, sub=value, claims={"sub": value}).pk: value for value in VALUES}
    pattern = compile_pattern(source)
    found = set(
        ExchangeEvent.objects.filter(pk__in=by_sub)
        .filter(matches_pattern("sub", pattern))
        .values_list("pk", flat=True)
    )
    expected = {pk for pk, value in by_sub.items() if pattern.matches(value)}
    assert {by_sub[pk] for pk in found} == {by_sub[pk] for pk in expected}


@pytest.mark.parametrize(
    ("source", "like", "glob"),
    [
        ("repo:acme/*", "repo:acme/%", "repo:acme/*"),
        ("a?b", "a_b", "a?b"),
        ("100%_x", "100\\%\\_x", "100%_x"),
        ("a\\*b", "a*b", "a[*]b"),
        ("a\\?[", "a?[", "a[?][[]"),
        ("a\\\\b*", "a\\\\b%", "a\\b*"),
    ],
)
def test_pattern_translation(source: str, like: str, glob: str) -> None:
    pattern = compile_pattern(source)
    assert like_text(pattern) == like
    assert glob_text(pattern) == glob


def test_a_long_prefix_still_matches(people) -> None:
    """Prefixes beyond the indexed 200 characters compare on the index and then in full."""
    long = "repo:" + "a" * 300 + ":ref"
    event = make_event(people["acme"], sub=long)
    make_event(people["acme"], sub="repo:" + "a" * 300 + ":other")
    found = ExchangeEvent.objects.filter(matches_pattern("sub", compile_pattern(long)))
    assert list(found.values_list("pk", flat=True)) == [event.pk]
    prefix = ExchangeEvent.objects.filter(matches_pattern("sub", compile_pattern(long[:-3] + "*")))
    assert prefix.count() == 2


def test_parse_time_accepts_dates_and_times() -> None:
    assert parse_time("2026-01-31") == datetime(2026, 1, 31, tzinfo=UTC)
    assert parse_time("2026-01-31", end=True) == datetime(2026, 2, 1, tzinfo=UTC)
    assert parse_time("2026-01-31T10:00") == datetime(2026, 1, 31, 10, tzinfo=UTC)
    assert parse_time("2026-01-31T10:00+02:00") == datetime(2026, 1, 31, 8, tzinfo=UTC)
    with pytest.raises(ValueError, match="must be a date"):
        parse_time("2026-13-45")


def test_filters_report_every_bad_field_and_round_trip() -> None:
    with pytest.raises(FilterError) as caught:
        event_filters_from(
            {"issuer": "x", "decision": "maybe", "since": "2026-02-02", "until": "2026-02-01"}
        )
    assert set(caught.value.errors) == {"issuer", "decision", "until"}
    filters = event_filters_from({"subject": "repo:a/*", "since": "2026-01-01", "decision": "deny"})
    assert event_filters_from(filters.as_params()) == filters


def test_history_works_for_an_event_with_a_huge_multibyte_subject(people) -> None:
    """A 1000-character CJK `sub` (unverified claims are recorded) is stored and found."""
    sub = "日" * 1000
    event = make_event(people["acme"], sub=sub)
    response = signed_in("audrey").get(history_url(subject="日*"))
    assert event_ids(response) == [event.pk]


def test_api_token_cannot_open_pages(people, admin_token, api_client) -> None:
    # Pages use the session; an API token in the header is not a browser sign-in.
    response = auth(api_client, admin_token).get(history_url())
    assert response.status_code == 302
