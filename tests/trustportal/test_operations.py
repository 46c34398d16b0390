"""Client addresses behind proxies, /healthz, /readyz, /metrics and JSON log lines."""

from __future__ import annotations

import io
import ipaddress
import json
import logging
import logging.config
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from devtools.issuer import DevIssuer
from kernel.clientaddr import client_address
from kernel.config import ConfigError, load_config
from kernel.logs import logging_config
from kernel.metrics import EXCHANGES, REGISTRY
from portal import operations
from tests.tokens import conftest as tokens_conftest
from tests.tokens.conftest import AUDIENCE, exchange_body

trusted = tokens_conftest.trusted

PROXIES = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8"))


@pytest.mark.parametrize(
    ("remote", "forwarded", "proxies", "expected"),
    [
        # No trusted proxies: the header is never read, whoever sends it.
        ("203.0.113.7", "198.51.100.1", (), "203.0.113.7"),
        # A peer that is not a trusted proxy cannot speak for anyone else.
        ("203.0.113.7", "198.51.100.1", PROXIES, "203.0.113.7"),
        # One trusted proxy: the entry it appended is the client.
        ("10.0.0.2", "198.51.100.1", PROXIES, "198.51.100.1"),
        # The client prepends a lie: the right-most untrusted entry wins, not the left-most.
        ("10.0.0.2", "1.2.3.4, 198.51.100.1", PROXIES, "198.51.100.1"),
        # Two trusted proxies in a chain are skipped.
        ("10.0.0.2", "6.6.6.6, 198.51.100.1, 10.0.0.9", PROXIES, "198.51.100.1"),
        ("fd00::2", "2001:db8::1, fd00::3", PROXIES, "2001:db8::1"),
        # Only trusted hops: the farthest one.
        ("10.0.0.2", "10.0.0.8, 10.0.0.9", PROXIES, "10.0.0.8"),
        # A malformed entry stops the walk at the last trusted hop.
        ("10.0.0.2", "198.51.100.1, garbage", PROXIES, "10.0.0.2"),
        ("10.0.0.2", "198.51.100.1, 10.0.0.9, ", PROXIES, "198.51.100.1"),
        # A trusted proxy that sent no header: itself.
        ("10.0.0.2", None, PROXIES, "10.0.0.2"),
        ("", "198.51.100.1", PROXIES, None),
    ],
)
def test_client_address(
    remote: str, forwarded: str | None, proxies: Any, expected: str | None
) -> None:
    meta = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded
    assert client_address(meta, proxies) == expected


def test_trusted_proxies_setting_is_parsed_and_refused_when_malformed() -> None:
    config = load_config({"TRUSTPORTAL_TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.10"})
    assert [str(n) for n in config.trusted_proxies] == ["10.0.0.0/8", "192.0.2.10/32"]
    with pytest.raises(ConfigError):
        load_config({"TRUSTPORTAL_TRUSTED_PROXIES": "proxy.internal"})
    with pytest.raises(ConfigError):
        load_config({"TRUSTPORTAL_LOG_FORMAT": "xml"})


@pytest.mark.django_db
def test_rate_limits_and_history_see_the_client_behind_a_trusted_proxy(
    settings: Any, api_client: APIClient, local_issuer: DevIssuer, trusted: Any
) -> None:
    from dataclasses import replace

    from tokens.models import ExchangeEvent

    settings.TRUSTPORTAL = replace(settings.TRUSTPORTAL, trusted_proxies=PROXIES)
    body = exchange_body(local_issuer.mint(audience=AUDIENCE), scope="admin")
    api_client.post(
        "/api/oauth/token",
        body,
        format="json",
        REMOTE_ADDR="10.0.0.2",
        HTTP_X_FORWARDED_FOR="1.2.3.4, 198.51.100.1",
    )
    assert ExchangeEvent.objects.get().client_ip == "198.51.100.1"


@pytest.mark.django_db
def test_healthz_answers_whatever_the_host_and_without_a_session() -> None:
    client = Client(HTTP_HOST="10.1.2.3:8000")  # not in ALLOWED_HOSTS: a load balancer's probe
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "Set-Cookie" not in response.headers
    assert response.headers["Cache-Control"] == "no-store"
    assert client.post("/healthz").status_code == 405


@pytest.mark.django_db
def test_readyz_checks_the_database_and_migrations(monkeypatch: pytest.MonkeyPatch) -> None:
    ready = Client().get("/readyz")
    assert ready.status_code == 200, ready.content
    assert ready.json()["checks"]["database"] == "ok"
    assert ready.json()["checks"]["migrations"] == "ok"


@pytest.mark.django_db
def test_readyz_is_503_with_a_pending_migration(monkeypatch: pytest.MonkeyPatch) -> None:
    from django.db.migrations.executor import MigrationExecutor

    monkeypatch.setattr(operations, "_migrations_applied", False)
    real_plan = MigrationExecutor.migration_plan

    def one_pending(self: MigrationExecutor, targets: Any, clean_start: bool = False) -> Any:
        plan = real_plan(self, targets, clean_start)
        assert plan == []  # the test database is migrated: the check itself found nothing
        return [("a pending migration", False)]

    monkeypatch.setattr(MigrationExecutor, "migration_plan", one_pending)
    response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["migrations"] == "pending"


@pytest.mark.django_db
def test_readyz_is_503_when_redis_does_not_answer(settings: Any) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["redis"] == "unavailable"


