"""Celery tasks of the tokens app: purge tokens and jtis, purge events, flush `last_used`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from kernel.config import ConfigError, load_config
from tests.factories import make_event
from tokens import tasks
from tokens.models import AccessToken, ExchangeEvent, UsedJti
from tokens.services import token_create, token_touch, token_usage_flush, tokens_purge
from tokens.usage import LocalUsageBuffer, RedisUsageBuffer, default_buffer

pytestmark = pytest.mark.django_db


def test_the_schedules_are_configured() -> None:
    schedule = settings.CELERY_BEAT_SCHEDULE
    assert schedule["purge-tokens"] == {"task": "tokens.tasks.purge_tokens", "schedule": 300.0}
    assert schedule["purge-exchange-events"]["schedule"] == 86400.0
    assert schedule["flush-token-usage"]["schedule"] == 60.0
    for entry in ("purge-tokens", "purge-exchange-events", "flush-token-usage"):
        name = schedule[entry]["task"].rsplit(".", 1)[1]
        task = getattr(tasks, name)
        assert task.name == schedule[entry]["task"] and task.acks_late is True


def test_purge_tokens_keeps_a_grace_period_and_never_touches_events(org) -> None:
    now = timezone.now()
    old_expired, _ = token_create(
        token_type="organization", organization=org, expires=now - timedelta(days=8)
    )
    recent_expired, _ = token_create(
        token_type="organization", organization=org, expires=now - timedelta(days=6)
    )
    old_revoked, _ = token_create(token_type="organization", organization=org)
    AccessToken.objects.filter(pk=old_revoked.pk).update(revoked_at=now - timedelta(days=8))
    recent_revoked, _ = token_create(token_type="organization", organization=org)
    AccessToken.objects.filter(pk=recent_revoked.pk).update(revoked_at=now - timedelta(days=1))
    forever, _ = token_create(token_type="organization", organization=org)
    event = make_event(org, decision="allow", reason="allowed", token=old_expired)
    assert tasks.purge_tokens.delay().get() == {"tokens": 2, "jtis": 0}
    left = set(AccessToken.objects.values_list("pk", flat=True))
    assert left == {recent_expired.pk, recent_revoked.pk, forever.pk}
    assert ExchangeEvent.objects.get(pk=event.pk).token_id == old_expired.pk
    assert tasks.purge_tokens.delay().get() == {"tokens": 0, "jtis": 0}  # idempotent


def test_purge_runs_in_batches(org) -> None:
    past = timezone.now() - timedelta(days=30)
    AccessToken.objects.bulk_create(
        AccessToken(
            token_type="organization",
            organization=org,
            permission="standard",
            token_hash=f"{i:064x}",
            prefix="tpo_x",
            created=past,
            expires=past,
        )
        for i in range(25)
    )
    with CaptureQueriesContext(connection) as captured:
        result = tokens_purge(batch_size=10)
    assert result.tokens == 25 and not AccessToken.objects.exists()
    deletes = [
        q["sql"]
        for q in captured.captured_queries
        if q["sql"].startswith('DELETE FROM "tokens_accesstoken"') and '"expires" <' in q["sql"]
    ]
    # 10 + 10 + 5, each one statement (the ids are selected inside it) in its own transaction.
    assert len(deletes) == 3
    assert all("LIMIT 10" in sql and "SELECT" in sql for sql in deletes)


def test_purge_removes_used_jtis_past_expiry() -> None:
    now = timezone.now()
    import uuid

    issuer = uuid.uuid4()
    UsedJti.objects.create(issuer_id=issuer, jti_sha256="old", expires=now - timedelta(seconds=1))
    UsedJti.objects.create(issuer_id=issuer, jti_sha256="live", expires=now + timedelta(minutes=5))
    assert tokens_purge(now=now).jtis == 1
    assert list(UsedJti.objects.values_list("jti_sha256", flat=True)) == ["live"]


def test_purge_events_past_retention(org, settings) -> None:
    now = timezone.now()
    old = make_event(org, created=now - timedelta(days=401))
    kept = make_event(org, created=now - timedelta(days=399))
    assert tasks.purge_exchange_events.delay().get() == 1
    assert list(ExchangeEvent.objects.values_list("pk", flat=True)) == [kept.pk]
    assert not ExchangeEvent.objects.filter(pk=old.pk).exists()
    import dataclasses

    settings.TRUSTPORTAL = dataclasses.replace(settings.TRUSTPORTAL, event_retention_days=0)
    make_event(org, created=now - timedelta(days=5000))
    assert tasks.purge_exchange_events.delay().get() == 0  # 0 keeps events forever
    settings.TRUSTPORTAL = dataclasses.replace(settings.TRUSTPORTAL, event_retention_days=30)
    assert tasks.purge_exchange_events.delay().get() == 2


def test_event_retention_is_configurable() -> None:
    assert load_config({}).event_retention_days == 400
    assert load_config({"TRUSTPORTAL_EVENT_RETENTION_DAYS": "90"}).event_retention_days == 90
    with pytest.raises(ConfigError):
        load_config({"TRUSTPORTAL_EVENT_RETENTION_DAYS": "-1"})
    with pytest.raises(ConfigError):
        load_config({"TRUSTPORTAL_EVENT_RETENTION_DAYS": "a year"})


def test_usage_flush_writes_in_bulk_at_most_once_a_minute(org) -> None:
    buffer = LocalUsageBuffer()
    start = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    rows = [token_create(token_type="organization", organization=org)[0] for _ in range(3)]
    for row in rows:
        token_touch(token=row, now=start, buffer=buffer)
    token_touch(token=rows[0], now=start + timedelta(seconds=20), buffer=buffer)
    assert not AccessToken.objects.filter(last_used__isnull=False).exists()
    assert token_usage_flush(buffer=buffer) == 3
    assert AccessToken.objects.get(pk=rows[0].pk).last_used == start + timedelta(seconds=20)
    for row in rows:
        row.refresh_from_db()
        token_touch(token=row, now=start + timedelta(seconds=50), buffer=buffer)
    assert token_usage_flush(buffer=buffer) == 0  # within a minute: nothing noted
    token_touch(token=rows[1], now=start + timedelta(seconds=90), buffer=buffer)
    assert token_usage_flush(buffer=buffer) == 1
    assert token_usage_flush(buffer=buffer) == 0  # drained


def test_a_local_buffer_drains_itself_when_no_worker_can(org) -> None:
    """Without Redis the worker cannot see a web process's memory: the process writes itself."""
    buffer = LocalUsageBuffer()
    start = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    first, _ = token_create(token_type="organization", organization=org)
    second, _ = token_create(token_type="organization", organization=org)
    token_touch(token=first, now=start, buffer=buffer)
    assert AccessToken.objects.get(pk=first.pk).last_used is None
    token_touch(token=second, now=start + timedelta(seconds=61), buffer=buffer)
    assert AccessToken.objects.get(pk=first.pk).last_used == start
    assert AccessToken.objects.get(pk=second.pk).last_used == start + timedelta(seconds=61)


