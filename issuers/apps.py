from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_save


def _count_key_fetch(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    """Every recorded key fetch, ok or failed, counts in `trustportal_key_fetches`."""
    from kernel.metrics import observe_key_fetch

    if created:
        observe_key_fetch(trigger=instance.trigger, ok=instance.ok, reason=instance.reason)


class IssuersConfig(AppConfig):
    name = "issuers"

    def ready(self) -> None:
        # A metric, not logic: the fetch is recorded by issuers.services either way.
        post_save.connect(
            _count_key_fetch, sender="issuers.KeyFetch", dispatch_uid="count-key-fetch"
        )
        from issuers import epoch

        epoch.connect("issuers.Issuer", "issuers.IssuerKey")
