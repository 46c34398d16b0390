"""`trustportal_login` is standard library only: it imports no Django and no portal package."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
# Every top-level package the project ships, as pyproject lists them.
PROJECT_PACKAGES = sorted(
    pattern.rstrip("*")
    for pattern in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
)

# -I -S: no site-packages (so no Django to import at all), no PYTHONPATH, no user site.
PROBE = """
import json, pkgutil, sys
sys.path.insert(0, {root!r})
import trustportal_login
for module in pkgutil.walk_packages(trustportal_login.__path__, "trustportal_login."):
    if module.name != "trustportal_login.__main__":
        __import__(module.name)
top = sorted({{name.split(".")[0] for name in sys.modules}})
print(json.dumps({{"top": top, "django": "django" in sys.modules}}))
"""


def test_the_client_imports_with_the_standard_library_only() -> None:
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", PROBE.format(root=str(ROOT))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    probe = json.loads(done.stdout)
    assert probe["django"] is False
    assert "trustportal_login" in probe["top"]
    imported = [name for name in PROJECT_PACKAGES if name in probe["top"]]
    assert imported == ["trustportal_login"]
    stdlib = set(sys.stdlib_module_names) | {"trustportal_login", "__main__"}
    assert [name for name in probe["top"] if name not in stdlib] == []


def test_the_console_script_points_at_the_package() -> None:
    assert PYPROJECT["project"]["scripts"]["trustportal-login"] == "trustportal_login.cli:main"


def test_every_module_stays_small() -> None:
    for path in (ROOT / "trustportal_login").glob("*.py"):
        assert len(path.read_text(encoding="utf-8").splitlines()) < 600, path.name
