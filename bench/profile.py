"""Profile the exchange in one process: SQL statements per request and where the time goes.

    python -m bench.profile [--requests 2000] [--html var/bench/profile.html]
                            [--rate-limits on|off] [--database NAME] [--layers]

Builds the benchmark's data in its own fresh database (as `bench.run` does), then sends
exchanges straight to Django's WSGI handler (production settings, no network, no server), counts
the SQL statements of one warm request, and runs pyinstrument over the rest. What it prints is
the profile `docs/performance.md` discusses. Requests rotate over the benchmark's 1,000 callers
(subjects and client addresses), so the production rate limits count without refusing.

`--layers` instead measures what each layer in front of the view costs: the request with the
lean path, with the whole middleware stack, with each lean-path layer left out in turn, with no
layer at all, and through a plain Django view instead of the DRF one
(`bench/plain_variant.py`), in alternating blocks so that a busy machine slows each alike.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.run import ROOT, address, exchange_body, recreate_database, server_env

PROFILE_DB = "trustportal_profile"


def _environ(
    body: bytes, *, path: str = "/api/oauth/token", auth: str = "", caller: int = 0
) -> dict[str, Any]:
    extra = {"HTTP_AUTHORIZATION": f"token {auth}"} if auth else {}
    return {
        **extra,
        "HTTP_X_FORWARDED_FOR": address(caller),
        "REQUEST_METHOD": "POST" if body else "GET",
        "PATH_INFO": path,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "HTTP_HOST": "127.0.0.1",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
    }


def _per_request_ms(call: Callable[[], None], count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        call()
    return (time.perf_counter() - started) / count * 1000


def _floor(public_pem: str, database_url: str, body: bytes) -> Callable[[], None]:
    """The floor app (bench/floor.py), called the same way as the project."""
    import importlib
    import tempfile

    key = Path(tempfile.mkdtemp()) / "public.pem"
    key.write_text(public_pem)
    os.environ.update(FLOOR_PUBLIC_KEY=str(key), FLOOR_DATABASE_URL=database_url)
    floor = importlib.import_module("bench.floor")

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        assert status.startswith("200"), status

    def once() -> None:
        b"".join(floor.application(_environ(body), start_response))

    for _ in range(50):
        once()
    return once


def _print_by_package(stats: Any, requests: int) -> None:
    """Own time (cProfile's tottime) per package, in ms per request: where the CPU goes."""
    totals: dict[str, float] = {}
    for (filename, _, _), (_, _, tottime, _, _) in stats.stats.items():
        if "site-packages/" in filename:
            package = filename.split("site-packages/", 1)[1].split("/", 1)[0]
        elif filename.startswith(str(ROOT)):
            package = "project: " + filename[len(str(ROOT)) + 1 :].split("/", 1)[0]
        elif filename.startswith("~") or filename.startswith("<"):
            package = "builtins"
        else:
            package = "stdlib"
        totals[package] = totals.get(package, 0.0) + tottime
    for package, seconds in sorted(totals.items(), key=lambda item: -item[1])[:15]:
        print(f"{package:30} {seconds / requests * 1000:7.3f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--html", default="")
    parser.add_argument(
        "--user", action="store_true", help="profile GET /api/user with a token instead"
    )
    parser.add_argument("--rate-limits", choices=("on", "off"), default="on")
    parser.add_argument("--database", default=PROFILE_DB, help="the profile's own database")
    parser.add_argument(
        "--layers", action="store_true", help="the cost of each layer, and of DRF, instead"
    )
    parser.add_argument(
        "--no-health-checks",
        action="store_true",
        help="turn CONN_HEALTH_CHECKS off (a SELECT 1 before each request's first query)",
    )
    args = parser.parse_args()

    import subprocess

    database_url = recreate_database(args.database)
    env = server_env(database_url, rate_limits=args.rate_limits == "on")
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True
    )
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.handlers.wsgi import WSGIHandler
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from pyinstrument import Profiler

    from bench import setup as bench_setup

    if args.no_health_checks:
        connection.settings_dict["CONN_HEALTH_CHECKS"] = False
    world = bench_setup.build(scale=False)
    if args.layers:
        from bench.layers import measure_layers

        measure_layers([exchange_body(t).encode() for t in world.tokens], args.requests)
        world.issuer.stop()
        return
    app = WSGIHandler()
    body = exchange_body(world.token).encode()
    bodies = [exchange_body(t).encode() for t in world.tokens]
    statuses: list[str] = []
    path = "/api/user" if args.user else "/api/oauth/token"
    counter = iter(range(10**9))

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        statuses.append(status)

    def once() -> None:
        n = next(counter) % len(bodies)
        response = app(
            _environ(
                b"" if args.user else bodies[n],
                path=path,
                auth=world.api_token if args.user else "",
                caller=n,
            ),
            start_response,
        )
        b"".join(response)
        response.close()

    for _ in range(50):  # warm caches: organization, issuer keys, compiled policy
        once()
    with CaptureQueriesContext(connection) as queries:
        once()
    print(f"SQL statements in one warm request to {path}: {len(queries.captured_queries)}")
    for query in queries.captured_queries:
        print("  ", query["sql"][:160])

    floor_once = _floor(world.public_pem, database_url, body)
    # Alternate blocks of the project and the floor so that a busy machine slows both alike.
    project_ms, floor_ms = [], []
    block = max(args.requests // 10, 1)
    for _ in range(10):
        project_ms.append(_per_request_ms(once, block))
        floor_ms.append(_per_request_ms(floor_once, block))
    ratios = sorted(f / p for p, f in zip(project_ms, floor_ms, strict=True))
    print(
        f"per request, median of 10 blocks of {block}: project "
        f"{statistics.median(project_ms):.3f} ms, floor {statistics.median(floor_ms):.3f} ms; "
        f"floor/project ratio median {statistics.median(ratios):.2f} "
        f"(range {ratios[0]:.2f}-{ratios[-1]:.2f})"
    )

    if os.environ.get("PROFILE_CPROFILE") == "1":
        import cProfile
        import pstats

        cprofile = cProfile.Profile()
        cprofile.enable()
        for _ in range(args.requests):
            once()
        cprofile.disable()
        stats = pstats.Stats(cprofile)
        if os.environ.get("PROFILE_BY_PACKAGE") == "1":
            _print_by_package(stats, args.requests)
            return
        stats.sort_stats("cumulative").print_stats(70)
        stats.sort_stats("tottime").print_stats(40)
        return

    profiler = Profiler(interval=0.001)
    started = time.perf_counter()
    profiler.start()
    for _ in range(args.requests):
        once()
    profiler.stop()
    elapsed = time.perf_counter() - started
    bad = [s for s in statuses if not s.startswith("200")]
    print(
        f"{args.requests} exchanges in {elapsed:.2f} s: {elapsed / args.requests * 1000:.3f} ms "
        f"each (profiled), {len(bad)} not 200"
    )
    show_all = os.environ.get("PROFILE_ALL") == "1"
    print(profiler.output_text(unicode=False, color=False, show_all=show_all))
    if args.html:
        Path(args.html).parent.mkdir(parents=True, exist_ok=True)
        Path(args.html).write_text(profiler.output_html())
    world.issuer.stop()


if __name__ == "__main__":
    main()
