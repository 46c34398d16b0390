"""Time the exchange history over 1,000,000 events on PostgreSQL (SPEC §13: < 200 ms each).

    python -m bench.history [--count 1000000] [--runs 20] [--keep]

Needs PostgreSQL: DATABASE_URL names the server (e.g. postgres://root@127.0.0.1:5432/postgres);
the benchmark makes its own fresh database `trustportal_history_bench`, migrates it, seeds the
events with COPY (bench/seed_events.py), VACUUM ANALYZEs, then requests each page in-process through
Django's test client as a signed-in auditor (URL routing, access check, query, template) and
times the query alone with EXPLAIN ANALYZE. Prints a Markdown table (median and p95 of --runs
warm runs, plus the first, cold run) ready for docs/performance.md. --keep keeps the database.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import statistics
import sys
import time
from typing import Any
from urllib.parse import urlparse, urlunparse

DB_NAME = "trustportal_history_bench"


def _database_url(base: str) -> str:
    parts = urlparse(base)
    return urlunparse(parts._replace(path=f"/{DB_NAME}"))


def _recreate_database(base: str) -> None:
    import psycopg

    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}"')
        admin.execute(f'CREATE DATABASE "{DB_NAME}"')


def _drop_database(base: str) -> None:
    import psycopg

    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}"')


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory = ""
    try:
        with open("/proc/meminfo") as info:
            kib = int(info.readline().split()[1])
            memory = f", {kib / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{cpu}, {os.cpu_count()} CPUs{memory}, {platform.system()} {platform.release()}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    args = parser.parse_args(argv)

    base = os.environ.get("DATABASE_URL", "")
    if not base.startswith("postgres"):
        sys.exit("set DATABASE_URL to a PostgreSQL server (the benchmark makes its own database)")
    _recreate_database(base)
    os.environ["DATABASE_URL"] = _database_url(base)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trustportal.settings")
    os.environ["TRUSTPORTAL_ENV"] = "development"
    os.environ["DEBUG"] = "false"
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from bench.seed_events import repository, seed, subject
    from trustportal.models import Membership, Organization, Role, User

    call_command("migrate", verbosity=0)
    seeded = seed(count=args.count, org="acme")
    organization = Organization.objects.get(login="acme")
    auditor = User.objects.create(username="auditor")
    Membership.objects.create(organization=organization, user=auditor, role=Role.AUDITOR)
    client = Client()
    client.force_login(auditor)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM tokens_exchangeevent WHERE organization_id = %s",
            [organization.pk],
        )
        in_org = cursor.fetchone()[0]

    # With the seed's Pareto spread, svc-0003 has ~4 % of the events and svc-0100 a few dozen.
    busy = repository(3, "acme")
    quiet = repository(100, "acme")
    cases: list[tuple[str, str]] = [
        ("first history page (50 newest)", "/orgs/acme/history/"),
        ("`subject` exact, busy repository", f"/orgs/acme/history/?subject={subject(busy, 0)}"),
        ("`subject` exact, rare repository", f"/orgs/acme/history/?subject={subject(quiet, 0)}"),
        ("`subject` prefix pattern", f"/orgs/acme/history/?subject=repo:{quiet}:*"),
        ("`subject` matching 90 % (`repo:acme/*`)", "/orgs/acme/history/?subject=repo:acme/*"),
        ("`repository` exact", f"/orgs/acme/history/?repository={quiet}"),
        ("`decision=deny&reason=expired`", "/orgs/acme/history/?decision=deny&reason=expired"),
        ("page 200 via `before` cursor", ""),
        ("`GET /api/…/oidc/exchanges?subject=…` (100 rows)", ""),
        ("dashboard (30-day chart, tops, health)", "/orgs/acme/"),
    ]
    # A deep page: the cursor 10,000 events back.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id FROM tokens_exchangeevent WHERE organization_id = %s "
            "ORDER BY id DESC OFFSET 10000 LIMIT 1",
            [organization.pk],
        )
        deep = cursor.fetchone()[0]
    cases[7] = (cases[7][0], f"/orgs/acme/history/?before={deep}")
    from tokens.services import token_create

    _, api_token = token_create(
        token_type="organization", organization=organization, permission="admin"
    )
    api = Client(HTTP_AUTHORIZATION=f"token {api_token}")
    cases[8] = (cases[8][0], f"/api/orgs/acme/oidc/exchanges?subject=repo:{busy}:*")

    results: list[dict[str, Any]] = []
    for label, url in cases:
        caller = api if url.startswith("/api/") else client
        timings = []
        for _ in range(args.runs + 1):
            started = time.perf_counter()
            response = caller.get(url)
            timings.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (url, response.status_code)
        cold, warm = timings[0], timings[1:]
        if url.startswith("/api/"):
            shown = len(json.loads(response.content)["exchanges"])
        else:
            shown = len(re.findall(r'href="/orgs/acme/history/\d+/"', response.content.decode()))
        results.append(
            {
                "label": label,
                "url": url,
                "rows": shown,
                "cold": cold,
                "median": statistics.median(warm),
                "p95": _percentile(warm, 0.95),
            }
        )

    # The query alone, as the planner runs it (EXPLAIN ANALYZE of the history selector).
    from tokens.filters import event_filters_from
    from tokens.selectors import EVENT_LIST_DEFERRED, events_matching

    plans = []
    for label, params in (
        ("first page", {}),
        ("`subject` exact", {"subject": subject(quiet, 0)}),
        ("`subject` prefix", {"subject": f"repo:{quiet}:*"}),
    ):
        query = events_matching(organization=organization, filters=event_filters_from(params))
        plan = query.defer(*EVENT_LIST_DEFERRED)[:51].explain(analyze=True)
        timing = [line for line in plan.splitlines() if "Execution Time" in line]
        first_node = plan.splitlines()[1].strip() if len(plan.splitlines()) > 1 else ""
        plans.append((label, timing[0].split(":")[1].strip() if timing else "?", first_node))

    # The worst case, reported apart: a pattern with no literal prefix that matches nothing.
    worst_url = "/orgs/acme/history/?subject=*nothing-like-this*"
    started = time.perf_counter()
    assert client.get(worst_url).status_code == 200
    worst_ms = (time.perf_counter() - started) * 1000

    # The CSV export of the whole organization, streamed; peak memory of this process.
    export_rows = 0
    export_bytes = 0
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    response = client.get("/orgs/acme/history/export.csv")
    stream = response.streaming_content  # type: ignore[attr-defined]
    for chunk in stream:
        export_bytes += len(chunk)
        export_rows += chunk.count(b"\n")
    export_s = time.perf_counter() - started
    rss_growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024

    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        version = cursor.fetchone()[0].split(" on ")[0]
        cursor.execute("SELECT pg_size_pretty(pg_total_relation_size('tokens_exchangeevent'))")
        size = cursor.fetchone()[0]

    print(f"Machine: {_machine()}")
    print(
        f"Database: {version}; {args.count:,} events ({in_org:,} in acme), table + indexes {size}"
    )
    print(f"Seeding: {seeded:.1f} s with COPY")
    print(f"Runs: {args.runs} warm runs per page after one cold run; in-process Django test client")
    print()
    print("| page | rows shown | median ms | p95 ms | first (cold) ms |")
    print("|---|---:|---:|---:|---:|")
    for row in results:
        print(
            f"| {row['label']} | {row['rows']} | {row['median']:.1f} | {row['p95']:.1f} "
            f"| {row['cold']:.1f} |"
        )
    print()
    print(f"Worst case `{worst_url}` (no literal prefix, no match): {worst_ms:.0f} ms")
    print(
        f"CSV export of acme: {export_rows - 1:,} rows, {export_bytes / 2**20:.0f} MiB in "
        f"{export_s:.1f} s; peak memory grew by {rss_growth:.0f} MiB"
    )
    print()
    print("| query alone (EXPLAIN ANALYZE) | execution | plan |")
    print("|---|---:|---|")
    for label, execution, node in plans:
        print(f"| {label} | {execution} | `{node[:90]}` |")
    connection.close()
    if not args.keep:
        _drop_database(base)


if __name__ == "__main__":
    main()
