"""Issuer alerts reach the organization's subscribers: key fetches failing, a certificate
change, the pinned certificate no longer served, and daily reminders until someone acts."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.utils import timezone

from audit.models import AuditEvent
from issuers import tasks
from issuers.services import default_outbound
from notifications.services import webhook_create
from policies.registration import issuer_register
from tests.conftest import LOOPBACK
from tests.issuers import test_certificate_renewal as renewal
from tests.issuers.tls import renew_leaf
from tests.notifications.receiver import Receiver

pytestmark = pytest.mark.django_db

hosts, tls, trust_test_ca = renewal.hosts, renewal.tls, renewal.trust_test_ca


@pytest.fixture
def receiver(settings: Any) -> Any:
    settings.TRUSTPORTAL = dataclasses.replace(
        settings.TRUSTPORTAL, allow_http_issuers=True, webhook_allowed_networks=LOOPBACK
    )
    with Receiver() as running:
        yield running


def kinds(receiver: Receiver) -> list[str]:
    return [json.loads(r.body)["kind"] for r in receiver.received]


def test_certificate_change_and_pin_mismatch_are_alerted_once(
    org,
    hosts,
    tls,
    trust_test_ca,
    tmp_path,
    receiver,
    django_capture_on_commit_callbacks,
) -> None:
    observed_dev, pinned_dev = hosts
    outbound = default_outbound()
    observed = issuer_register(
        organization=org, url=observed_dev.url, name="observed", outbound=outbound
    )
    pinned = issuer_register(
        organization=org,
        url=pinned_dev.url,
        name="pinned",
        thumbprints=[tls.leaf_sha256],
        outbound=outbound,
    )
    webhook_create(
        organization=org,
        values={
            "name": "ops",
            "displayName": "Ops",
            "payloadUrl": receiver.url,
            "filters": [
                "issuer-certificate-changed",
                "issuer-pin-mismatch",
                "issuer-fetch-failing",
            ],
        },
    )
    renewed = renew_leaf(tls, tmp_path / "v2")
    for dev in hosts:
        dev.serve_certificate(renewed.leaf_pem, renewed.key_pem)
    with django_capture_on_commit_callbacks(execute=True):
        tasks.refresh_issuer_keys(str(observed.pk))
        tasks.refresh_issuer_keys(str(pinned.pk))
    with django_capture_on_commit_callbacks(execute=True):  # still failing: no second alert
        tasks.refresh_issuer_keys(str(observed.pk))
        tasks.refresh_issuer_keys(str(pinned.pk))
    assert sorted(kinds(receiver)) == ["issuer-certificate-changed", "issuer-pin-mismatch"]
    changed = AuditEvent.objects.get(event="issuer-certificate-changed")
    assert changed.object_id == str(observed.pk) and renewed.leaf_sha256 in changed.description
    assert AuditEvent.objects.get(event="issuer-pin-mismatch").object_id == str(pinned.pk)


def test_an_unreachable_issuer_alerts_when_fetches_start_failing_and_daily_until_stale(
    org, local_issuer, allow_local_issuers, receiver, django_capture_on_commit_callbacks
) -> None:
    issuer = issuer_register(
        organization=org, url=local_issuer.url, name="dev", outbound=default_outbound()
    )
    with django_capture_on_commit_callbacks(execute=True):
        webhook_create(
            organization=org,
            values={"name": "ops", "displayName": "Ops", "payloadUrl": receiver.url},
        )
    receiver.received.clear()
    local_issuer.stop()
    with django_capture_on_commit_callbacks(execute=True):
        tasks.refresh_issuer_keys(str(issuer.pk))
        tasks.refresh_issuer_keys(str(issuer.pk))
    assert kinds(receiver) == ["issuer-fetch-failing"]

    receiver.received.clear()
    with (
        time_machine.travel(timezone.now() + timedelta(days=6), tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        tasks.report_issuer_warnings()
    assert sorted(kinds(receiver)) == ["issuer-fetch-failing", "issuer-keys-going-stale"]
    stale = AuditEvent.objects.filter(event="issuer-keys-going-stale").get()
    assert stale.category == "alert" and "tokens are refused from" in stale.description
