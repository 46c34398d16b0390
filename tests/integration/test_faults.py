"""Faults: Redis down or hung, the issuer down, PostgreSQL connections dropped, a worker killed.

Nothing shared is stopped: Redis outages use a redis-server of the test's own on a free loopback
port (the settings point the cache and the replay store at it); database drops terminate only
this test's own backend (`pg_terminate_backend`); the killed Celery worker is one the test
started, consuming a queue private to the test.

What each fault must give (docs/security.md):
- Redis down, hung or restarted: exchanges still work (rate limits fail open); single-use
  `jti`s are database rows, so a replay is refused whatever happens to Redis.
- Issuer down: the cached keys keep verifying for 7 days after the last good fetch, then its
  tokens are refused (`issuer_unhealthy`) until a fetch succeeds again.
- Database connection lost mid-request: 503 JSON (OAuth body on the token endpoint,
  `{"code","message"}` on the API), nothing half-written, and the next request succeeds.
- Worker killed during a key refresh: the issuer keeps its old complete key set; a later
  refresh installs the new one.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
import time_machine
from django.db import connection, connections
from django.test import Client
from rest_framework.test import APIClient

from devtools.issuer import CannedResponse, DevIssuer, SigningKey
from issuers.models import Issuer, IssuerKey, KeyFetch
from issuers.services import Outbound, issuer_refresh_keys
from issuers.tasks import refresh_issuer_keys
from policies.registration import issuer_register
from tests.conftest import auth
from tests.environments.conftest import trust_local_issuer
from tests.factories import MembershipFactory
from tests.integration.conftest import database_url, process_env
from tests.tokens.conftest import AUDIENCE, exchange_body
from tokens.models import AccessToken, ExchangeEvent
from trustportal.celery import app
from trustportal.models import Organization, Role

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _no_dead_connection_left(transactional_db: None) -> Iterator[None]:
    """Tests here kill database connections: leave none dead for the flush or the next test."""
    yield
    connections.close_all()


def post_exchange(client: APIClient, token: str) -> Any:
    return client.post("/api/oauth/token", exchange_body(token), format="json")


def assert_no_stack_trace(response: Any) -> None:
    text = response.content.decode()
    assert "Traceback" not in text and "File \"" not in text and "psycopg" not in text


# --- Redis -------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PrivateRedis:
    """A redis-server of this test's own: started, stopped, paused and resumed at will."""

    def __init__(self, executable: str) -> None:
        self.executable = executable
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.executable,
                *("--bind", "127.0.0.1", "--port", str(self.port)),
                *("--save", "", "--appendonly", "no"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=20)
            self.process = None

    def pause(self) -> None:
        """Freeze the server: connections are accepted by the kernel, never answered."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)


@pytest.fixture
def private_redis(settings: Any) -> Iterator[PrivateRedis]:
    """The cache and the replay store on a private Redis, configured as in production."""
    executable = shutil.which("redis-server")
    if executable is None:
        pytest.skip("redis-server is not installed")
    server = PrivateRedis(executable)
    server.start()
    settings.REDIS_URL = server.url
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": server.url}}
    try:
        yield server
    finally:
        if server.process is not None:
            server.resume()
        server.stop()


@pytest.fixture
def trusted(
    org: Organization, local_issuer: DevIssuer, outbound: Outbound, allow_local_issuers: None
) -> Issuer:
    """The local issuer registered for `acme` with the token tests' policy."""
    return trust_local_issuer(org, local_issuer, outbound)


@pytest.fixture
def single_use(trusted: Issuer) -> Issuer:
    trusted.single_use = True
    trusted.save()
    return trusted


