"""Webhooks and e-mail: signed deliveries to a real receiver, retries with backoff, alerts."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import ipaddress
import json
from collections.abc import Iterator
from typing import Any

import pytest
import time_machine
from django.core import mail
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditEvent
from notifications import tasks
from notifications.models import Delivery, DeliveryStatus, NotificationSettings, Webhook
from notifications.services import MAX_ATTEMPTS, check_denials
from tests.conftest import auth
from tests.factories import MembershipFactory, OrganizationFactory, make_event, make_token
from tests.notifications.receiver import Receiver
from trustportal.models import Organization, Role

pytestmark = pytest.mark.django_db
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)
SECRET = "whsec-0123456789-abcdef"


@pytest.fixture(autouse=True)
def _local_webhooks(settings: Any) -> None:
    settings.TRUSTPORTAL = dataclasses.replace(
        settings.TRUSTPORTAL, allow_http_issuers=True, webhook_allowed_networks=LOOPBACK
    )
    settings.NOTIFICATION_RETRY_BASE_SECONDS = 7
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


@pytest.fixture
def client(org: Organization, admin_token: str) -> APIClient:
    return auth(APIClient(), admin_token)


def create(client: APIClient, **body: Any) -> Any:
    return client.post("/api/orgs/acme/hooks", body, format="json")


def test_a_change_is_delivered_signed_to_a_real_receiver(
    client: APIClient, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = create(
            client, name="siem", displayName="SIEM", payloadUrl=receiver.url, secret=SECRET
        )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["hasSecret"] is True and "secret" not in body
    # The creation itself is a recorded change, delivered to the new webhook.
    assert len(receiver.received) == 1
    got = receiver.received[0]
    assert got.headers["pulumi-webhook-kind"] == "webhook-created"
    expected = hmac.new(SECRET.encode(), got.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(got.headers["pulumi-webhook-signature"], expected)
    payload = json.loads(got.body)
    assert payload["kind"] == "webhook-created" and payload["organization"] == "acme"
    assert payload["event"]["event"] == "webhook-created"
    assert SECRET not in got.body.decode()
    assert SECRET not in json.dumps(list(AuditEvent.objects.values()), default=str)
    row = Delivery.objects.get()
    assert row.status == DeliveryStatus.DELIVERED and row.response_code == 200
    assert got.headers["pulumi-webhook-id"] == str(row.pk)

    deliveries = client.get("/api/orgs/acme/hooks/siem/deliveries").json()
    assert deliveries[0]["kind"] == "webhook-created" and deliveries[0]["responseCode"] == 200


def test_a_failing_receiver_is_retried_with_backoff_and_every_attempt_is_logged(
    client: APIClient, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    receiver.status = 500
    with django_capture_on_commit_callbacks(execute=True):
        response = create(client, name="down", displayName="Down", payloadUrl=receiver.url)
    assert response.status_code == 201
    assert Delivery.objects.count() == 1  # the first attempt, right after the change
    now = timezone.now()
    for _ in range(MAX_ATTEMPTS + 2):
        # Nothing is due before its backoff has passed; then exactly the next attempt goes.
        assert tasks.retry_due() == 0
        pending = Delivery.objects.filter(retried=False, next_attempt_at__isnull=False).first()
        if pending is None:
            break
        assert pending.next_attempt_at is not None
        now = pending.next_attempt_at
        with time_machine.travel(now, tick=False):
            assert tasks.retry_due() == 1
    rows = list(Delivery.objects.order_by("attempt"))
    assert [r.attempt for r in rows] == list(range(1, MAX_ATTEMPTS + 1))
    assert len(receiver.received) == MAX_ATTEMPTS
    assert all(r.response_code == 500 for r in rows)
    assert [r.status for r in rows] == [DeliveryStatus.FAILED] * (MAX_ATTEMPTS - 1) + [
        DeliveryStatus.GAVE_UP
    ]
    waits = [
        (r.next_attempt_at - r.created).total_seconds() for r in rows[:-1] if r.next_attempt_at
    ]
    assert waits == [7 * 2**i for i in range(MAX_ATTEMPTS - 1)]
    assert rows[-1].next_attempt_at is None


def test_a_fan_out_lost_after_the_commit_is_delivered_by_the_sweep(
    client: APIClient,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    from notifications.tasks import fan_out_pending

    with django_capture_on_commit_callbacks(execute=True):
        create(client, name="later", displayName="Later", payloadUrl=receiver.url)
    receiver.received.clear()

    def broker_down(*args: Any, **kwargs: Any) -> None:
        raise OSError("broker unreachable")

    monkeypatch.setattr(fan_out_pending, "delay", broker_down)
    # The on-commit hook swallows the broker error (the change itself is committed) …
    from audit.services import audit_record

    with django_capture_on_commit_callbacks(execute=True):
        audit_record(
            event="policy-published",
            description="v2",
            organization=Organization.objects.get(login="acme"),
        )
    assert receiver.received == []
    # … and the periodic sweep hands the record over.
    monkeypatch.undo()
    tasks.fan_out_pending()
    assert [json.loads(r.body)["kind"] for r in receiver.received] == ["policy-published"]
    tasks.fan_out_pending()  # the cursor moved: nothing is sent twice
    assert len(receiver.received) == 1


def test_ping_answers_the_delivery(client: APIClient, receiver: Receiver) -> None:
    create(client, name="ping-me", displayName="Ping", payloadUrl=receiver.url, secret=SECRET)
    receiver.received.clear()
    pinged = client.post("/api/orgs/acme/hooks/ping-me/ping")
    assert pinged.status_code == 200
    assert pinged.json()["kind"] == "ping" and pinged.json()["responseCode"] == 200
    assert receiver.received[0].headers["pulumi-webhook-kind"] == "ping"


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:9/hook",
        "http://2852039166/hook",
    ],
)
def test_webhooks_cannot_reach_private_addresses(client: APIClient, url: str) -> None:
    assert create(client, name="ssrf", displayName="x", payloadUrl=url).status_code == 201
    delivered = client.post("/api/orgs/acme/hooks/ssrf/ping").json()
    assert delivered["responseCode"] == 0
    assert delivered["status"] == "gave_up"
    assert delivered["error"]


def test_webhook_urls_must_be_https_unless_allowed(client: APIClient, settings: Any) -> None:
    settings.TRUSTPORTAL = dataclasses.replace(settings.TRUSTPORTAL, allow_http_issuers=False)
    refused = create(client, displayName="x", payloadUrl="http://hooks.example.com/x")
    assert refused.status_code == 400
    assert (
        create(client, displayName="x", payloadUrl="https://u:p@hooks.example.com/").status_code
        == 400
    )
    assert create(client, displayName="x", payloadUrl="javascript:alert(1)").status_code == 400


def test_only_admins_manage_webhooks_and_other_orgs_see_nothing(
    client: APIClient, org: Organization, receiver: Receiver
) -> None:
    create(client, name="mine", displayName="Mine", payloadUrl=receiver.url)
    member = make_token("organization", organization=org, permission="standard", name="m")
    assert (
        auth(APIClient(), member)
        .post(
            "/api/orgs/acme/hooks", {"displayName": "x", "payloadUrl": receiver.url}, format="json"
        )
        .status_code
        == 403
    )
    other = OrganizationFactory(login="globex")
    outsider = make_token("organization", organization=other, permission="admin", name="o")
    for method, path in (
        ("get", "/api/orgs/acme/hooks"),
        ("get", "/api/orgs/acme/hooks/mine"),
        ("delete", "/api/orgs/acme/hooks/mine"),
        ("post", "/api/orgs/acme/hooks/mine/ping"),
        ("get", "/api/orgs/acme/hooks/mine/deliveries"),
    ):
        assert getattr(auth(APIClient(), outsider), method)(path).status_code == 404
    assert Webhook.objects.filter(name="mine").exists()


def test_email_subscribers_get_the_event(
    client: APIClient, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = create(client, name="ops", displayName="Ops", email="ops@acme.example")
    assert response.status_code == 201, response.content
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["ops@acme.example"]
    assert "webhook-created" in mail.outbox[0].subject
    assert Delivery.objects.get().status == DeliveryStatus.DELIVERED


def test_filters_choose_the_event_types(
    client: APIClient, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        create(
            client,
            name="alerts",
            displayName="Alerts only",
            payloadUrl=receiver.url,
            filters=["exchange-denials-unusual"],
        )
    assert receiver.received == []  # webhook-created is not in its filters


def test_unusual_denials_raise_one_alert_an_hour(
    org: Organization,
    client: APIClient,
    receiver: Receiver,
    django_capture_on_commit_callbacks: Any,
) -> None:
    create(
        client,
        name="alerts",
        displayName="Alerts",
        payloadUrl=receiver.url,
        filters=["exchange-denials-unusual"],
    )
    NotificationSettings.objects.update_or_create(
        organization=org, defaults={"denial_threshold": 3}
    )
    for _ in range(3):
        make_event(org)
    assert check_denials() == []  # at the threshold, not over it
    make_event(org)
    with django_capture_on_commit_callbacks(execute=True):
        assert check_denials() == [org.pk]
    assert check_denials() == []  # once an hour
    alert = AuditEvent.objects.get(event="exchange-denials-unusual")
    assert alert.category == "alert" and alert.actor_kind == "system"
    assert [json.loads(r.body)["kind"] for r in receiver.received] == ["exchange-denials-unusual"]
    # Alerts are not configuration changes: the audit log lists changes only.
    listed = client.get("/api/orgs/acme/auditlogs").json()["auditLogEvents"]
    assert "exchange-denials-unusual" not in [e["event"] for e in listed]


def test_the_page_lists_subscriptions_and_deliveries(
    org: Organization, receiver: Receiver, client: APIClient
) -> None:
    from django.test import Client

    from tests.factories import PASSWORD

    create(client, name="siem", displayName="SIEM", payloadUrl=receiver.url)
    client.post("/api/orgs/acme/hooks/siem/ping")
    MembershipFactory(organization=org, role=Role.ADMIN, user__username="pat")
    browser = Client()
    assert browser.login(username="pat", password=PASSWORD)
    page = browser.get("/orgs/acme/notifications/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "SIEM" in text and receiver.url in text and "ping" in text
    added = browser.post(
        "/orgs/acme/notifications/",
        {"display_name": "Pager", "payload_url": receiver.url, "filters": "policy-published"},
    )
    assert added.status_code == 302
    assert Webhook.objects.get(display_name="Pager").filters == ["policy-published"]
