"""Exchange events cannot be changed or deleted through the ORM, the admin or the API.

The PostgreSQL trigger that enforces the same for raw SQL is tested in
tests/integration/test_purge.py (it needs a real PostgreSQL).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from kernel.appendonly import AppendOnlyError
from tests.factories import make_event
from tests.tokens.conftest import signed_in
from tokens.models import ExchangeEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def event(people) -> ExchangeEvent:
    return make_event(people["acme"])


def test_saving_an_existing_event_is_refused(event) -> None:
    event.reason = "allowed"
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.save(update_fields=["reason"])
    assert ExchangeEvent.objects.get(pk=event.pk).reason == "denied_by_policy"


def test_a_new_event_with_a_taken_id_is_not_an_update(event) -> None:
    """`save()` always INSERTs: reusing an id fails instead of overwriting the row."""
    copy = ExchangeEvent(pk=event.pk, created=timezone.now(), decision="allow", reason="allowed")
    with pytest.raises(IntegrityError), transaction.atomic():
        copy.save()
    assert ExchangeEvent.objects.get(pk=event.pk).decision == "deny"


def test_deleting_an_event_is_refused(event) -> None:
    with pytest.raises(AppendOnlyError):
        event.delete()
    assert ExchangeEvent.objects.filter(pk=event.pk).exists()


@pytest.mark.parametrize(
    "change",
    [
        lambda qs: qs.update(reason="allowed"),
        lambda qs: qs.delete(),
        lambda qs: ExchangeEvent.objects.bulk_update(list(qs), ["reason"]),
        lambda qs: ExchangeEvent.objects.filter(pk__in=qs).update(sub="x"),
        lambda qs: ExchangeEvent.objects.all().delete(),
    ],
)
def test_queryset_updates_and_deletes_are_refused(event, change) -> None:
    with pytest.raises(AppendOnlyError), transaction.atomic():
        change(ExchangeEvent.objects.filter(pk=event.pk))
    assert ExchangeEvent.objects.get(pk=event.pk).reason == "denied_by_policy"


def test_deleting_the_organization_issuer_or_token_keeps_events(people, event) -> None:
    people["acme"].delete()
    assert ExchangeEvent.objects.filter(pk=event.pk).exists()


def test_only_the_retention_purge_removes_events(people) -> None:
    now = timezone.now()
    old = [make_event(people["acme"], created=now - timedelta(days=401)) for _ in range(5)]
    recent = make_event(people["acme"], created=now - timedelta(days=399))
    assert ExchangeEvent.purge_before(now - timedelta(days=400), batch_size=2) == 5
    assert not ExchangeEvent.objects.filter(pk__in=[e.pk for e in old]).exists()
    assert ExchangeEvent.objects.filter(pk=recent.pk).exists()


def test_the_admin_reads_but_never_changes_events(people, event) -> None:
    changelist = reverse("admin:tokens_exchangeevent_changelist")
    change = reverse("admin:tokens_exchangeevent_change", args=[event.pk])
    delete = reverse("admin:tokens_exchangeevent_delete", args=[event.pk])
    add = reverse("admin:tokens_exchangeevent_add")
    for username in ("alice", "audrey"):
        client = signed_in(username)
        assert client.get(changelist).status_code == 200
        page = client.get(change)
        assert page.status_code == 200 and "denied_by_policy" in page.content.decode()
        assert 'name="_save"' not in page.content.decode()
        assert client.post(change, {"reason": "allowed"}).status_code == 403
        assert client.get(delete).status_code == 403
        assert client.post(delete, {"post": "yes"}).status_code == 403
        assert client.get(add).status_code == 403
        bulk = client.post(
            changelist, {"action": "delete_selected", "_selected_action": [event.pk]}
        )
        assert bulk.status_code in (200, 302)
    assert ExchangeEvent.objects.get(pk=event.pk).reason == "denied_by_policy"


def test_superusers_cannot_change_events_either(people, event) -> None:
    from tests.factories import UserFactory, pass_second_factor

    UserFactory(username="root", is_superuser=True, is_staff=True)
    client = pass_second_factor(signed_in("root"), "root")  # superusers owe one (portal.signin.mfa)
    change = reverse("admin:tokens_exchangeevent_change", args=[event.pk])
    assert client.post(change, {"reason": "allowed"}).status_code == 403
    delete = reverse("admin:tokens_exchangeevent_delete", args=[event.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    assert ExchangeEvent.objects.filter(pk=event.pk).exists()


def test_the_admin_scopes_events_to_the_users_orgs(people, event) -> None:
    other = make_event(people["beta"], sub="repo:beta/secret:ref:main")
    page = signed_in("audrey").get(reverse("admin:tokens_exchangeevent_changelist"))
    assert "repo:acme/app" in page.content.decode()
    assert "repo:beta/secret" not in page.content.decode()
    change = reverse("admin:tokens_exchangeevent_change", args=[other.pk])
    assert signed_in("audrey").get(change).status_code in (302, 404)