def test_redis_down_ordinary_exchanges_still_work(
    api_client: APIClient,
    local_issuer: DevIssuer,
    trusted: Issuer,
    private_redis: PrivateRedis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    private_redis.stop()
    with caplog.at_level(logging.WARNING):
        granted = post_exchange(api_client, local_issuer.mint(audience=AUDIENCE))
    assert granted.status_code == 200, granted.json()
    assert "rate limit store unavailable" in caplog.text  # failed open, and said so
    # The minted token works on the API (its use is simply not buffered).
    me = auth(APIClient(), granted.json()["access_token"]).get("/api/user")
    assert me.status_code == 200 and me.json()["githubLogin"] == "acme-bot"


def test_redis_down_single_use_issuers_still_work_and_refuse_replays(
    api_client: APIClient,
    local_issuer: DevIssuer,
    single_use: Issuer,
    private_redis: PrivateRedis,
) -> None:
    """The replay record is a database row: Redis being down changes nothing for it."""
    private_redis.stop()
    token = local_issuer.mint(audience=AUDIENCE)
    granted = post_exchange(api_client, token)
    assert granted.status_code == 200, granted.json()
    replayed = post_exchange(api_client, token)
    assert replayed.status_code == 400 and replayed.json()["reason"] == "jti_replayed"
    assert_no_stack_trace(replayed)
    assert AccessToken.objects.count() == 1
    assert sorted(ExchangeEvent.objects.values_list("reason", flat=True)) == [
        "allowed",
        "jti_replayed",
    ]


def test_redis_restarted_between_two_uses_the_second_is_still_refused(
    api_client: APIClient,
    local_issuer: DevIssuer,
    single_use: Issuer,
    private_redis: PrivateRedis,
) -> None:
    """A restart (or an eviction) empties Redis; a used single-use token must stay used."""
    token = local_issuer.mint(audience=AUDIENCE)
    assert post_exchange(api_client, token).status_code == 200
    private_redis.stop()
    private_redis.start()  # same port, empty (no persistence): the cache reconnects on its own
    assert not redis.Redis(port=private_redis.port).keys("*")
    replayed = post_exchange(api_client, token)
    assert replayed.status_code == 400, replayed.json()
    assert replayed.json()["reason"] == "jti_replayed"
    assert AccessToken.objects.count() == 1


def test_redis_hung_requests_end_within_the_socket_timeouts(
    api_client: APIClient,
    local_issuer: DevIssuer,
    trusted: Issuer,
    private_redis: PrivateRedis,
) -> None:
    private_redis.pause()
    started = time.monotonic()
    granted = post_exchange(api_client, local_issuer.mint(audience=AUDIENCE))
    assert granted.status_code == 200, granted.json()
    trusted.single_use = True
    trusted.save()
    token = local_issuer.mint(audience=AUDIENCE)
    assert post_exchange(api_client, token).status_code == 200
    replayed = post_exchange(api_client, token)
    assert replayed.status_code == 400 and replayed.json()["reason"] == "jti_replayed"
    # Six cache calls in all (two rate limits per exchange), each bounded by the 1 s timeouts.
    assert time.monotonic() - started < 15
    private_redis.resume()
    assert post_exchange(api_client, local_issuer.mint(audience=AUDIENCE)).status_code == 200


# --- the issuer down ---------------------------------------------------------------------------
def test_issuer_down_cached_keys_serve_for_seven_days_then_tokens_are_refused(
    api_client: APIClient, local_issuer: DevIssuer, trusted: Issuer, outbound: Outbound
) -> None:
    port, keys = local_issuer.port, local_issuer.keys
    last_success = trusted.last_success_at
    assert last_success is not None
    local_issuer.stop()

    # A refresh while it is down records the error and keeps the keys.
    issuer_refresh_keys(issuer=trusted, trigger="schedule", outbound=outbound)
    trusted.refresh_from_db()
    assert trusted.last_error and trusted.last_success_at == last_success
    assert IssuerKey.objects.filter(issuer=trusted, removed_at__isnull=True).count() == 1

    with time_machine.travel(last_success + timedelta(days=7, minutes=-1), tick=False):
        granted = post_exchange(api_client, local_issuer.mint(audience=AUDIENCE))
        assert granted.status_code == 200, granted.json()
    with time_machine.travel(last_success + timedelta(days=7, minutes=1), tick=False):
        refused = post_exchange(api_client, local_issuer.mint(audience=AUDIENCE))
        assert refused.status_code == 400
        assert refused.json()["reason"] == "issuer_unhealthy"
        assert_no_stack_trace(refused)

        # The issuer comes back on the same address: one good fetch and its tokens verify.
        with DevIssuer(port=port, keys=keys):
            trusted.refresh_from_db()
            fetch = issuer_refresh_keys(issuer=trusted, trigger="manual", outbound=outbound)
            assert fetch is not None and fetch.ok
            again = post_exchange(api_client, local_issuer.mint(audience=AUDIENCE))
        assert again.status_code == 200, again.json()


# --- PostgreSQL connections dropped ------------------------------------------------------------
def own_backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        row = cursor.fetchone()
    return int(row[0])


def terminate_backend(pid: int) -> None:
    """End one PostgreSQL backend from another connection and wait until it is gone."""
    with psycopg.connect(database_url(), autocommit=True) as side:
        side.execute("SELECT pg_terminate_backend(%s)", [pid])
        for _ in range(200):
            if side.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone():
                time.sleep(0.02)
            else:
                return
    raise AssertionError(f"backend {pid} still there")


@contextmanager
def connection_dropped_before(match: Callable[[str, int], bool]) -> Iterator[list[str]]:
    """Terminate this test's database connection just before the first query `match` accepts.

    `match` gets the SQL and the number of the query within the block (1-based). Yields the
    SQL of the query that was cut off (empty if none was).
    """
    pid = own_backend_pid()
    cut: list[str] = []
    count = 0

    def wrapper(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        nonlocal count
        count += 1
        if not cut and match(sql, count):
            cut.append(sql)
            terminate_backend(pid)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        yield cut


def test_token_endpoint_answers_503_oauth_when_the_database_drops_mid_exchange(
    api_client: APIClient, local_issuer: DevIssuer, trusted: Issuer
) -> None:
    # After every read, just before the token is written (alone or with its event).
    inserting_token = lambda sql, _n: 'INSERT INTO "tokens_accesstoken"' in sql  # noqa: E731
    with connection_dropped_before(inserting_token) as cut:
        dropped = post_exchange(api_client, local_issuer.mint(audience=AUDIENCE))
    assert cut, "the exchange never inserted its token"
    assert dropped.status_code == 503
    body = dropped.json()
    assert body["error"] == "temporarily_unavailable" and body["reason"] == "database_unavailable"
    assert body["request_id"] == dropped["X-Request-Id"]
    assert_no_stack_trace(dropped)
    # Nothing half-written: the token and its event were one transaction.
    assert not AccessToken.objects.exists() and not ExchangeEvent.objects.exists()
    assert post_exchange(api_client, local_issuer.mint(audience=AUDIENCE)).status_code == 200
    assert AccessToken.objects.count() == ExchangeEvent.objects.count() == 1


def test_api_answers_503_json_when_the_database_drops_between_two_queries(
    api_client: APIClient, admin_token: str
) -> None:
    client = auth(api_client, admin_token)
    issuers = "/api/orgs/acme/oidc/issuers"  # the token, then the organization, then issuers
    assert client.get(issuers).status_code == 200
    with connection_dropped_before(lambda _sql, n: n == 2) as cut:
        dropped = client.get(issuers)
    assert cut
    assert dropped.status_code == 503
    assert dropped.json() == {
        "code": 503,
        "message": "The service is temporarily unavailable; retry later.",
    }
    assert dropped["Retry-After"] == "5"
    assert_no_stack_trace(dropped)
    assert client.get(issuers).status_code == 200


def test_api_answers_503_json_when_every_connection_of_the_database_was_cut(
    api_client: APIClient, admin_token: str
) -> None:
    client = auth(api_client, admin_token)
    # An endpoint that reads the database (the token itself may come from the 5 s cache).
    issuers = "/api/orgs/acme/oidc/issuers"
    assert client.get(issuers).status_code == 200
    with psycopg.connect(database_url(), autocommit=True) as side:
        side.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    answers = [client.get(issuers) for _ in range(2)]
    # A health check may notice the dead connection first; if not, the answer is a clean 503.
    assert answers[0].status_code in (200, 503)
    if answers[0].status_code == 503:
        assert answers[0].json()["code"] == 503
        assert_no_stack_trace(answers[0])
    assert answers[1].status_code == 200


def test_pages_answer_503_when_the_database_drops_mid_request(org: Organization) -> None:
    # What the browser gets: the test client would otherwise re-raise an error that a
    # middleware (loading the user or its second factor) met, although the answer is a 503.
    browser = Client(raise_request_exception=False)
    browser.force_login(MembershipFactory(organization=org, role=Role.ADMIN).user)
    assert browser.get("/orgs/acme/").status_code == 200
    with connection_dropped_before(lambda _sql, n: n == 2) as cut:
        dropped = browser.get("/orgs/acme/")
    assert cut
    assert dropped.status_code == 503
    assert dropped["Content-Type"].startswith("text/plain")
    assert "temporarily unavailable" in dropped.content.decode()
    assert_no_stack_trace(dropped)
    assert browser.get("/orgs/acme/").status_code == 200


# --- a Celery worker killed during a key refresh -----------------------------------------------
def start_worker(queue: str) -> subprocess.Popen[bytes]:
    """A Celery worker process (solo pool) consuming only `queue`, reaching 127.0.0.1 issuers."""
    env = process_env(
        TRUSTPORTAL_ALLOW_HTTP_ISSUERS="true", TRUSTPORTAL_ISSUER_ALLOWED_NETWORKS="127.0.0.0/8"
    )
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "celery", "-A", "trustportal", "worker", "--pool", "solo"),
            *("--queues", queue, "--loglevel", "WARNING"),
            *("--without-heartbeat", "--without-gossip", "--without-mingle"),
        ],
        cwd=ROOT,
        env=env,
    )


