"""Celery tasks of the environments app: each one service call, idempotent, acknowledged late."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings

from environments import opens, signing

logger = logging.getLogger(__name__)


@shared_task(acks_late=True, ignore_result=True)
def rotate_signing_keys() -> dict[str, object]:
    """Every 15 minutes: publish, promote and retire the portal's OIDC signing keys."""
    done = signing.signing_keys_rotate(
        rotation_period=timedelta(days=max(settings.TRUSTPORTAL.oidc_key_rotation_days, 1))
    )
    logger.info(
        "signing keys: created %s, promoted %s, retired %s",
        list(done.created),
        done.promoted,
        list(done.retired),
    )
    return {"created": list(done.created), "promoted": done.promoted, "retired": list(done.retired)}


@shared_task(acks_late=True, ignore_result=True)
def purge_open_outputs() -> int:
    """Every 15 minutes: delete the sealed provider outputs of expired open sessions."""
    deleted = opens.open_outputs_purge()
    logger.info("purged the provider outputs of %d expired open sessions", deleted)
    return deleted
