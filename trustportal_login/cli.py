"""`trustportal-login`: the entry point tying options, ID token, exchange and output together."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import IO

from trustportal_login.exchange import exchange
from trustportal_login.model import PROG, LoginError, Run
from trustportal_login.options import ParserExit, build_parser, resolve_options
from trustportal_login.output import summary, write_output
from trustportal_login.sources import Sources, obtain_id_token


def main(
    argv: Sequence[str] | None = None,
    *,
    environ: Mapping[str, str] = os.environ,
    stdin: IO[str] | None = None,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
    run: Run = subprocess.run,
) -> int:
    """Run `trustportal-login`; returns the exit status (0, 1 refused/failed, 2 usage)."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    parser = build_parser(out=out, err=err)
    try:
        args = parser.parse_args(list(argv) if argv is not None else sys.argv[1:])
        options = resolve_options(args, environ)
        sources = Sources(environ=environ, stdin=stdin or sys.stdin, run=run)
        granted = exchange(options, obtain_id_token(options, sources))
        write_output(options, granted, environ=environ, stdout=out)
    except ParserExit as done:
        return done.status
    except LoginError as failure:
        err.write(f"{PROG}: {failure.message}\n")
        return failure.code
    err.write(summary(options, granted))
    return 0
