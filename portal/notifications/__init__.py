"""Alerts and webhooks: their pages and API."""
