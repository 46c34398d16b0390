"""What the job gets: export lines, $GITHUB_ENV entries or the bare token, and a summary."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import IO

from trustportal_login.model import PROG, Granted, Options, usage_error


def variables(options: Options, granted: Granted) -> list[tuple[str, str]]:
    return [
        ("TRUSTPORTAL_ACCESS_TOKEN", granted.access_token),
        ("PULUMI_ACCESS_TOKEN", granted.access_token),
        ("PULUMI_BACKEND_URL", options.url),
    ]


def write_output(
    options: Options, granted: Granted, *, environ: Mapping[str, str], stdout: IO[str]
) -> None:
    if options.output == "token":
        stdout.write(granted.access_token + "\n")
    elif options.output == "github-env":
        path = environ["GITHUB_ENV"]  # checked by resolve_options
        # The mask comes first, so the runner hides the token from every later log line.
        stdout.write(f"::add-mask::{granted.access_token}\n")
        stdout.flush()
        try:
            with open(path, "a", encoding="utf-8") as handle:
                handle.writelines(
                    f"{name}={value}\n" for name, value in variables(options, granted)
                )
        except OSError as exc:
            raise usage_error(f"cannot append to $GITHUB_ENV ({path}): {exc.strerror}") from None
    else:
        stdout.writelines(
            f"export {name}={shlex.quote(value)}\n" for name, value in variables(options, granted)
        )


def summary(options: Options, granted: Granted) -> str:
    """One line for the job log; it names what was granted, never the token."""
    article = "an" if granted.token_type[0] in "aeiou" else "a"
    scope = f" (scope {granted.scope})" if granted.scope else ""
    lifetime = f", valid for {granted.expires_in} s" if granted.expires_in is not None else ""
    return (
        f"{PROG}: got {article} {granted.token_type} token{scope} for {options.organization}"
        f"{lifetime}, with the ID token from {options.platform}\n"
    )
