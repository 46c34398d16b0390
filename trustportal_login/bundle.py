"""Build the client as one runnable file (a zip application) to copy into a CI repository.

`python3 -m trustportal_login.bundle ci/trustportal-login` writes the package's modules into
one archive that any Python 3.11 runs (`python3 ci/trustportal-login --help`), standard
library only. It builds; it does not sign or version the file.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import zipapp
from collections.abc import Sequence
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
INTERPRETER = "/usr/bin/env python3"


def build(target: Path) -> Path:
    """Write the one-file client to ``target`` (made executable) and return its path."""
    with tempfile.TemporaryDirectory() as staging:
        copy = Path(staging) / PACKAGE.name
        shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        zipapp.create_archive(
            staging, target, interpreter=INTERPRETER, main=f"{PACKAGE.name}.cli:main"
        )
    return target


def main(argv: Sequence[str] | None = None) -> int:
    """Build to the one path given on the command line; 2 on a usage error."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or args[0].startswith("-"):
        sys.stderr.write("usage: python3 -m trustportal_login.bundle PATH\n")
        return 2
    target = build(Path(args[0]))
    sys.stdout.write(f"wrote {target}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
