"""The exchange's per-process caches against two real processes sharing PostgreSQL and Redis.

Two gunicorn servers (one worker each, so the test knows which process answers) run on this
test's database. Both are warmed with exchanges, so each holds the organization, the issuer, its
keys and its compiled policy in memory; then a configuration write made outside both processes
(through the services, as the portal, the API or a Celery task would) must be seen by the very
next exchange either process serves, through the configuration epoch read in the exchange's one
Redis round trip. With Redis down the processes read the database instead: exchanges are still
granted (the rate limits fail open), refused ones stay refused, and single use still holds,
being a PostgreSQL row.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools.issuer import DevIssuer
from issuers.models import Issuer, IssuerKey
from issuers.services import Outbound, issuer_refresh_keys
from policies.services import policy_update
from tests.integration.conftest import process_env
from tests.integration.test_faults import PrivateRedis, free_port
from tests.integration.test_operations import _wait_until_up
from tests.tokens import conftest as tokens_conftest
from tests.tokens.conftest import AUDIENCE, DEFAULT_POLICY, exchange_body
from tokens.models import ExchangeEvent

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

trusted = tokens_conftest.trusted
ROOT = Path(__file__).resolve().parents[2]
WARM_UP = 4


def _exchange(base: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"{base}/api/oauth/token",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _reason(answer: dict[str, Any]) -> str:
    """What the event recorded for a refused answer (the caller may see less)."""
    return ExchangeEvent.objects.get(request_id=answer["request_id"]).reason


@pytest.fixture
def two_processes() -> Iterator[Any]:
    started: list[subprocess.Popen[bytes]] = []

    def start(**env: str) -> tuple[str, str]:
        bases = []
        for _ in range(2):
            port = free_port()
            server = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "gunicorn"),
                    "trustportal.wsgi",
                    *("--bind", f"127.0.0.1:{port}", "--workers", "1", "--chdir", str(ROOT)),
                    *("--log-level", "warning"),
                ],
                env=process_env(PYTHONPATH=str(ROOT), **env),
                cwd=ROOT,
            )
            started.append(server)
            base = f"http://127.0.0.1:{port}"
            _wait_until_up(base, server)
            bases.append(base)
        return bases[0], bases[1]

    yield start
    for server in started:
        server.terminate()
        server.wait(timeout=30)


def _warm(local_issuer: DevIssuer, *bases: str) -> None:
    for base in bases:
        for _ in range(WARM_UP):
            status, answer = _exchange(base, _body(local_issuer))
            assert status == 200, answer


def _body(local_issuer: DevIssuer, **claims: Any) -> dict[str, Any]:
    return exchange_body(local_issuer.mint(claims or None, audience=AUDIENCE), scope="admin")


@pytest.fixture
def shared_redis() -> None:
    """Both servers and this test process must share one Redis for the epoch to be seen."""
    if not os.environ.get("REDIS_URL"):
        pytest.skip("needs REDIS_URL (the servers and this process share the epoch)")


def test_disabling_an_issuer_is_seen_by_the_next_exchange_of_the_other_process(
    two_processes: Any, local_issuer: DevIssuer, trusted: Issuer, shared_redis: None
) -> None:
    first, second = two_processes()
    _warm(local_issuer, first, second)

    trusted.enabled = False
    trusted.save()  # what every write path does; the model signal bumps the epoch on commit

    for base in (second, first):
        status, answer = _exchange(base, _body(local_issuer))
        assert status == 400, answer
        assert answer["reason"] == "untrusted_token"
        assert _reason(answer) == "issuer_disabled"


def test_a_saved_policy_is_seen_by_the_next_exchange_of_the_other_process(
    two_processes: Any, local_issuer: DevIssuer, trusted: Issuer, shared_redis: None
) -> None:
    first, second = two_processes()
    _warm(local_issuer, first, second)

    tightened = [d for d in DEFAULT_POLICY if d.get("authorizedPermissions") != ["admin"]]
    policy_update(policy=trusted.policy, definitions=tightened)

    status, answer = _exchange(second, _body(local_issuer))
    assert status == 400, answer
    assert _reason(answer) == "no_matching_policy"
    status, answer = _exchange(first, _body(local_issuer))
    assert status == 400 and _reason(answer) == "no_matching_policy"


def test_a_removed_key_is_seen_by_the_next_exchange_of_the_other_process(
    two_processes: Any,
    local_issuer: DevIssuer,
    trusted: Issuer,
    outbound: Outbound,
    shared_redis: None,
) -> None:
    first, second = two_processes()
    _warm(local_issuer, first, second)
    old_body = _body(local_issuer)  # signed by the key both processes hold

    # The issuer stops publishing the key; a refresh (what the scheduled task runs) removes it.
    local_issuer.rotate()
    issuer_refresh_keys(issuer=trusted, trigger="schedule", outbound=outbound)
    assert IssuerKey.objects.filter(issuer=trusted, removed_at__isnull=True).count() == 1

    status, answer = _exchange(second, old_body)
    assert status == 400, answer
    assert _reason(answer) == "unknown_kid"
    status, answer = _exchange(first, _body(local_issuer))  # the new key, from the database
    assert status == 200, answer


def test_redis_down_still_grants_reads_the_database_and_refuses_a_replay(
    two_processes: Any, local_issuer: DevIssuer, trusted: Issuer
) -> None:
    executable = shutil.which("redis-server")
    if executable is None:
        pytest.skip("redis-server is not installed")
    redis_server = PrivateRedis(executable)
    redis_server.start()
    try:
        Issuer.objects.filter(pk=trusted.pk).update(single_use=True)
        first, second = two_processes(REDIS_URL=redis_server.url)
        _warm(local_issuer, first, second)
        redis_server.stop()

        replayed = _body(local_issuer)
        status, answer = _exchange(first, replayed)
        assert status == 200, answer  # rate limits fail open
        status, answer = _exchange(second, replayed)
        assert status == 400, answer
        assert _reason(answer) == "jti_replayed"

        # No epoch can be read or bumped: the processes read the database, so a disabled
        # issuer is refused by the next exchange, whichever process serves it.
        Issuer.objects.filter(pk=trusted.pk).update(enabled=False)
        for base in (first, second):
            status, answer = _exchange(base, _body(local_issuer))
            assert status == 400, answer
            assert _reason(answer) == "issuer_disabled"
    finally:
        redis_server.stop()
