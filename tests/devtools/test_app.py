"""The development tools are an app of development and test processes only, never production."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import get_commands

from tests.trustportal.test_hardening import production_env

ROOT = Path(__file__).resolve().parents[2]
DEV_COMMANDS = ("devissuer", "devstack")

PROBE = """
import json, sys, django
django.setup()
from django.conf import settings
from django.core.management import get_commands
commands = get_commands()
print(json.dumps({
    "apps": list(settings.INSTALLED_APPS),
    "commands": {name: commands.get(name) for name in ("devissuer", "devstack", "migrate")},
    "loaded": sorted(name for name in sys.modules if name.split(".")[0] == "devtools"),
}))
"""


def _probe(env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_production_has_no_development_commands(tmp_path: Path) -> None:
    probe = _probe(production_env(tmp_path))
    assert "devtools" not in probe["apps"]
    assert probe["commands"]["migrate"] == "django.core"
    for name in DEV_COMMANDS:
        assert probe["commands"][name] is None, name
    assert probe["loaded"] == []


@pytest.mark.parametrize("environment", ["development", "test"])
def test_development_and_test_have_them(tmp_path: Path, environment: str) -> None:
    env = production_env(tmp_path, TRUSTPORTAL_ENV=environment)
    for name in ("SECRET_KEY", "DATABASE_URL", "REDIS_URL"):
        env.pop(name)
    probe = _probe(env)
    assert "devtools" in probe["apps"]
    for name in DEV_COMMANDS:
        assert probe["commands"][name] == "devtools", name


def test_this_test_process_has_them() -> None:
    assert "devtools" in settings.INSTALLED_APPS
    assert {name: get_commands().get(name) for name in DEV_COMMANDS} == {
        "devissuer": "devtools",
        "devstack": "devtools",
    }
