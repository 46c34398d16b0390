"""Operations endpoints against real processes: metrics across gunicorn workers, readiness faults.

The portal runs under gunicorn with two workers on this test's database; PostgreSQL is reached
through a TCP relay the test can cut (what a stopped or unreachable server looks like to the
portal), Redis is a server of the test's own that it stops.
"""

from __future__ import annotations

import contextlib
import json
import select
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from devtools.issuer import DevIssuer
from tests.integration.conftest import database_url, process_env
from tests.integration.test_faults import PrivateRedis, free_port
from tests.tokens import conftest as tokens_conftest
from tests.tokens.conftest import AUDIENCE, exchange_body

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

trusted = tokens_conftest.trusted
ROOT = Path(__file__).resolve().parents[2]
METRICS_TOKEN = "metrics-test-token-0123456789"


class Relay:
    """A TCP relay to PostgreSQL; `cut()` closes it and every connection through it."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        listener.settimeout(0.2)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    @staticmethod
    def _pump(a: socket.socket, b: socket.socket) -> None:
        try:
            while True:
                ready, _, _ = select.select([a, b], [], [], 1.0)
                for source in ready:
                    data = source.recv(65536)
                    if not data:
                        return
                    (b if source is a else a).sendall(data)
        except OSError:
            return

    def cut(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._sockets.clear()


def _relayed_database_url(relay: Relay) -> str:
    parts = urlsplit(database_url())
    netloc = parts.netloc.rsplit("@", 1)
    auth = f"{netloc[0]}@" if len(netloc) == 2 else ""
    return urlunsplit(parts._replace(netloc=f"{auth}127.0.0.1:{relay.port}"))


def _get(url: str, **headers: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _post_json(url: str, body: dict[str, Any]) -> int:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def _wait_until_up(base: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert server.poll() is None, "gunicorn exited"
        try:
            if _get(f"{base}/healthz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError("gunicorn did not start")


def _gunicorn(port: int, **env: str) -> subprocess.Popen[bytes]:
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    return subprocess.Popen(
        [
            gunicorn,
            "trustportal.wsgi",
            *("--bind", f"127.0.0.1:{port}", "--workers", "2", "--chdir", str(ROOT)),
            *("--log-level", "warning"),
        ],
        env=process_env(PYTHONPATH=str(ROOT), **env),
        cwd=ROOT,
    )


@pytest.fixture
def server_factory() -> Iterator[Any]:
    started: list[subprocess.Popen[bytes]] = []

    def start(**env: str) -> str:
        port = free_port()
        server = _gunicorn(port, **env)
        started.append(server)
        base = f"http://127.0.0.1:{port}"
        _wait_until_up(base, server)
        return base

    yield start
    for server in started:
        server.terminate()
        server.wait(timeout=30)


def test_metrics_add_up_the_exchanges_of_both_gunicorn_workers(
    tmp_path: Path, server_factory: Any, local_issuer: DevIssuer, trusted: Any
) -> None:
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    base = server_factory(
        PROMETHEUS_MULTIPROC_DIR=str(multiproc), TRUSTPORTAL_METRICS_TOKEN=METRICS_TOKEN
    )
    allowed = [
        exchange_body(local_issuer.mint(audience=AUDIENCE), scope="admin") for _ in range(30)
    ]
    denied = [
        exchange_body(
            local_issuer.mint({"event_name": "pull_request"}, audience=AUDIENCE), scope="admin"
        )
        for _ in range(10)
    ]
    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(
            pool.map(lambda b: _post_json(f"{base}/api/oauth/token", b), allowed + denied)
        )
    assert statuses.count(200) == 30 and statuses.count(400) == 10

    # Both workers served exchanges: each wrote its own counter file.
    counter_files = {p.name for p in multiproc.glob("counter_*.db")}
    assert len(counter_files) >= 2, counter_files

    assert _get(f"{base}/metrics")[0] == 403
    status, body = _get(f"{base}/metrics", Authorization=f"Bearer {METRICS_TOKEN}")
    assert status == 200
    text = body.decode()
    total = "trustportal_exchanges_total"
    assert f'{total}{{decision="allow",organization="acme",reason="allowed"}} 30.0' in text
    assert f'{total}{{decision="deny",organization="acme",reason="denied_by_policy"}} 10.0' in text
    assert 'trustportal_exchange_duration_seconds_count{decision="allow"} 30.0' in text
    assert 'trustportal_active_access_tokens{type="organization"} 30.0' in text


def test_readyz_turns_503_when_postgresql_or_redis_is_unreachable_and_recovers(
    server_factory: Any,
) -> None:
    executable = shutil.which("redis-server")
    if executable is None:
        pytest.skip("redis-server is not installed")
    parts = urlsplit(database_url())
    relay = Relay((parts.hostname or "127.0.0.1", parts.port or 5432))
    relay.start()
    redis_server = PrivateRedis(executable)
    redis_server.start()
    try:
        base = server_factory(DATABASE_URL=_relayed_database_url(relay), REDIS_URL=redis_server.url)
        status, body = _get(f"{base}/readyz")
        assert status == 200, body
        assert json.loads(body)["checks"] == {"database": "ok", "migrations": "ok", "redis": "ok"}

        redis_server.stop()
        status, body = _get(f"{base}/readyz")
        assert status == 503
        assert json.loads(body)["checks"]["redis"] == "unavailable"
        assert _get(f"{base}/healthz")[0] == 200  # the process itself still answers

        redis_server.start()
        assert _get(f"{base}/readyz")[0] == 200

        relay.cut()
        started = time.monotonic()
        status, body = _get(f"{base}/readyz")
        assert status == 503, body
        assert json.loads(body)["checks"]["database"] == "unavailable"
        assert time.monotonic() - started < 10
        assert _get(f"{base}/healthz")[0] == 200

        relay.start()
        deadline = time.monotonic() + 20
        while _get(f"{base}/readyz")[0] != 200:
            assert time.monotonic() < deadline, "not ready again after PostgreSQL came back"
            time.sleep(0.2)
    finally:
        relay.cut()
        redis_server.stop()