def wait_for(condition: Callable[[], bool], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def active_kids(issuer: Issuer) -> set[str]:
    return set(
        IssuerKey.objects.filter(issuer=issuer, removed_at__isnull=True).values_list(
            "kid", flat=True
        )
    )


@pytest.fixture
def rotating(
    org: Organization, outbound: Outbound, allow_local_issuers: None
) -> Iterator[dict[str, Any]]:
    """An issuer registered with keys {old, kept}, whose server now serves {new, kept}."""
    old, kept, new = (SigningKey.generate("ES256", kid=kid) for kid in ("old", "kept", "new"))
    with DevIssuer(keys=[old, kept]) as server:
        issuer = issuer_register(organization=org, url=server.url, outbound=outbound)
        # The new key first: a refresh inserts it before it touches the kept one.
        server.keys = [new, kept]
        yield {"issuer": issuer, "server": server, "version": issuer.keys_version}


@contextmanager
def worker_refreshing(issuer: Issuer) -> Iterator[subprocess.Popen[bytes]]:
    """A worker that has been sent a refresh of `issuer`; killed (if alive) on the way out."""
    queue = f"test-faults-{uuid.uuid4().hex}"
    worker = start_worker(queue)
    app.conf.task_always_eager = False
    try:
        refresh_issuer_keys.apply_async(args=[str(issuer.pk)], queue=queue)
        yield worker
    finally:
        app.conf.task_always_eager = True
        if worker.poll() is None:
            worker.kill()
        worker.wait(timeout=30)


def assert_old_key_set(rotating: dict[str, Any]) -> None:
    issuer: Issuer = rotating["issuer"]
    issuer.refresh_from_db()
    assert active_kids(issuer) == {"old", "kept"}
    assert not IssuerKey.objects.filter(issuer=issuer, kid="new").exists()
    assert issuer.keys_version == rotating["version"]
    assert not KeyFetch.objects.filter(issuer=issuer, trigger="schedule").exists()


def assert_refresh_installs_the_new_set(rotating: dict[str, Any], outbound: Outbound) -> None:
    issuer: Issuer = rotating["issuer"]
    fetch = issuer_refresh_keys(issuer=issuer, trigger="manual", outbound=outbound)
    assert fetch is not None and fetch.ok, fetch and fetch.message
    assert active_kids(issuer) == {"new", "kept"}
    assert issuer.keys_version == rotating["version"] + 1


def test_worker_killed_while_fetching_keys_leaves_the_old_set(
    rotating: dict[str, Any], outbound: Outbound
) -> None:
    server: DevIssuer = rotating["server"]
    server.clear_log()
    slow = CannedResponse(body=json.dumps(server.jwks()).encode(), delay=3.0)
    server.canned["/.well-known/jwks"] = slow
    with worker_refreshing(rotating["issuer"]) as worker:
        wait_for(lambda: bool(server.requests_to("/.well-known/jwks")))
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
    time.sleep(slow.delay)  # the answer the killed worker would have stored has come and gone
    assert_old_key_set(rotating)
    del server.canned["/.well-known/jwks"]
    assert_refresh_installs_the_new_set(rotating, outbound)


def test_worker_killed_while_storing_keys_leaves_the_old_set(
    rotating: dict[str, Any], outbound: Outbound
) -> None:
    issuer: Issuer = rotating["issuer"]
    with psycopg.connect(database_url()) as blocker:
        # Hold the kept key's row: the refresh inserts the new key, then waits on this lock
        # inside its transaction — where the worker is killed.
        blocker.execute(
            "SELECT 1 FROM issuers_issuerkey WHERE issuer_id = %s AND kid = 'kept' FOR UPDATE",
            [issuer.pk],
        )
        blocker_pid = blocker.info.backend_pid
        with worker_refreshing(issuer) as worker:
            wait_for(lambda: bool(blocked_by(blocker_pid)))
            stuck = blocked_by(blocker_pid)
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=30)
        blocker.rollback()
    # The worker's backend finds its client gone and rolls the whole transaction back.
    wait_for(lambda: not alive(stuck))
    assert_old_key_set(rotating)
    assert_refresh_installs_the_new_set(rotating, outbound)


def blocked_by(blocker_pid: int) -> list[int]:
    """The backends waiting for a lock that `blocker_pid` holds."""
    with psycopg.connect(database_url(), autocommit=True) as probe:
        rows = probe.execute(
            "SELECT pid FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
            [blocker_pid],
        ).fetchall()
    return [int(row[0]) for row in rows]


def alive(pids: list[int]) -> bool:
    with psycopg.connect(database_url(), autocommit=True) as probe:
        row = probe.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", [pids]
        ).fetchone()
    return bool(row and row[0])
