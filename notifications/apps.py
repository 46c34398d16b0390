from __future__ import annotations

import logging

from django.apps import AppConfig

logger = logging.getLogger(__name__)


def _start_fan_out(audit_event_id: int) -> None:
    """After a change commits, start handing it to subscribers; the sweep catches up if not."""
    from notifications.tasks import fan_out_pending

    try:
        fan_out_pending.delay()
    except Exception:
        logger.warning(
            "notifications: could not queue the fan-out of audit record %s; the periodic "
            "sweep delivers it",
            audit_event_id,
            exc_info=True,
        )


class NotificationsConfig(AppConfig):
    name = "notifications"

    def ready(self) -> None:
        from audit.services import on_recorded

        on_recorded(_start_fan_out)
