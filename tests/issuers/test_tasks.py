"""Key refresh tasks (run eagerly here; the integration suite runs a real worker)."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from issuers.models import Issuer, KeyFetch
from issuers.tasks import refresh_due_issuer_keys, refresh_issuer_keys, report_issuer_warnings
from policies.registration import issuer_register

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("allow_local_issuers")]


def test_only_due_issuers_are_refreshed(org, local_issuer, outbound) -> None:
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        issuer = issuer_register(organization=org, url=local_issuer.url, outbound=outbound)
        local_issuer.clear_log()
        assert refresh_due_issuer_keys.delay().get() == 0
    assert local_issuer.requests == []
    with time_machine.travel(start + timedelta(seconds=301), tick=False):
        assert refresh_due_issuer_keys.delay().get() == 1
    assert len(local_issuer.requests_to("/.well-known/jwks")) == 1
    assert KeyFetch.objects.filter(issuer=issuer, trigger="schedule", ok=True).count() == 1


def test_refresh_task_is_idempotent_and_tolerates_a_deleted_issuer(
    org, local_issuer, outbound
) -> None:
    issuer = issuer_register(organization=org, url=local_issuer.url, outbound=outbound)
    assert refresh_issuer_keys.delay(str(issuer.pk)).get() == {"ok": True, "reason": ""}
    assert refresh_issuer_keys.delay(str(issuer.pk)).get() == {"ok": True, "reason": ""}
    Issuer.objects.all().delete()
    assert refresh_issuer_keys.delay(str(issuer.pk)).get() is None


def test_disabled_and_static_issuers_are_not_scheduled(org, local_issuer, outbound) -> None:
    issuer = issuer_register(organization=org, url=local_issuer.url, outbound=outbound)
    Issuer.objects.filter(pk=issuer.pk).update(enabled=False, next_refresh_at=None)
    assert refresh_due_issuer_keys.delay().get() == 0


def test_warnings_report_logs_expiring_certificates(org, local_issuer, outbound, caplog) -> None:
    issuer = issuer_register(organization=org, url=local_issuer.url, outbound=outbound)
    Issuer.objects.filter(pk=issuer.pk).update(
        thumbprints=["ab" * 32],
        cert_sha256="ab" * 32,
        cert_not_after=timezone.now() + timedelta(days=3),
    )
    with caplog.at_level(logging.WARNING, logger="issuers.tasks"):
        assert report_issuer_warnings.delay().get() == 1
    assert "pinned certificate expires" in caplog.text
