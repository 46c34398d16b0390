"""`devstack`: what `make run` starts — web server, Celery worker + beat, development issuer."""

from __future__ import annotations

import os
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

from trustportal.demo import DEMO_ORG, demo_seed

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


class Command(BaseCommand):
    help = "Migrate, seed the demo and run the whole portal locally until Ctrl-C."

    def handle(self, *args: Any, **options: Any) -> None:
        for name, value in DEV_DEFAULTS.items():
            os.environ.setdefault(name, value)
        port = int(os.environ.get("PORT", "8000"))
        issuer_port = int(os.environ.get("DEVISSUER_PORT", "8001"))
        var = Path(settings.VAR_DIR)
        (var / "celery" / "queue").mkdir(parents=True, exist_ok=True)
        (var / "celery" / "processed").mkdir(parents=True, exist_ok=True)

        self.stderr.write("Migrating the database…")
        call_command("migrate", interactive=False, verbosity=0)
        demo = demo_seed(state_dir=var)

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

        start("issuer", [python, "manage.py", "devissuer", "serve", "--port", str(issuer_port)])
        start(
            "worker",
            [
                str(bindir / "celery"),
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
            ],
        )
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
        try:
            if not _wait_for(f"http://127.0.0.1:{port}/login/", seconds=30):
                raise CommandError(f"the web server did not answer on port {port}")
            base = f"http://127.0.0.1:{port}"
            issuer = f"http://127.0.0.1:{issuer_port}"
            self.stdout.write(
                "\n".join(
                    [
                        "",
                        "Trust Portal is running.",
                        f"  Portal:        {base}/",
                        f"  Admin login:   {demo.admin.get_username()} / {demo.password}",
                        f"  Dev issuer:    {issuer}/.well-known/openid-configuration",
                        "",
                        "Try the API with an organization admin token (in another terminal):",
                        "  export TRUSTPORTAL_ENV=development",
                        f"  TOKEN=$(.venv/bin/python manage.py bootstrap --org {DEMO_ORG} "
                        f"--admin {demo.admin.get_username()} --print-token)",
                        f'  curl -s -H "Authorization: token $TOKEN" {base}/api/user',
                        "",
                        "Press Ctrl-C to stop everything.",
                        "",
                    ]
                )
            )
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
