"""The first five minutes: `make run` twice, a forgotten setting, the operator commands."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from kombu import Connection
from rest_framework.test import APIClient

from devtools.demo import DEMO_ISSUER_NAME, demo_seed
from devtools.issuer import DevIssuer
from devtools.management.commands.devstack import worker_argv
from issuers.models import Issuer
from tests.factories import OrganizationFactory, make_token
from tests.tokens.conftest import AUDIENCE, exchange_body
from tokens.format import hash_token
from tokens.models import AccessToken
from trustportal.settings import filesystem_broker_options

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_make_run_on_another_issuer_port_moves_the_development_issuer(
    tmp_path: Path, local_issuer: DevIssuer, outbound, allow_local_issuers
) -> None:
    first = local_issuer
    demo_seed(state_dir=tmp_path, issuer_url=first.url, outbound=outbound)
    with DevIssuer(keys=first.keys) as second:
        assert second.url != first.url
        demo = demo_seed(state_dir=tmp_path, issuer_url=second.url, outbound=outbound)
        issuer = Issuer.objects.get()
        assert demo.issuer is not None and demo.issuer.pk == issuer.pk
        assert (issuer.name, issuer.url) == (DEMO_ISSUER_NAME, second.url)
        assert issuer.issuer == second.url
        # Its policy came along: the moved issuer's tokens still exchange.
        ok = APIClient().post(
            "/api/oauth/token",
            exchange_body(second.mint(audience=AUDIENCE), scope="admin"),
            format="json",
        )
        assert ok.status_code == 200, ok.json()


def test_filesystem_broker_keeps_its_control_folder_under_var(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    var = tmp_path / "var"
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    monkeypatch.chdir(checkout)
    options = filesystem_broker_options(var)
    for folder in ("data_folder_in", "processed_folder", "control_folder"):
        Path(options[folder]).mkdir(parents=True, exist_ok=True)
    with Connection("filesystem://", transport_options=options) as connection:
        channel: Any = connection.default_channel
        channel.exchange_declare("celery.pidbox", type="fanout")
        channel.queue_declare("worker.pidbox")
        channel.queue_bind("worker.pidbox", exchange="celery.pidbox", routing_key="")
    assert list(checkout.iterdir()) == []
    assert any((var / "celery" / "control").iterdir())


def test_the_worker_banner_does_not_push_the_next_steps_off_screen(tmp_path: Path) -> None:
    argv = worker_argv(Path("/venv/bin"), tmp_path)
    assert argv[1] == "--quiet", "celery's banner hides the next-steps block"
    assert "worker" in argv and str(tmp_path / "celerybeat-schedule") in argv


def test_forgetting_trustportal_env_suggests_development(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TRUSTPORTAL_", "DATABASE_URL", "SECRET_KEY"))
    }
    env["TRUSTPORTAL_VAR_DIR"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
    )
    assert result.returncode != 0
    assert "SECRET_KEY is missing" in result.stderr
    assert "export TRUSTPORTAL_ENV=development" in result.stderr


@pytest.mark.django_db
def test_revoketokens_without_a_terminal_or_yes_refuses_clearly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    org = OrganizationFactory(login="acme")
    token = AccessToken.objects.get(token_hash=hash_token(make_token(organization=org)))
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    with pytest.raises(CommandError, match="--yes"):
        call_command("revoketokens", "--org", "acme", "--since", "1970-01-01")
    token.refresh_from_db()
    assert token.revoked_at is None


def test_revoketokens_exits_non_zero_without_a_traceback(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATABASE_URL")}
    env.update(TRUSTPORTAL_ENV="development", TRUSTPORTAL_VAR_DIR=str(tmp_path))
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"], env=env, check=True, cwd=REPO, timeout=300
    )
    subprocess.run(
        [sys.executable, "manage.py", "bootstrap", "--org=acme", "--admin=a", "--print-token"],
        env=env,
        capture_output=True,
        check=True,
        cwd=REPO,
        timeout=120,
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "revoketokens", "--org", "acme", "--since", "1970-01-01"],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "--yes" in result.stderr
    assert "Traceback" not in result.stderr and "EOFError" not in result.stderr


@pytest.mark.django_db
def test_createtoken_expires_in_90_days_like_the_page() -> None:
    OrganizationFactory(login="acme")
    out = io.StringIO()
    before = timezone.now()
    call_command("createtoken", "--org", "acme", stdout=out)
    token = AccessToken.objects.get(token_hash=hash_token(out.getvalue().strip()))
    assert token.expires is not None
    assert before + timedelta(days=90) <= token.expires <= timezone.now() + timedelta(days=90)
