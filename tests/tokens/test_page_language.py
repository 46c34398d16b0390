"""What the token and history pages say: last use (buffered too), claim times, numbering,
long subjects that wrap at their separators."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from tests.conftest import auth
from tests.factories import make_event
from tests.text import visible_text
from tests.tokens.conftest import people, signed_in  # noqa: F401  (fixture)
from tokens.claim_times import claim_time
from tokens.models import AccessToken
from tokens.selectors import last_used
from tokens.services import token_create, token_touch, token_usage_flush
from tokens.usage import LocalUsageBuffer
from trustportal.models import Organization

pytestmark = pytest.mark.django_db

LONG_SUBJECT = "repo:acme-corporation/infrastructure:ref:refs/heads/release/2026-03-branch"


def _token(organization: Organization) -> AccessToken:
    return token_create(token_type="organization", organization=organization, name="ci")[0]


def test_a_buffered_first_use_is_shown_not_never(people) -> None:  # noqa: F811
    """The use waits in the buffer (Redis, or this process) for up to a minute: the pages read
    it there instead of saying "never"."""
    token = _token(people["acme"])
    used = timezone.now().replace(microsecond=0) - timedelta(seconds=5)
    token_touch(token=token, now=used)
    token.refresh_from_db()
    assert token.last_used is None  # not flushed yet
    client = signed_in("audrey")
    detail = visible_text(
        client.get(reverse("tokens:token", kwargs={"org": "acme", "token_id": token.pk}))
    )
    assert f"Last used {used:%Y-%m-%d %H:%M} UTC" in detail
    listing = visible_text(client.get(reverse("tokens:tokens", kwargs={"org": "acme"})))
    assert "Active" in listing and "0 minutes ago" in listing  # the row's "Last used"
    token_usage_flush()
    token.refresh_from_db()
    assert token.last_used == used
    detail = visible_text(
        client.get(reverse("tokens:token", kwargs={"org": "acme", "token_id": token.pk}))
    )
    assert f"Last used {used:%Y-%m-%d %H:%M} UTC" in detail


def test_last_used_takes_the_later_of_stored_and_buffered(people) -> None:  # noqa: F811
    stored, buffered, never = (_token(people["acme"]) for _ in range(3))
    t0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    AccessToken.objects.filter(pk=stored.pk).update(last_used=t0 + timedelta(minutes=5))
    AccessToken.objects.filter(pk=buffered.pk).update(last_used=t0)
    buffer = LocalUsageBuffer()
    buffer.record(stored.pk, t0)  # older than the stored value: ignored
    buffer.record(buffered.pk, t0 + timedelta(minutes=3))
    rows = list(AccessToken.objects.filter(pk__in=[stored.pk, buffered.pk, never.pk]))
    assert last_used(rows, buffer=buffer) == {
        stored.pk: t0 + timedelta(minutes=5),
        buffered.pk: t0 + timedelta(minutes=3),
        never.pk: None,
    }
    assert buffer.drain()  # reading did not take anything out of the buffer


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1767225600, datetime(2026, 1, 1, tzinfo=UTC)),
        (1767225600.5, datetime(2026, 1, 1, 0, 0, 0, 500000, tzinfo=UTC)),
        ("1767225600", None),
        (True, None),
        (float("nan"), None),
        (10**20, None),
        (None, None),
    ],
)
def test_claim_time(value: object, expected: datetime | None) -> None:
    assert claim_time(value) == expected


def test_event_detail_shows_time_claims_as_utc_dates(people) -> None:  # noqa: F811
    event = make_event(
        people["acme"],
        sub=LONG_SUBJECT,
        claims={"exp": 1767229200, "iat": 1767225600, "nbf": "soon", "run_id": 1767225600},
    )
    page = signed_in("audrey").get(
        reverse("tokens:event", kwargs={"org": "acme", "event_id": event.pk})
    )
    text = visible_text(page)
    assert "exp 1767229200 2026-01-01 01:00:00 UTC" in text
    assert "iat 1767225600 2026-01-01 00:00:00 UTC" in text
    assert "nbf soon" in text and "nbf soon 20" not in text  # not a number: no date
    assert "run_id 1767225600 sub" in text  # not a time claim: no date
    # The subject wraps at its separators and still reads whole.
    assert f"sub {LONG_SUBJECT}" in text and "acme-corporation/<wbr>" in page.content.decode()


def test_subjects_wrap_at_separators_on_the_history_tokens_and_dashboard(people) -> None:  # noqa: F811
    make_event(people["acme"], sub=LONG_SUBJECT, claims={"repository": "acme-corporation/infra"})
    token = _token(people["acme"])
    AccessToken.objects.filter(pk=token.pk).update(subject=LONG_SUBJECT)
    client = signed_in("audrey")
    pages = [
        reverse("tokens:history", kwargs={"org": "acme"}),
        reverse("tokens:dashboard", kwargs={"org": "acme"}),
        reverse("tokens:tokens", kwargs={"org": "acme"}),
    ]
    for url in pages:
        response = client.get(url)
        assert LONG_SUBJECT[:60] in visible_text(response), url
        assert "ref:<wbr>refs/<wbr>heads/<wbr>" in response.content.decode(), url


def test_the_definition_filter_says_how_it_counts(people) -> None:  # noqa: F811
    text = visible_text(signed_in("alice").get(reverse("tokens:tokens", kwargs={"org": "acme"})))
    assert "numbered from #1" in text and "#1 is index 0" in text


@pytest.mark.parametrize(("count", "label"), [(1, "Yes, revoke this token"), (2, "these 2 tokens")])
def test_the_revocation_confirmation_reads_right_for_one_token(
    people,  # noqa: F811
    count: int,
    label: str,
) -> None:
    for _ in range(count):
        _token(people["acme"])
    url = reverse("tokens:revoke-matching", kwargs={"org": "acme"}) + "?type=organization"
    text = visible_text(signed_in("alice").get(url))
    assert label in text and "these 1 token" not in text


def test_the_api_reports_a_buffered_use_too(people, admin_token: str) -> None:  # noqa: F811
    token = _token(people["acme"])
    used = timezone.now().replace(microsecond=0) - timedelta(seconds=5)
    token_touch(token=token, now=used)
    client = auth(APIClient(), admin_token)
    one = client.get(reverse("api-org-token", kwargs={"org": "acme", "token_id": token.pk}))
    assert one.status_code == 200 and one.json()["lastUsed"] == int(used.timestamp())
    listed = client.get(reverse("api-org-tokens", kwargs={"org": "acme"})).json()["tokens"]
    assert {t["id"]: t["lastUsed"] for t in listed}[str(token.pk)] == int(used.timestamp())
