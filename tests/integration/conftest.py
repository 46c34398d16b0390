"""Helpers for tests that run other processes against the test database."""

from __future__ import annotations

import os
from urllib.parse import quote

from django.db import connection


def database_url() -> str:
    """The URL of the database this test uses (pytest-django's test database)."""
    s = connection.settings_dict
    user = quote(s.get("USER") or "")
    password = f":{quote(s['PASSWORD'])}" if s.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    return f"postgres://{auth}{s.get('HOST') or '127.0.0.1'}:{s.get('PORT') or 5432}/{s['NAME']}"


def process_env(**extra: str) -> dict[str, str]:
    """The environment for a child process that must see this test's database."""
    return {**os.environ, "DATABASE_URL": database_url(), "TRUSTPORTAL_ENV": "test", **extra}
