"""Log configuration: plain lines or JSON lines, each record carrying its request id.

`TRUSTPORTAL_LOG_FORMAT=json` writes one JSON object per record (python-json-logger): the time,
level, logger, message, `request_id` of the request being served (empty outside requests), and
whatever the call passed as `extra=` (the exchange adds `organization`, `decision`, `reason`).
What is logged is chosen at each call: tokens, subject tokens, secrets and passwords never are.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import Any

current_request_id: ContextVar[str] = ContextVar("current_request_id", default="")


class RequestIdFilter(logging.Filter):
    """Give every record the id of the request this thread or task is serving."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id.get()
        return True


def logging_config(log_format: str, level: str) -> dict[str, Any]:
    """The LOGGING setting for the format (`plain` or `json`) and root level."""
    formatters: dict[str, Any] = {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": "kernel.logs.RequestIdFilter"}},
        "formatters": formatters,
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": log_format,
                "filters": ["request_id"],
            }
        },
        "root": {"handlers": ["console"], "level": level},
        # `trustportal.security`: every sign-in, refusal, mapped role change and second factor.
        "loggers": {
            "django.request": {"level": "ERROR"},
            "trustportal.security": {"level": "INFO"},
        },
    }
