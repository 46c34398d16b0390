"""Where the job's ID token comes from: each CI platform, a file or stdin."""

from __future__ import annotations

import base64
import binascii
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import IO, Any

from trustportal_login.model import USER_AGENT, LoginError, Options, Run, usage_error
from trustportal_login.transport import http, json_object, shown


@dataclass(frozen=True)
class Sources:
    """What the ID token sources may read: the environment, stdin, a process runner."""

    environ: Mapping[str, str]
    stdin: IO[str]
    run: Run


def id_token_from_github(options: Options, sources: Sources) -> str:
    """GitHub Actions: ask the job's ID token endpoint for a token with our audience."""
    url = sources.environ.get("ACTIONS_ID_TOKEN_REQUEST_URL", "")
    request_token = sources.environ.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "")
    if not url or not request_token:
        if sources.environ.get("GITHUB_ACTIONS", "").lower() == "true":
            raise usage_error(
                "GitHub Actions gave this job no ID token (ACTIONS_ID_TOKEN_REQUEST_URL / "
                "ACTIONS_ID_TOKEN_REQUEST_TOKEN are not set). The job needs\n"
                "    permissions:\n"
                "      id-token: write\n"
                "      contents: read\n"
                "  in the workflow or the job. (Runs for pull requests from forks never get one.)"
            )
        raise usage_error(
            "ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN are not set: "
            "is this a GitHub Actions job?"
        )
    # The real URL already carries ?api-version=…; the development issuer's has no query.
    separator = "&" if urllib.parse.urlsplit(url).query else ("" if url.endswith("?") else "?")
    query = urllib.parse.urlencode({"audience": options.id_token_audience})
    request = urllib.request.Request(  # noqa: S310 (the runner's URL; https on GitHub)
        f"{url}{separator}{query}",
        headers={
            "Authorization": f"Bearer {request_token}",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        },
    )
    what = f"GitHub's ID token endpoint ({shown(url)})"
    answer = http(request, timeout=options.timeout, what=what)
    document = json_object(answer.body)
    value = document.get("value") if document else None
    if answer.status != 200 or not isinstance(value, str) or not value:
        raise LoginError(f"{what} answered HTTP {answer.status} without an ID token")
    return value


def id_token_from_gitlab(options: Options, sources: Sources) -> str:
    """GitLab CI: the job's `id_tokens:` variable."""
    value = sources.environ.get(options.gitlab_variable, "").strip()
    if not value:
        raise usage_error(
            f"${options.gitlab_variable} is not set: declare the ID token in the job\n"
            f"    id_tokens:\n"
            f"      {options.gitlab_variable}:\n"
            f"        aud: {options.id_token_audience}\n"
            "  (or name another variable with --gitlab-variable)"
        )
    return value


def id_token_from_circleci(options: Options, sources: Sources) -> str:
    """CircleCI: the job's CIRCLE_OIDC_TOKEN_V2, else CIRCLE_OIDC_TOKEN.

    CircleCI fixes the audience to the CircleCI organization id, so the portal's issuer must list
    that id among its audiences.
    """
    for variable in ("CIRCLE_OIDC_TOKEN_V2", "CIRCLE_OIDC_TOKEN"):
        value = sources.environ.get(variable, "").strip()
        if value:
            return value
    raise usage_error(
        "neither CIRCLE_OIDC_TOKEN_V2 nor CIRCLE_OIDC_TOKEN is set: CircleCI sets them in "
        "jobs (some setups only in jobs that use a context: add `context:` to the job). Their "
        "audience is your CircleCI organization id, which the portal's issuer must list in its "
        "audiences."
    )


def id_token_from_buildkite(options: Options, sources: Sources) -> str:
    """Buildkite: `buildkite-agent oidc request-token --audience <aud>` prints the token."""
    argv = ["buildkite-agent", "oidc", "request-token", "--audience", options.id_token_audience]
    try:
        finished = sources.run(
            argv,
            capture_output=True,
            text=True,
            timeout=options.timeout,
            check=False,
            env=dict(sources.environ),
        )
    except FileNotFoundError:
        raise usage_error(
            "buildkite-agent is not on PATH: run this in a Buildkite job step"
        ) from None
    except subprocess.TimeoutExpired:
        raise LoginError(
            f"buildkite-agent oidc request-token did not finish within {options.timeout:g} s"
        ) from None
    if finished.returncode != 0:
        detail = (finished.stderr or "").strip().splitlines()
        raise LoginError(
            f"buildkite-agent oidc request-token failed (exit {finished.returncode})"
            + (f": {detail[-1]}" if detail else "")
        )
    return (finished.stdout or "").strip()


def id_token_from_file(options: Options, sources: Sources) -> str:
    """A token file, such as a Kubernetes projected service account token (re-read each run)."""
    path = options.token_file or ""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError as exc:
        raise usage_error(f"cannot read the ID token file {path}: {exc.strerror}") from None


def id_token_from_stdin(options: Options, sources: Sources) -> str:
    return sources.stdin.read().strip()


ID_TOKEN_SOURCES: dict[str, Callable[[Options, Sources], str]] = {
    "github": id_token_from_github,
    "gitlab": id_token_from_gitlab,
    "circleci": id_token_from_circleci,
    "buildkite": id_token_from_buildkite,
    "file": id_token_from_file,
    "stdin": id_token_from_stdin,
}


def obtain_id_token(options: Options, sources: Sources) -> str:
    token = ID_TOKEN_SOURCES[options.platform](options, sources)
    if not token:
        raise usage_error(f"the ID token from {options.platform} is empty")
    if token.count(".") != 2:
        raise usage_error(f"what {options.platform} gave is not a JWT (header.payload.signature)")
    return token


def unverified_claims(token: str) -> dict[str, Any] | None:
    """The JWT's payload, decoded WITHOUT verifying anything; only to explain a refusal."""
    try:
        segment = token.split(".")[1]
        payload = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (IndexError, ValueError, binascii.Error):
        return None
    return json_object(payload)
