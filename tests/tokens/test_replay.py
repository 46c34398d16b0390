"""Single-use `jti`s: one durable database row per (issuer, jti hash), claimed atomically."""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from exchange.replay import claim_jti
from tokens.models import UsedJti

pytestmark = pytest.mark.django_db


def test_a_jti_is_claimed_once_per_issuer_and_stored_only_as_a_hash() -> None:
    now = timezone.now()
    issuer, other = uuid.uuid4(), uuid.uuid4()
    expires = now + timedelta(minutes=5)
    assert claim_jti(issuer_id=issuer, jti="abc", expires=expires, now=now) is True
    assert claim_jti(issuer_id=issuer, jti="abc", expires=expires, now=now) is False
    assert claim_jti(issuer_id=other, jti="abc", expires=expires, now=now) is True
    row = UsedJti.objects.get(issuer_id=issuer)
    assert row.jti_sha256 == hashlib.sha256(b"abc").hexdigest()
    assert "abc" not in {f.value_to_string(row) for f in UsedJti._meta.concrete_fields}


def test_the_claim_survives_the_cache_being_emptied() -> None:
    """A Redis restart or eviction must not let a used token in again: the row is the record."""
    now = timezone.now()
    issuer = uuid.uuid4()
    expires = now + timedelta(minutes=5)
    assert claim_jti(issuer_id=issuer, jti="once", expires=expires, now=now) is True
    cache.clear()
    assert claim_jti(issuer_id=issuer, jti="once", expires=expires, now=now) is False


def test_an_expired_record_not_yet_purged_is_reused() -> None:
    now = timezone.now()
    issuer = uuid.uuid4()
    claim_jti(issuer_id=issuer, jti="j", expires=now - timedelta(seconds=1), now=now - timedelta(1))
    later = now + timedelta(minutes=10)
    assert claim_jti(issuer_id=issuer, jti="j", expires=later, now=now) is True
    assert UsedJti.objects.get(issuer_id=issuer).expires == later
    assert claim_jti(issuer_id=issuer, jti="j", expires=later, now=now) is False
