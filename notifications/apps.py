from __future__ import annotations

from django.apps import AppConfig


def _fan_out_after_commit(audit_event_id: int) -> None:
    from notifications.tasks import fan_out

    fan_out.delay(audit_event_id)


class NotificationsConfig(AppConfig):
    name = "notifications"

    def ready(self) -> None:
        from audit.services import on_recorded

        # Every recorded change or alert, once committed, goes to the matching subscriptions.
        on_recorded(_fan_out_after_commit)