def _with_metrics_access(settings: Any, **changes: Any) -> None:
    from dataclasses import replace

    settings.TRUSTPORTAL = replace(settings.TRUSTPORTAL, **changes)


@pytest.mark.django_db
def test_metrics_are_refused_without_the_token_or_an_allowed_network(settings: Any) -> None:
    assert Client().get("/metrics").status_code == 403
    _with_metrics_access(settings, metrics_token="m-secret-1234567890")
    assert Client().get("/metrics").status_code == 403
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert (
        Client().get("/metrics", HTTP_AUTHORIZATION="Bearer m-secret-1234567890x").status_code
        == 403
    )
    ok = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer m-secret-1234567890")
    assert ok.status_code == 200
    assert ok["Content-Type"].startswith("text/plain; version=0.0.4")
    _with_metrics_access(
        settings, metrics_token=None, metrics_allowed_networks=(ipaddress.ip_network("10.0.0.0/8"),)
    )
    assert Client(REMOTE_ADDR="10.9.9.9").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="192.0.2.1").get("/metrics").status_code == 403


def _sample(name: str, **labels: str) -> float:
    value = REGISTRY.get_sample_value(name, labels)
    return value or 0.0


@pytest.mark.django_db
def test_exchange_metrics_count_decisions_and_reasons(
    settings: Any, api_client: APIClient, local_issuer: DevIssuer, trusted: Any
) -> None:
    allowed = _sample(
        "trustportal_exchanges_total", organization="acme", decision="allow", reason="allowed"
    )
    denied = _sample(
        "trustportal_exchanges_total",
        organization="acme",
        decision="deny",
        reason="denied_by_policy",
    )
    unknown = sum(
        s.value
        for m in EXCHANGES.collect()
        for s in m.samples
        if s.name.endswith("_total") and s.labels["organization"] == ""
    )
    ok = api_client.post(
        "/api/oauth/token",
        exchange_body(local_issuer.mint(audience=AUDIENCE), scope="admin"),
        format="json",
    )
    assert ok.status_code == 200
    refused = api_client.post(
        "/api/oauth/token",
        exchange_body(
            local_issuer.mint({"event_name": "pull_request"}, audience=AUDIENCE), scope="admin"
        ),
        format="json",
    )
    assert refused.status_code == 400
    ghost = api_client.post(
        "/api/oauth/token",
        exchange_body(local_issuer.mint(audience=AUDIENCE), audience="urn:pulumi:org:ghost-org-x"),
        format="json",
    )
    assert ghost.status_code == 400

    assert (
        _sample(
            "trustportal_exchanges_total", organization="acme", decision="allow", reason="allowed"
        )
        == allowed + 1
    )
    assert (
        _sample(
            "trustportal_exchanges_total",
            organization="acme",
            decision="deny",
            reason="denied_by_policy",
        )
        == denied + 1
    )
    # An organization that does not exist never becomes a label (unbounded, attacker-chosen).
    labels = {s.labels["organization"] for m in EXCHANGES.collect() for s in m.samples}
    assert "ghost-org-x" not in labels
    assert (
        sum(
            s.value
            for m in EXCHANGES.collect()
            for s in m.samples
            if s.name.endswith("_total") and s.labels["organization"] == ""
        )
        == unknown + 1
    )
    assert _sample("trustportal_exchange_duration_seconds_count", decision="allow") >= 1

    _with_metrics_access(settings, metrics_token="m-secret-1234567890")
    text = (
        Client().get("/metrics", HTTP_AUTHORIZATION="Bearer m-secret-1234567890").content.decode()
    )
    assert (
        'trustportal_exchanges_total{decision="allow",organization="acme",reason="allowed"}' in text
    )
    assert 'trustportal_active_access_tokens{type="organization"}' in text
    assert 'trustportal_key_fetches_total{outcome="ok",trigger="register"}' in text


@pytest.mark.django_db
def test_json_log_lines_carry_request_id_organization_decision_and_reason(
    api_client: APIClient, local_issuer: DevIssuer, trusted: Any
) -> None:
    stream = io.StringIO()
    config = logging_config("json", "INFO")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        logging.config.DictConfigurator(config).configure_formatter(config["formatters"]["json"])
    )
    from kernel.logs import RequestIdFilter

    handler.addFilter(RequestIdFilter())
    views_logger = logging.getLogger("portal.exchange.views")
    views_logger.addHandler(handler)
    views_logger.setLevel(logging.INFO)
    subject_token = local_issuer.mint(audience=AUDIENCE)
    try:
        ok = api_client.post(
            "/api/oauth/token",
            exchange_body(subject_token, scope="admin"),
            format="json",
            HTTP_X_REQUEST_ID="req-json-0001",
        )
        refused = api_client.post(
            "/api/oauth/token",
            exchange_body(subject_token + "x", scope="admin"),
            format="json",
        )
    finally:
        views_logger.removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 2
    allowed, denied = lines
    assert allowed["request_id"] == "req-json-0001"
    assert (allowed["organization"], allowed["decision"], allowed["reason"]) == (
        "acme",
        "allow",
        "allowed",
    )
    assert allowed["level"] == "INFO" and allowed["logger"] == "portal.exchange.views"
    assert denied["request_id"] == refused.json()["request_id"]
    assert (denied["decision"], denied["reason"]) == ("deny", refused.json()["reason"])
    text = stream.getvalue()
    assert subject_token.rsplit(".", 1)[-1] not in text
    assert ok.json()["access_token"] not in text
