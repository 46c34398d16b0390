"""`devstack`: what `make run` starts — web server, Celery worker + beat, development issuer."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from devtools.demo import DEMO_ORG, demo_seed
from issuers.services import Outbound, outbound_policy
from kernel.config import load_config

DEV_DEFAULTS = {
    "TRUSTPORTAL_ENV": "development",
    "TRUSTPORTAL_ALLOW_HTTP_ISSUERS": "true",
    "TRUSTPORTAL_ISSUER_ALLOWED_NETWORKS": "127.0.0.0/8,::1/128",
}


def _wait_for(url: str, *, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 (a loopback URL we built)
                return True
        except OSError:
            time.sleep(0.3)
    return False


def try_it_commands(*, base: str, issuer: str, audience: str) -> list[str]:
    """The copy-paste commands that mint an ID token, exchange it, and call the API with it."""
    body = (
        '{"audience":"' + audience + '",'
        '"grant_type":"urn:ietf:params:oauth:grant-type:token-exchange",'
        '"subject_token_type":"urn:ietf:params:oauth:token-type:id_token",'
        '"requested_token_type":"urn:pulumi:token-type:access_token:organization",'
        '"scope":"admin","subject_token":"\'"$ID_TOKEN"\'"}'
    )
    extract = "python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])'"
    return [
        f"ID_TOKEN=$(TRUSTPORTAL_ENV=development .venv/bin/python manage.py devissuer mint "
        f"--issuer {issuer} --aud {shlex.quote(audience)})",
        f"ACCESS_TOKEN=$(curl -sf {base}/api/oauth/token -H 'Content-Type: application/json' "
        f"-d '{body}' | {extract})",
        f'curl -s -H "Authorization: token $ACCESS_TOKEN" {base}/api/user',
        f'curl -s -H "Authorization: token $ACCESS_TOKEN" {base}/api/esc/environments',
    ]


def worker_argv(bindir: Path, var: Path) -> list[str]:
    """The Celery worker (with beat) `make run` starts, `--quiet` so its banner, printed once
    the worker is up, does not push the next-steps block off the screen."""
    return [
        str(bindir / "celery"),
        "--quiet",
        "-A",
        "trustportal",
        "worker",
        "-B",
        "--loglevel",
        "INFO",
        "--concurrency",
        "2",
        "--schedule",
        str(var / "celerybeat-schedule"),
    ]


class Command(BaseCommand):
    help = "Migrate, seed the demo and run the whole portal locally until Ctrl-C."

    def handle(self, *args: Any, **options: Any) -> None:
        for name, value in DEV_DEFAULTS.items():
            os.environ.setdefault(name, value)
        config = load_config()
        port = int(os.environ.get("PORT", "8000"))
        issuer_port = int(os.environ.get("DEVISSUER_PORT", "8001"))
        var = Path(settings.VAR_DIR)
        for folder in ("queue", "processed", "control"):
            (var / "celery" / folder).mkdir(parents=True, exist_ok=True)

        def interrupt(signum: int, frame: object) -> None:
            raise KeyboardInterrupt

        # Ctrl-C, and a plain `kill`, stop everything, even when started with SIGINT ignored.
        signal.signal(signal.SIGINT, interrupt)
        signal.signal(signal.SIGTERM, interrupt)

        python = sys.executable
        bindir = Path(python).parent
        processes: list[tuple[str, subprocess.Popen[bytes]]] = []

        def start(name: str, argv: list[str]) -> None:
            processes.append((name, subprocess.Popen(argv, env=os.environ.copy())))  # noqa: S603

        base = f"http://127.0.0.1:{port}"
        issuer = f"http://127.0.0.1:{issuer_port}"
        try:
            self.stderr.write("Migrating the database…")
            call_command("migrate", interactive=False, verbosity=0)
            start("issuer", [python, "manage.py", "devissuer", "serve", "--port", str(issuer_port)])
            if not _wait_for(f"{issuer}/.well-known/openid-configuration", seconds=30):
                raise CommandError(f"the development issuer did not answer on port {issuer_port}")
            demo = demo_seed(
                state_dir=var,
                issuer_url=issuer,
                outbound=Outbound(policy=outbound_policy(config)),
                audience_prefix=config.audience_prefix,
            )
            start("worker", worker_argv(bindir, var))
            start(
                "web",
                [
                    str(bindir / "gunicorn"),
                    "trustportal.wsgi",
                    "--bind",
                    f"127.0.0.1:{port}",
                    "--workers",
                    "2",
                    "--access-logfile",
                    "-",
                ],
            )
            if not _wait_for(f"{base}/login/", seconds=30):
                raise CommandError(f"the web server did not answer on port {port}")
            audience = config.audience_prefix + DEMO_ORG
            lines = [
                "",
                "Trust Portal is running.",
                f"  Portal:       {base}/",
                f"  Admin login:  {demo.admin.get_username()} / {demo.password}",
                f"  Dev issuer:   {issuer}/.well-known/openid-configuration",
                "",
                "Exchange a development ID token for an access token and use it "
                "(paste into another terminal, in this directory):",
                "",
                *(
                    "  " + line
                    for line in try_it_commands(base=base, issuer=issuer, audience=audience)
                ),
                "",
                "Press Ctrl-C to stop everything.",
                "",
            ]
            self.stdout.write("\n".join(lines))
            while True:
                for name, process in processes:
                    if process.poll() is not None:
                        raise CommandError(f"the {name} process exited ({process.returncode})")
                time.sleep(1)
        except KeyboardInterrupt:
            self.stderr.write("Stopping…")
        finally:
            for _, process in processes:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            for _, process in processes:
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
