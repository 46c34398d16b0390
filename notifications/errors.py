"""Errors of the notifications app."""

from __future__ import annotations

from kernel.errors import BadRequest, Conflict


class WebhookInvalid(BadRequest):
    reason = "webhook_invalid"


class WebhookConflict(Conflict):
    reason = "webhook_conflict"
    default_message = "A webhook with that name already exists in the organization."
