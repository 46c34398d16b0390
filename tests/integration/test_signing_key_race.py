"""Two workers rotating the signing keys of a fresh installation at once leave one current key
and one next key (the partial unique constraints decide; the loser stops quietly)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from environments.models import KeyState, SigningKey
from tests.integration.conftest import process_env

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]

WORKER = textwrap.dedent(
    """
    import sys, time, django
    django.setup()
    from datetime import timedelta
    from environments import signing

    start = float(sys.argv[1])
    time.sleep(max(0.0, start - time.time()))
    print(signing.signing_keys_rotate(rotation_period=timedelta(days=30)))
    """
)


def test_two_first_rotations_at_once_make_one_current_key() -> None:
    start = str(time.time() + 3)
    env = process_env(DJANGO_SETTINGS_MODULE="trustportal.settings")
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, start],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for worker in workers:
        _out, err = worker.communicate(timeout=60)
        assert worker.returncode == 0, err
    assert SigningKey.objects.filter(state=KeyState.CURRENT).count() == 1
    assert SigningKey.objects.filter(state=KeyState.NEXT).count() == 1
    assert SigningKey.objects.count() == 2
