"""Operational tasks of the project itself."""

from __future__ import annotations

import os
import socket
from typing import Any

from celery import shared_task
from django.db import connection

from trustportal.models import Organization


@shared_task(acks_late=True)
def ping() -> dict[str, Any]:
    """Answer with where the task ran and what database it sees (a worker health check)."""
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "database": connection.vendor,
        "organizations": list(Organization.objects.values_list("login", flat=True)),
    }