class FakeRedis:
    """Just the sorted-set commands the Redis buffer uses (the real one runs in integration)."""

    def __init__(self) -> None:
        self.sets: dict[str, dict[str, float]] = {}

    def zadd(self, key: str, mapping: dict[str, float], gt: bool = False) -> int:
        current = self.sets.setdefault(key, {})
        for member, score in mapping.items():
            if not gt or score > current.get(member, float("-inf")):
                current[member] = score
        return len(mapping)

    def pipeline(self, transaction: bool = True) -> Any:
        redis = self

        class Pipe:
            def __init__(self) -> None:
                self.ops: list[Any] = []

            def zrange(self, key: str, start: int, end: int, withscores: bool = False) -> None:
                self.ops.append(lambda: sorted(redis.sets.get(key, {}).items()))

            def delete(self, key: str) -> None:
                self.ops.append(lambda: redis.sets.pop(key, None) is not None)

            def execute(self) -> list[Any]:
                return [op() for op in self.ops]

        return Pipe()


def test_the_redis_buffer_keeps_the_latest_use_and_drains_once() -> None:
    buffer = RedisUsageBuffer(FakeRedis())
    start = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    buffer.record(7, start + timedelta(seconds=30))
    buffer.record(7, start)  # an older use arriving late does not move it back
    buffer.record(8, start)
    assert buffer.drain() == {7: start + timedelta(seconds=30), 8: start}
    assert buffer.drain() == {}


def test_the_redis_buffer_sends_a_tokens_use_at_most_once_a_minute_per_process() -> None:
    sent: list[dict[str, float]] = []

    class CountingRedis(FakeRedis):
        def zadd(self, key: str, mapping: dict[str, float], gt: bool = False) -> int:
            sent.append(mapping)
            return super().zadd(key, mapping, gt=gt)

    buffer = RedisUsageBuffer(CountingRedis())
    start = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    for second in range(0, 60, 5):
        buffer.record(7, start + timedelta(seconds=second))
    assert len(sent) == 1  # the other eleven uses would not change last_used (kept to the minute)
    buffer.record(7, start + timedelta(seconds=61))
    buffer.record(8, start + timedelta(seconds=61))
    assert len(sent) == 3
    assert buffer.drain() == {7: start + timedelta(seconds=61), 8: start + timedelta(seconds=61)}


def test_the_default_buffer_follows_redis_url(settings) -> None:
    settings.REDIS_URL = None
    assert isinstance(default_buffer(), LocalUsageBuffer)
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    assert isinstance(default_buffer(), RedisUsageBuffer)


def test_flush_task_counts(org) -> None:
    row, _ = token_create(token_type="organization", organization=org)
    default_buffer().record(int(row.pk), timezone.now())
    assert tasks.flush_token_usage.delay().get() == 1
    assert tasks.flush_token_usage.delay().get() == 0
