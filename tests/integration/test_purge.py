"""On PostgreSQL: purging 100,000 expired tokens in batches while exchanges keep succeeding,
events kept until their retention, and the trigger that makes events append-only."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from django.db import DatabaseError, connection, connections, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from issuers.models import Issuer
from policies.models import AuthPolicy
from policies.registration import issuer_register
from policies.services import policy_update
from tests.factories import make_event
from tests.tokens.conftest import AUDIENCE, DEFAULT_POLICY, exchange_body
from tokens import tasks
from tokens.models import AccessToken, ExchangeEvent

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

EXPIRED = 100_000


@pytest.fixture
def trusted(org, local_issuer, outbound, allow_local_issuers) -> Issuer:
    """The local issuer registered for acme with the exchange tests' policy."""
    issuer = issuer_register(organization=org, url=local_issuer.url, name="dev", outbound=outbound)
    policy_update(policy=AuthPolicy.objects.get(issuer=issuer), definitions=DEFAULT_POLICY[:2])
    return issuer


@pytest.fixture
def no_rate_limits(settings: Any) -> None:
    import dataclasses

    settings.TRUSTPORTAL = dataclasses.replace(
        settings.TRUSTPORTAL, rate_limit_per_ip=0, rate_limit_per_subject=0
    )


def _exchange_until(
    stop: threading.Event, subject_token: str, results: list[tuple[int, float]]
) -> None:
    """Exchange over and over from another thread (its own database connection)."""
    client = Client()
    body = exchange_body(subject_token)
    try:
        while not stop.is_set():
            started = time.perf_counter()
            response = client.post("/api/oauth/token", body, content_type="application/json")
            results.append((response.status_code, time.perf_counter() - started))
    finally:
        connections.close_all()


def test_purging_100000_expired_tokens_while_exchanges_succeed(
    trusted, local_issuer, no_rate_limits
) -> None:
    assert connection.vendor == "postgresql"
    org = trusted.organization
    now = timezone.now()
    past = now - timedelta(days=30)
    AccessToken.objects.bulk_create(
        (
            AccessToken(
                token_type="organization",
                organization=org,
                permission="standard",
                token_hash=f"{i:064x}",
                prefix="tpo_purged",
                created=past - timedelta(hours=2),
                expires=past,
                issuer=trusted,
                subject="repo:acme/infra:ref:refs/heads/main",
            )
            for i in range(EXPIRED)
        ),
        batch_size=10_000,
    )
    kept_event = make_event(org, created=now - timedelta(days=399))
    old_event = make_event(org, created=now - timedelta(days=401))
    subject_token = local_issuer.mint(audience=AUDIENCE)

    results: list[tuple[int, float]] = []
    stop = threading.Event()
    worker = threading.Thread(target=_exchange_until, args=(stop, subject_token, results))
    worker.start()
    try:
        while len(results) < 5:  # the exchanges are running before the purge starts
            time.sleep(0.01)
        with CaptureQueriesContext(connection) as captured:
            purged = tasks.purge_tokens.delay().get()
        during = len(results)
        while len(results) < during + 5:  # and still succeed after it
            time.sleep(0.01)
    finally:
        stop.set()
        worker.join(timeout=60)

    assert purged == {"tokens": EXPIRED, "jtis": 0}
    assert not AccessToken.objects.filter(prefix="tpo_purged").exists()
    deletes = [
        q["sql"]
        for q in captured.captured_queries
        if q["sql"].startswith('DELETE FROM "tokens_accesstoken"') and '"expires" <' in q["sql"]
    ]
    # One statement (ids selected inside it) and one short transaction per batch of 10,000; the
    # last batch finds nothing left.
    assert len(deletes) == EXPIRED // 10_000 + 1
    assert all("LIMIT 10000" in sql for sql in deletes)
    statuses = {status for status, _ in results}
    assert statuses == {200}, statuses
    minted = AccessToken.objects.filter(issuer=trusted).exclude(prefix="tpo_purged").count()
    assert minted == len(results) > 10
    # Purging tokens never deletes events, and the retention purge keeps what is young enough.
    assert ExchangeEvent.objects.filter(decision="allow").count() == len(results)
    assert tasks.purge_exchange_events.delay().get() == 1
    assert ExchangeEvent.objects.filter(pk=kept_event.pk).exists()
    assert not ExchangeEvent.objects.filter(pk=old_event.pk).exists()


def test_the_trigger_refuses_raw_updates_and_deletes(org) -> None:
    event = make_event(org)
    with connection.cursor() as cursor:
        for sql in (
            "UPDATE tokens_exchangeevent SET reason = 'allowed' WHERE id = %s",
            "DELETE FROM tokens_exchangeevent WHERE id = %s",
        ):
            with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
                cursor.execute(sql, [event.pk])
    assert ExchangeEvent.objects.get(pk=event.pk).reason == "denied_by_policy"


def as_the_purge(cursor: Any, sql: str, event: ExchangeEvent) -> None:
    """Run `sql` in a transaction that sets the retention purge's flag."""
    with transaction.atomic():
        cursor.execute("SET LOCAL trustportal.purge = 'on'")
        cursor.execute(sql, [event.pk])


def test_the_purge_flag_allows_delete_but_never_update(org) -> None:
    event = make_event(org)
    with connection.cursor() as cursor:
        with pytest.raises(DatabaseError, match="append-only"):
            as_the_purge(
                cursor, "UPDATE tokens_exchangeevent SET reason = 'x' WHERE id = %s", event
            )
        as_the_purge(cursor, "DELETE FROM tokens_exchangeevent WHERE id = %s", event)
        # The flag was transaction-local: the next transaction is refused again.
        other = make_event(org)
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            cursor.execute("DELETE FROM tokens_exchangeevent WHERE id = %s", [other.pk])
    assert not ExchangeEvent.objects.filter(pk=event.pk).exists()
    assert ExchangeEvent.objects.filter(pk=other.pk).exists()


def test_the_retention_purge_passes_the_trigger_in_batches(org) -> None:
    old = timezone.now() - timedelta(days=500)
    for _ in range(25):
        make_event(org, created=old)
    young = make_event(org)
    assert ExchangeEvent.purge_before(timezone.now() - timedelta(days=400), batch_size=10) == 25
    assert list(ExchangeEvent.objects.values_list("pk", flat=True)) == [young.pk]
