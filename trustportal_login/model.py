"""What the client works with: its constants, its one error and the values passed along."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass

PROG = "trustportal-login"
USER_AGENT = "trustportal-login/0.1"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"
REQUESTED_PREFIX = "urn:pulumi:token-type:access_token:"
DEFAULT_AUDIENCE_PREFIX = "urn:pulumi:org:"
TOKEN_TYPES = ("organization", "team", "personal", "runner")
SCOPE_PREFIXES = {"team": "team:", "personal": "user:", "runner": "runner:"}
PLATFORMS = ("github", "gitlab", "circleci", "buildkite", "file", "stdin")
OUTPUTS = ("shell", "github-env", "token")
DEFAULT_GITLAB_VARIABLE = "TRUSTPORTAL_ID_TOKEN"
# Environment variables a CI platform sets to "true" in every job, in detection order.
PLATFORM_MARKERS = (
    ("GITHUB_ACTIONS", "github"),
    ("GITLAB_CI", "gitlab"),
    ("CIRCLECI", "circleci"),
    ("BUILDKITE", "buildkite"),
)
MAX_RESPONSE_BYTES = 1024 * 1024
PLAIN_TOKEN = re.compile(r"[A-Za-z0-9_.~+/=-]{1,4096}")
EXIT_REFUSED = 1
EXIT_USAGE = 2

Run = Callable[..., "subprocess.CompletedProcess[str]"]


class LoginError(Exception):
    """A failure to report on stderr; `code` is the exit status (1 refused/failed, 2 usage)."""

    def __init__(self, message: str, code: int = EXIT_REFUSED) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def usage_error(message: str) -> LoginError:
    return LoginError(message, EXIT_USAGE)


@dataclass(frozen=True)
class Options:
    """Everything the command line and the environment decided, checked."""

    url: str  # the portal's base URL, without a trailing slash
    organization: str
    audience: str  # of the exchange: <prefix><org>
    id_token_audience: str  # asked of GitHub / Buildkite; the exchange audience by default
    platform: str
    token_file: str | None
    gitlab_variable: str
    token_type: str
    scope: str
    expiration: int | None
    output: str
    timeout: float


@dataclass(frozen=True)
class Granted:
    access_token: str
    token_type: str
    scope: str
    expires_in: int | None


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]  # names in lower case
    body: bytes
