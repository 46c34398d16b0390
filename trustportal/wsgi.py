"""WSGI entry point (gunicorn trustportal.wsgi). Refuses to serve an unsafe configuration."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trustportal.settings")

application = get_wsgi_application()

# gunicorn does not run Django's system checks; a server must not start on a configuration the
# checks reject (DEBUG on in production, the default SECRET_KEY, ...).
from trustportal.checks import raise_on_errors  # noqa: E402

raise_on_errors()
