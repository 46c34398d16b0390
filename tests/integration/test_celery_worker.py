"""A task executed by a real Celery worker process over Redis, against the test database."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection

from tests.factories import OrganizationFactory
from tests.integration.conftest import process_env
from trustportal.celery import app
from trustportal.tasks import ping

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def worker() -> Iterator[str]:
    """A Celery worker in its own process, consuming a queue private to this test."""
    queue = f"test-{uuid.uuid4().hex}"
    env = process_env()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "trustportal",
            "worker",
            "--pool",
            "solo",
            "--queues",
            queue,
            "--loglevel",
            "WARNING",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        yield queue
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_a_task_runs_in_a_separate_worker_process(worker: str) -> None:
    assert connection.vendor == "postgresql"
    OrganizationFactory(login="worker-visible")
    app.conf.task_always_eager = False
    try:
        result = ping.apply_async(queue=worker).get(timeout=60)
    finally:
        app.conf.task_always_eager = True
    assert result["pid"] != os.getpid()
    assert result["database"] == "postgresql"
    assert "worker-visible" in result["organizations"]
