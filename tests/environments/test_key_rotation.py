"""Rotation of the portal's signing keys: published before signing, kept until the last token
signed with them has expired, then retired and erased."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
import time_machine
from django.conf import settings
from django.utils import timezone

from environments import signing, tasks
from environments.models import KeyState, SigningKey
from environments.providers.base import IdTokenRequest
from tests.environments.test_oidc_issuer import ISSUER, context

pytestmark = pytest.mark.django_db

START = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
ROTATION = timedelta(days=settings.TRUSTPORTAL.oidc_key_rotation_days)


@pytest.fixture
def clock() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


def published() -> set[str]:
    return {key["kid"] for key in signing.jwks_document()["keys"]}


def state(kid: str) -> str:
    return str(SigningKey.objects.get(kid=kid).state)


def mint_now(lifetime: timedelta = timedelta(hours=1)) -> str:
    now = timezone.now()
    return signing.id_token_mint(
        IdTokenRequest(audience="aws:acme", lifetime=lifetime),
        context(now=lambda: now),
        issuer=ISSUER,
        key=lambda: signing.signing_key_active(rotation_period=ROTATION),
        now=now,
    ).token


def verifies(token: str) -> bool:
    """What a relying party does: find the `kid` in the published JWKS, check signature and
    expiry (with a minute of leeway) at the current time."""
    keys = {key["kid"]: key for key in signing.jwks_document()["keys"]}
    kid = jwt.get_unverified_header(token)["kid"]
    if kid not in keys:
        return False
    try:
        jwt.decode(
            token,
            jwt.PyJWK(keys[kid]).key,
            algorithms=["RS256"],
            audience="aws:acme",
            issuer=ISSUER,
            leeway=60,
        )
    except jwt.ExpiredSignatureError:
        return False
    return True


def kid_of(token: str) -> str:
    kid: str = jwt.get_unverified_header(token)["kid"]
    return kid


def rotate() -> dict[str, Any]:
    result: dict[str, Any] = tasks.rotate_signing_keys()
    return result


def test_a_full_rotation_keeps_every_token_verifiable_until_it_expires(
    clock: time_machine.Traveller,
) -> None:
    first = rotate()
    assert first["promoted"] is None and len(first["created"]) == 2
    current, upcoming = first["created"]
    assert state(current) == KeyState.CURRENT and state(upcoming) == KeyState.NEXT
    assert published() == {current, upcoming}  # the next key is public a month before it signs
    assert rotate() == {"created": [], "promoted": None, "retired": []}  # idempotent

    clock.move_to(START + ROTATION - timedelta(minutes=10))
    assert rotate()["promoted"] is None  # not due yet
    before = mint_now()
    assert kid_of(before) == current and verifies(before)

    clock.move_to(START + ROTATION)
    second = rotate()
    assert second["promoted"] == upcoming and second["retired"] == []
    (third,) = second["created"]
    assert state(current) == KeyState.PREVIOUS and state(upcoming) == KeyState.CURRENT
    assert published() == {current, upcoming, third}
    after = mint_now()
    assert kid_of(after) == upcoming and verifies(after)
    assert verifies(before)  # signed by the previous key, still in the JWKS

    clock.move_to(START + ROTATION + timedelta(minutes=49))
    assert rotate()["retired"] == []
    assert verifies(before) and current in published()

    # One hour (the longest lifetime) plus the skew after the key stopped signing, it goes.
    clock.move_to(START + ROTATION + signing.MAX_ID_TOKEN_LIFETIME + signing.RETENTION_SKEW)
    assert rotate()["retired"] == [current]
    assert published() == {upcoming, third}
    assert not verifies(before)
    retired = SigningKey.objects.get(kid=current)
    assert retired.state == KeyState.RETIRED and retired.private_key == ""
    assert verifies(after) is False  # expired by now as well (1 h lifetime)
    assert verifies(mint_now())


def test_a_next_key_signs_only_after_its_publication_delay(
    clock: time_machine.Traveller,
) -> None:
    current, upcoming = rotate()["created"]
    # The next key disappears (say, removed by hand); its replacement is brand new when the
    # current key is due for rotation.
    SigningKey.objects.filter(kid=upcoming).delete()
    clock.move_to(START + ROTATION)
    (replacement,) = rotate()["created"]
    assert state(current) == KeyState.CURRENT  # not promoted: nobody has seen the new key yet
    assert replacement in published()

    clock.move_to(START + ROTATION + signing.PUBLICATION_DELAY - timedelta(seconds=1))
    assert rotate()["promoted"] is None
    assert kid_of(mint_now()) == current

    clock.move_to(START + ROTATION + signing.PUBLICATION_DELAY)
    assert rotate()["promoted"] == replacement
    token = mint_now()
    assert kid_of(token) == replacement and verifies(token)


def test_every_signing_key_was_published_before_its_first_token(
    clock: time_machine.Traveller,
) -> None:
    """Over three rotations, each key's first token comes at least the publication delay after
    the key entered the JWKS (the very first key excepted: nothing was published before it)."""
    first_seen: dict[str, datetime] = {}
    first_signed: dict[str, datetime] = {}
    now = START
    while now <= START + 3 * ROTATION + timedelta(days=1):
        clock.move_to(now)
        rotate()
        for kid in published():
            first_seen.setdefault(kid, now)
        first_signed.setdefault(kid_of(mint_now()), now)
        now += timedelta(days=1)
    assert len(first_signed) == 4
    for kid, signed in first_signed.items():
        if signed != START:
            assert signed - first_seen[kid] >= signing.PUBLICATION_DELAY
    assert SigningKey.objects.filter(state=KeyState.RETIRED).count() == 3
    assert len(published()) == 2  # current and next; every previous key has been retired


def test_the_rotation_and_purge_are_scheduled() -> None:
    schedule = settings.CELERY_BEAT_SCHEDULE
    for entry, task in (
        ("rotate-signing-keys", tasks.rotate_signing_keys),
        ("purge-open-outputs", tasks.purge_open_outputs),
    ):
        assert schedule[entry]["task"] == task.name
        assert schedule[entry]["schedule"] == 15 * 60.0
        assert task.acks_late is True
    assert tasks.purge_open_outputs() == 0
