"""Benchmark harness for SPEC §13: the real server against a bare-WSGI floor, in one run.

    python -m bench.run [--seconds 10] [--rounds 3] [--scenarios exchange,scale,kids,user,purge]
                        [--rate-limits on|off] [--workers 2] [--database trustportal_bench]

Needs PostgreSQL and Redis (the same as `.ci/run`; DATABASE_URL's server is used, with a fresh
database `trustportal_bench`) and `wrk` (Debian package). Starts: a local OIDC issuer (thread),
the project under gunicorn (2 workers, DEBUG off, production settings with the rate limits at
their defaults unless `--rate-limits off`), the floor under gunicorn (as many workers), and drives
both with wrk from a separate process, 8 connections, warm-up then rounds alternating floor and
project. Requests come from 1,000 client addresses (`X-Forwarded-For`, the server trusting the
local proxy) with 1,000 subjects, as a real CI fleet behind a load balancer would, so the rate
limits count every request without refusing any. Prints a table and the ratios; writes
var/bench/results-rate-limits-<on|off>-<workers>w.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DB_NAME = "trustportal_bench"
WORKERS = 2
AUDIENCE = "urn:pulumi:org:acme"
CONNECTIONS = 8
WRK = "/usr/bin/wrk"


@dataclass
class Result:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int
    web_cpu_ms: float = 0.0  # CPU time of the server's processes per request
    db_cpu_ms: float = 0.0  # CPU time of every PostgreSQL process per request


_TICKS = os.sysconf("SC_CLK_TCK")
_servers: dict[str, int] = {}  # base URL -> gunicorn master pid


def _cpu_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])  # utime + stime


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with suppress(OSError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _postgres_pids() -> list[int]:
    pids = []
    for stat in Path("/proc").glob("[0-9]*/comm"):
        try:
            if stat.read_text().strip() == "postgres":
                pids.append(int(stat.parent.name))
        except OSError:
            pass
    return pids


def cpu_snapshot(base_url: str) -> tuple[dict[int, int], dict[int, int]]:
    """CPU ticks so far of the server's processes and of PostgreSQL's, by pid."""
    master = _servers.get(base_url)
    web = [master, *_children(master)] if master else []
    return (
        {pid: _cpu_ticks(pid) for pid in web},
        {pid: _cpu_ticks(pid) for pid in _postgres_pids()},
    )


def _spent_ms(before: dict[int, int], after: dict[int, int]) -> float:
    ticks = sum(max(after[pid] - before.get(pid, 0), 0) for pid in after)
    return ticks * 1000 / _TICKS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)  # noqa: S310
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


def server_url() -> str:
    base = os.environ.get("DATABASE_URL", "postgres://root@127.0.0.1:5432/postgres")
    return base.rsplit("/", 1)[0]


def recreate_database(name: str) -> str:
    import psycopg

    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
        raise SystemExit(f"not a plain database name: {name!r}")
    with psycopg.connect(server_url() + "/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    return f"{server_url()}/{name}"


def server_env(database_url: str, *, rate_limits: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRUSTPORTAL_")}
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        TRUSTPORTAL_ENV="production",
        SECRET_KEY=secrets.token_urlsafe(64),
        TRUSTPORTAL_SECRETS_KEY=secrets.token_urlsafe(32),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        TRUSTPORTAL_SSL_REDIRECT="false",
        TRUSTPORTAL_ALLOW_HTTP_ISSUERS="true",
        TRUSTPORTAL_ISSUER_ALLOWED_NETWORKS="127.0.0.0/8",
        TRUSTPORTAL_OIDC_ISSUER_URL="https://portal.bench.example/oidc",
        TRUSTPORTAL_TRUSTED_PROXIES="127.0.0.1/32",  # wrk stands for the load balancer
        TRUSTPORTAL_LOG_LEVEL="WARNING",
        TRUSTPORTAL_VAR_DIR=str(ROOT / "var" / "bench"),
        DJANGO_SETTINGS_MODULE="trustportal.settings",
    )
    if not rate_limits:
        env.update(TRUSTPORTAL_RATE_LIMIT_PER_IP="0", TRUSTPORTAL_RATE_LIMIT_PER_SUBJECT="0")
    return env


@contextmanager
def gunicorn(app: str, port: int, env: dict[str, str], workers: int = WORKERS) -> Iterator[str]:
    process = subprocess.Popen(  # noqa: S603
        [
            str(BIN / "gunicorn"),
            app,
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/api/user")
        _servers[f"http://127.0.0.1:{port}"] = process.pid
        yield f"http://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


LUA = """
local bodies = {}
local addresses = {}
for line in io.lines(os.getenv("BENCH_BODIES")) do
  local address, body = line:match("^([^\t]*)\t(.*)$")
  table.insert(addresses, address)
  table.insert(bodies, body)
