"""The Celery application; tasks live in each app's tasks.py."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery, signals

from kernel.metrics import observe_task

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trustportal.settings")

app = Celery("trustportal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.task_success.connect
def _task_succeeded(sender: Any = None, **kwargs: Any) -> None:
    observe_task(task=getattr(sender, "name", "unknown"), outcome="success")


@signals.task_failure.connect
def _task_failed(sender: Any = None, **kwargs: Any) -> None:
    observe_task(task=getattr(sender, "name", "unknown"), outcome="failure")


@signals.task_retry.connect
def _task_retried(sender: Any = None, request: Any = None, **kwargs: Any) -> None:
    observe_task(task=getattr(request, "task", None) or "unknown", outcome="retry")
