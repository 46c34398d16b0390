"""The demo `make run` seeds: idempotent, and its issuer's tokens really exchange."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from devtools.demo import demo_seed
from devtools.management.commands.devstack import try_it_commands
from issuers.models import Issuer
from tests.tokens.conftest import AUDIENCE, exchange_body
from trustportal.models import Organization, User

pytestmark = pytest.mark.django_db


def test_demo_seed_is_idempotent_and_exchangeable(
    tmp_path, local_issuer, outbound, allow_local_issuers
) -> None:
    first = demo_seed(state_dir=tmp_path, issuer_url=local_issuer.url, outbound=outbound)
    second = demo_seed(state_dir=tmp_path, issuer_url=local_issuer.url, outbound=outbound)
    assert first.password == second.password
    assert (tmp_path / "admin_password").stat().st_mode & 0o077 == 0
    assert Organization.objects.count() == 1 and Issuer.objects.count() == 1
    admin = User.objects.get(username="admin")
    assert admin.check_password(first.password) and admin.is_superuser
    client = APIClient()
    ok = client.post(
        "/api/oauth/token",
        exchange_body(local_issuer.mint(audience=AUDIENCE), scope="admin"),
        format="json",
    )
    assert ok.status_code == 200, ok.json()
    pr = local_issuer.mint({"event_name": "pull_request"}, audience=AUDIENCE)
    denied = client.post("/api/oauth/token", exchange_body(pr, scope="admin"), format="json")
    assert denied.json()["reason"] == "denied_by_policy"


def test_printed_commands_name_the_right_places() -> None:
    lines = try_it_commands(
        base="http://127.0.0.1:9000", issuer="http://127.0.0.1:9001", audience=AUDIENCE
    )
    assert "devissuer mint --issuer http://127.0.0.1:9001 --aud urn:pulumi:org:acme" in lines[0]
    assert "http://127.0.0.1:9000/api/oauth/token" in lines[1]
    assert "urn:ietf:params:oauth:grant-type:token-exchange" in lines[1]
    assert lines[-1].endswith("http://127.0.0.1:9000/api/esc/environments")


def test_demo_seeds_one_environment(tmp_path, local_issuer, outbound, allow_local_issuers) -> None:
    from environments.models import Environment

    demo_seed(state_dir=tmp_path, issuer_url=local_issuer.url, outbound=outbound)
    demo_seed(state_dir=tmp_path, issuer_url=local_issuer.url, outbound=outbound)
    assert Environment.objects.count() == 1
