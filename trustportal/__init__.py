"""Trust Portal: exchange CI/CD OIDC ID tokens for short-lived access tokens."""

from trustportal.celery import app as celery_app

__all__ = ["celery_app"]
