"""Prometheus metrics: what the portal counts, and the text served at /metrics.

Under gunicorn with several workers, set `PROMETHEUS_MULTIPROC_DIR` to an empty folder before the
server starts: each process then writes its counters there and a scrape adds them up
(prometheus_client's multi-process mode). Without it the counters are this process's own.
Labels carry only bounded values: an organization label is the login of an organization that
exists (an attempt naming an unknown one counts under ""), reasons are the stable reason codes.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry(auto_describe=True)

EXCHANGES = Counter(
    "trustportal_exchanges",
    "Token exchange attempts, by organization, decision and reason code.",
    ["organization", "decision", "reason"],
    registry=REGISTRY,
)
EXCHANGE_SECONDS = Histogram(
    "trustportal_exchange_duration_seconds",
    "Time to answer a token exchange, by decision.",
    ["decision"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)
RATE_LIMITED = Counter(
    "trustportal_rate_limited_requests",
    "Requests refused by a rate limit, by what was limited.",
    ["limit"],
    registry=REGISTRY,
)
KEY_FETCHES = Counter(
    "trustportal_key_fetches",
    "Issuer key (JWKS) fetches, by trigger and outcome (ok, or the failure's reason code).",
    ["trigger", "outcome"],
    registry=REGISTRY,
)
CELERY_TASKS = Counter(
    "trustportal_celery_tasks",
    "Celery task runs, by task and outcome (success, failure, retry).",
    ["task", "outcome"],
    registry=REGISTRY,
)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def observe_exchange(*, organization: str, decision: str, reason: str, seconds: float) -> None:
    """Count one exchange attempt and its latency."""
    EXCHANGES.labels(organization, decision, reason).inc()
    EXCHANGE_SECONDS.labels(decision).observe(seconds)
    if reason == "rate_limited":
        RATE_LIMITED.labels("exchange").inc()


def observe_key_fetch(*, trigger: str, ok: bool, reason: str) -> None:
    KEY_FETCHES.labels(trigger, "ok" if ok else (reason or "error")).inc()


def observe_task(*, task: str, outcome: str) -> None:
    CELERY_TASKS.labels(task, outcome).inc()


def exposition(*scraped: Collector) -> bytes:
    """The Prometheus text of every metric, added up over the processes in multi-process mode.

    `scraped` collectors read their values at scrape time (counts from the database).
    """
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        counters = generate_latest(registry)
    else:
        counters = generate_latest(REGISTRY)
    at_scrape = CollectorRegistry()
    for collector in scraped:
        at_scrape.register(collector)
    return counters + generate_latest(at_scrape)