end
local method = os.getenv("BENCH_METHOD")
local auth = os.getenv("BENCH_AUTH")
local i = 0
request = function()
  i = i % #bodies + 1
  local headers = {["Content-Type"] = "application/json", ["X-Forwarded-For"] = addresses[i]}
  if auth ~= nil and auth ~= "" then headers["Authorization"] = "token " .. auth end
  if method == "GET" then return wrk.format("GET", wrk.path, headers) end
  return wrk.format("POST", wrk.path, headers, bodies[i])
end
"""


def address(n: int) -> str:
    """The client address of the n-th body (one per body: the bodies are the callers)."""
    return f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"


def parse_duration(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def run_wrk(
    name: str, url: str, bodies: list[str], *, seconds: int, method: str = "POST", auth: str = ""
) -> Result:
    with tempfile.TemporaryDirectory() as tmp:
        script, body_file = Path(tmp) / "bench.lua", Path(tmp) / "bodies.txt"
        script.write_text(LUA)
        body_file.write_text("".join(f"{address(n)}\t{b}\n" for n, b in enumerate(bodies)))
        env = {
            **os.environ,
            "BENCH_BODIES": str(body_file),
            "BENCH_METHOD": method,
            "BENCH_AUTH": auth,
        }
        base_url = url.split("/", 3)
        web_before, db_before = cpu_snapshot("/".join(base_url[:3]))
        out = subprocess.run(  # noqa: S603
            [
                WRK,
                "-t",
                "2",
                "-c",
                str(CONNECTIONS),
                "-d",
                f"{seconds}s",
                "--latency",
                "-s",
                str(script),
                url,
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        web_after, db_after = cpu_snapshot("/".join(base_url[:3]))
    if "Latency Distribution" not in out:
        raise RuntimeError(f"wrk printed no latency distribution:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    # The distribution's own lines ("     50%    1.23ms"), not "87.50%" in the thread stats.
    p50 = parse_duration(re.search(r"^\s*50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = parse_duration(re.search(r"^\s*99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    errors = int(non2xx.group(1)) if non2xx else 0
    if socket_errors:
        errors += sum(int(g) for g in socket_errors.groups())
    return Result(
        name,
        rps,
        p50,
        p99,
        errors,
        requests,
        _spent_ms(web_before, web_after) / max(requests, 1),
        _spent_ms(db_before, db_after) / max(requests, 1),
    )


def median_result(results: list[Result]) -> Result:
    return Result(
        results[0].name,
        statistics.median(r.rps for r in results),
        statistics.median(r.p50_ms for r in results),
        statistics.median(r.p99_ms for r in results),
        sum(r.errors for r in results),
        sum(r.requests for r in results),
        statistics.median(r.web_cpu_ms for r in results),
        statistics.median(r.db_cpu_ms for r in results),
    )


def exchange_body(token: str, scope: str = "admin") -> str:
    return json.dumps(
        {
            "audience": AUDIENCE,
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
            "requested_token_type": "urn:pulumi:token-type:access_token:organization",
            "scope": scope,
            "subject_token": token,
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="length of each measured round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scenarios", default="exchange,scale,kids,user,purge")
    parser.add_argument(
        "--purge-tokens", type=int, default=1_000_000, help="expired tokens for the purge scenario"
    )
    parser.add_argument(
        "--purge-seconds", type=int, default=75, help="length of the exchange load during the purge"
    )
    parser.add_argument(
        "--rate-limits",
        choices=("on", "off"),
        default="on",
        help="on: the production defaults (600 per address, 120 per subject, per minute)",
    )
    parser.add_argument("--workers", type=int, default=WORKERS, help="gunicorn workers, each")
    parser.add_argument("--database", default=DB_NAME, help="the benchmark's own database")
    args = parser.parse_args()
    scenarios = set(args.scenarios.split(","))

    database_url = recreate_database(args.database)
    env = server_env(database_url, rate_limits=args.rate_limits == "on")
    print(
        f"database {args.database}: migrating… (rate limits {args.rate_limits}, "
        f"{args.workers} workers)",
        flush=True,
    )
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from bench import setup as bench_setup

    world = bench_setup.build(scale="scale" in scenarios)
    floor_key = Path(tempfile.mkdtemp()) / "public.pem"
    floor_key.write_text(world.public_pem)
    floor_env = {**env, "FLOOR_PUBLIC_KEY": str(floor_key), "FLOOR_DATABASE_URL": database_url}

    table: list[tuple[str, Result, Result]] = []
    extra: dict[str, Any] = {}
    with (
        gunicorn("trustportal.wsgi", free_port(), env, args.workers) as project,
        gunicorn("bench.floor:application", free_port(), floor_env, args.workers) as floor,
    ):

        def pair(
            name: str, project_path: str, bodies: list[str], *, warmup: int = 3, **kw: Any
        ) -> tuple[Result, Result]:
            print(f"{name}: warm-up…", flush=True)
            floor_bodies = [exchange_body(t) for t in world.tokens]
            run_wrk(name, floor + "/", floor_bodies, seconds=3)
            run_wrk(name, project + project_path, bodies, seconds=warmup, **kw)
            floors, projects = [], []
            for i in range(args.rounds):
                print(f"{name}: round {i + 1}/{args.rounds}", flush=True)
                floors.append(run_wrk("floor", floor + "/", floor_bodies, seconds=args.seconds))
                projects.append(
                    run_wrk(name, project + project_path, bodies, seconds=args.seconds, **kw)
                )
            result = (median_result(projects), median_result(floors))
            table.append((name, *result))
            return result

        if "exchange" in scenarios:
            pair(
                "exchange (1 issuer x 1 definition)",
                "/api/oauth/token",
                [exchange_body(t) for t in world.tokens],
            )
        if "scale" in scenarios:
            # A long-running process has met every issuer already: warm long enough for each
            # worker to have cached every issuer's trust and compiled policy (a cold miss costs
            # a database read and a compile; `bench.profile` measures that path).
            pair(
                "exchange (1,000 issuers x 40 definitions)",
                "/api/oauth/token",
                [
                    exchange_body(t).replace("urn:pulumi:org:acme", "urn:pulumi:org:big")
                    for t in world.scale_tokens
                ],
                warmup=20,
            )
        if "user" in scenarios:
            pair("GET /api/user", "/api/user", ["-"], method="GET", auth=world.api_token)
        if "purge" in scenarios:
            extra["purge"] = purge_under_load(
                project, world.tokens, count=args.purge_tokens, seconds=args.purge_seconds
            )
        if "kids" in scenarios:
            world.issuer.clear_log()
            started = time.monotonic()
            result = run_wrk(
                "1,000 unknown kids",
                project + "/api/oauth/token",
                [exchange_body(t) for t in world.unknown_kid_tokens],
                seconds=args.seconds,
            )
            elapsed = time.monotonic() - started
            fetches = len(world.issuer.requests_to("/.well-known/jwks"))
            extra["unknown_kids"] = {
                "requests": result.requests,
                "jwks_fetches": fetches,
                "seconds": round(elapsed, 1),
                "allowed_fetches": int(elapsed // 60) + 1,
            }
    world.issuer.stop()
    extra["settings"] = {"rate_limits": args.rate_limits, "workers": args.workers}
    report(table, extra)


def seed_expired_tokens(count: int) -> None:
    """Insert `count` organization tokens that expired 30 days ago (past the purge grace)."""
    from django.db import connection

    from tokens.models import AccessToken
    from trustportal.models import Organization

    organization_id = Organization.objects.get(login="acme").pk
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {AccessToken._meta.db_table} (token_type, organization_id, "  # noqa: S608
            "permission, name, description, token_hash, prefix, created, expires, "
            "revoked_reason, subject) "
            "SELECT 'organization', %s, 'admin', 'bench expired', '', "
            "md5('expired' || i) || md5('bench' || i), 'tpo_', now() - interval '31 days', "
            "now() - interval '30 days', '', 'repo:acme/infra:ref:refs/heads/main' "
            "FROM generate_series(1, %s) AS i",
            [organization_id, count],
        )
        cursor.execute(f"VACUUM ANALYZE {AccessToken._meta.db_table}")


def purge_under_load(
    project: str, tokens: list[str], *, count: int, seconds: int
) -> dict[str, Any]:
    """Purge `count` expired tokens (the Celery task's service) while wrk drives exchanges."""
    import threading

    from tokens.services import tokens_purge

    print(f"purge: inserting {count:,} expired tokens…", flush=True)
    seed_expired_tokens(count)
    outcome: dict[str, Any] = {}

    def purge() -> None:
        time.sleep(1)  # let the load start first
        started = time.monotonic()
        outcome["purged"] = tokens_purge().tokens
        outcome["purge_seconds"] = round(time.monotonic() - started, 1)

    worker = threading.Thread(target=purge)
    worker.start()
    # Long enough to cover the whole purge; the exchange load runs before, during and after.
    load = run_wrk(
        "exchange during purge",
        project + "/api/oauth/token",
        [exchange_body(t) for t in tokens],
        seconds=seconds,
    )
    worker.join()
    outcome.update(
        exchange_rps=round(load.rps, 1),
        exchange_p99_ms=round(load.p99_ms, 2),
        exchange_errors=load.errors,
    )
    return outcome


TARGETS = {
    "exchange (1 issuer x 1 definition)": (
        "throughput >= 0.40 x floor, p99 <= 3 x floor",
        0.40,
        3.0,
    ),
    "GET /api/user": ("throughput >= 0.5 x floor", 0.5, None),
}


def report(table: list[tuple[str, Result, Result]], extra: dict[str, Any]) -> None:
    lines = [
        "",
        f"{'measure':44} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}   "
        f"{'floor req/s':>11} {'floor p99':>9}   ratio   p99 ratio   "
        "CPU ms/request web+db (floor)",
    ]
    for name, project, floor in table:
        ratio = project.rps / floor.rps if floor.rps else 0.0
        p99_ratio = project.p99_ms / floor.p99_ms if floor.p99_ms else 0.0
        lines.append(
            f"{name:44} {project.rps:9.1f} {project.p50_ms:8.2f} {project.p99_ms:8.2f} "
            f"{project.errors:7d}   {floor.rps:11.1f} {floor.p99_ms:9.2f}   "
            f"{ratio:5.2f}   {p99_ratio:5.2f}       "
            f"{project.web_cpu_ms:.2f}+{project.db_cpu_ms:.2f} "
            f"({floor.web_cpu_ms:.2f}+{floor.db_cpu_ms:.2f})"
        )
    by_name = {name: project for name, project, _ in table}
    small, big = (
        by_name.get("exchange (1 issuer x 1 definition)"),
        by_name.get("exchange (1,000 issuers x 40 definitions)"),
    )
    if small and big:
        lines.append(f"1,000 x 40 vs 1 x 1 throughput: {big.rps / small.rps:.2f} (target >= 0.90)")
    if "unknown_kids" in extra:
        kids = extra["unknown_kids"]
        lines.append(
            f"unknown kids: {kids['requests']} requests in {kids['seconds']} s caused "
            f"{kids['jwks_fetches']} JWKS fetches (allowed: {kids['allowed_fetches']})"
        )
    if "purge" in extra:
        purge = extra["purge"]
        lines.append(
            f"purge: {purge['purged']:,} expired tokens in {purge['purge_seconds']} s "
            f"(target < 60 s); concurrent exchanges p99 {purge['exchange_p99_ms']} ms "
            f"(target < 100 ms), {purge['exchange_rps']} req/s, {purge['exchange_errors']} errors"
        )
    print("\n".join(lines))
    settings = extra.get("settings", {})
    suffix = f"-rate-limits-{settings['rate_limits']}-{settings['workers']}w" if settings else ""
    out = ROOT / "var" / "bench" / f"results{suffix}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {"table": [(n, asdict(p), asdict(f)) for n, p, f in table], "extra": extra}, indent=2
        )
    )
    print(f"\nresults written to {out}")


if __name__ == "__main__":
    main()
