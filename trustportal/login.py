#!/usr/bin/env python3
"""`trustportal-login`: exchange this CI job's OIDC ID token for a Trust Portal access token.

Standard library only, and no Django import: a CI job needs nothing but Python to run it, as the
`trustportal-login` console script or as this single file (`python3 login.py …`). It finds the
job's ID token (GitHub Actions, GitLab CI, CircleCI, Buildkite, a file such as a Kubernetes
projected service account token, or stdin), posts it to `<url>/api/oauth/token` (RFC 8693, the
same body `pulumi/auth-actions` sends) and prints or exports the access token.

It deliberately does not verify the ID token — the portal does. It decodes the token's payload,
unverified, only to explain a refusal (which audience the token carries), and says so. It never
prints the ID token or the access token in a message, never follows redirects (a redirect would
carry the token somewhere the operator did not name) and refuses plain http except to loopback.

Exit codes: 0 granted, 1 the exchange failed or was refused, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import ipaddress
import json
import os
import re
import shlex
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

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


# --- command line ------------------------------------------------------------------------------
class _Exit(Exception):
    def __init__(self, status: int) -> None:
        self.status = status


class _Parser(argparse.ArgumentParser):
    """argparse writing to the injected streams and returning instead of calling sys.exit."""

    def __init__(self, *args: Any, out: IO[str], err: IO[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._out = out
        self._err = err

    def print_help(self, file: SupportsWrite[str] | None = None) -> None:
        super().print_help(file or self._out)

    def print_usage(self, file: SupportsWrite[str] | None = None) -> None:
        super().print_usage(file or self._err)

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            self._err.write(message)
        raise _Exit(status)

    def error(self, message: str) -> NoReturn:
        self.print_usage(self._err)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser(*, out: IO[str], err: IO[str]) -> _Parser:
    parser = _Parser(
        prog=PROG,
        out=out,
        err=err,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Exchange this CI job's OIDC ID token for a short-lived Trust Portal "
        "access token (POST <url>/api/oauth/token).",
        epilog="""\
examples:
  eval "$(trustportal-login --scope admin)"               # shell: export the variables
  trustportal-login --scope admin --github-env            # GitHub Actions: later steps
  trustportal-login --token-type team --scope team:platform --output token

exit status: 0 granted, 1 refused or failed, 2 usage or configuration error.
The ID token's payload is decoded (never verified) only to explain a refusal; neither
token is ever printed in a message.""",
    )
    parser.add_argument(
        "--url",
        help="the portal's base URL (default: $TRUSTPORTAL_URL), e.g. https://portal.example",
    )
    parser.add_argument("--org", help="the organization to log in to (default: $TRUSTPORTAL_ORG)")
    parser.add_argument(
        "--audience-prefix",
        default=DEFAULT_AUDIENCE_PREFIX,
        help="the exchange audience is <prefix><org> (default: %(default)s)",
    )
    source = parser.add_argument_group("where the ID token comes from")
    source.add_argument(
        "--platform",
        choices=PLATFORMS,
        help="default: detected from GITHUB_ACTIONS, GITLAB_CI, CIRCLECI or BUILDKITE",
    )
    source.add_argument(
        "--token-file",
        metavar="PATH",
        help="read the ID token from a file (e.g. a Kubernetes projected service account token)",
    )
    source.add_argument(
        "--token-stdin", action="store_true", help="read the ID token from standard input"
    )
    source.add_argument(
        "--gitlab-variable",
        default=DEFAULT_GITLAB_VARIABLE,
        metavar="NAME",
        help="GitLab: the id_tokens variable holding the token (default: %(default)s)",
    )
    source.add_argument(
        "--id-token-audience",
        metavar="AUD",
        help="GitHub/Buildkite: the audience to request the ID token for "
        "(default: the exchange audience)",
    )
    grant = parser.add_argument_group("what to ask for")
    grant.add_argument(
        "--token-type", choices=TOKEN_TYPES, default="organization", help="default: %(default)s"
    )
    grant.add_argument(
        "--scope",
        default="",
        help="organization: empty or admin; team: team:NAME; personal: user:LOGIN; "
        "runner: runner:NAME",
    )
    grant.add_argument(
        "--expiration",
        type=int,
        metavar="SECONDS",
        help="requested lifetime; the portal may shorten it",
    )
    output = parser.add_argument_group("output")
    output.add_argument(
        "--output",
        choices=OUTPUTS,
        help="shell: export lines for eval (default); github-env: append to $GITHUB_ENV and "
        "mask the token; token: only the access token",
    )
    output.add_argument("--github-env", action="store_true", help="the same as --output github-env")
    parser.add_argument(
        "--timeout", type=float, default=30.0, metavar="SECONDS", help="default: %(default)s"
    )
    return parser


def resolve_options(args: argparse.Namespace, environ: Mapping[str, str]) -> Options:
    """Check the parsed arguments against each other and the environment."""
    url = (args.url or environ.get("TRUSTPORTAL_URL", "")).strip().rstrip("/")
    if not url:
        raise usage_error("the portal URL is missing: pass --url or set TRUSTPORTAL_URL")
    check_portal_url(url)
    organization = (args.org or environ.get("TRUSTPORTAL_ORG", "")).strip()
    if not organization:
        raise usage_error("the organization is missing: pass --org or set TRUSTPORTAL_ORG")
    check_scope(args.token_type, args.scope.strip())
    if args.expiration is not None and args.expiration <= 0:
        raise usage_error("--expiration must be a positive number of seconds")
    if not args.timeout > 0:
        raise usage_error("--timeout must be a positive number of seconds")
    if args.github_env and args.output not in (None, "github-env"):
        raise usage_error(f"--github-env contradicts --output {args.output}")
    output = "github-env" if args.github_env else (args.output or "shell")
    if output == "github-env" and not environ.get("GITHUB_ENV"):
        raise usage_error("--github-env needs $GITHUB_ENV (set by GitHub Actions in each step)")
    audience = args.audience_prefix + organization
    return Options(
        url=url,
        organization=organization,
        audience=audience,
        id_token_audience=args.id_token_audience or audience,
        platform=choose_platform(args, environ),
        token_file=args.token_file,
        gitlab_variable=args.gitlab_variable,
        token_type=args.token_type,
        scope=args.scope.strip(),
        expiration=args.expiration,
        output=output,
        timeout=args.timeout,
    )


def check_portal_url(url: str) -> None:
    """Refuse a URL the ID token should not be sent to: not http(s), or plain http off-host."""
    if not url.isprintable() or " " in url:
        raise usage_error("the portal URL contains spaces or control characters")
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
    except ValueError as exc:
        raise usage_error(f"the portal URL cannot be parsed ({exc})") from exc
    if parts.scheme not in ("https", "http") or not host:
        raise usage_error("the portal URL must look like https://portal.example")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise usage_error("the portal URL must not contain credentials, a query or a fragment")
    if parts.scheme == "http" and not _is_loopback(host):
        raise usage_error(
            f"refusing to send an ID token over plain http to {host}: use https:// "
            "(http is accepted only for localhost)"
        )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_scope(token_type: str, scope: str) -> None:
    if token_type == "organization":
        if scope not in ("", "admin"):
            raise usage_error(
                f"an organization token takes no --scope or --scope admin, not {scope!r}"
            )
        return
    prefix = SCOPE_PREFIXES[token_type]
    if not scope.startswith(prefix) or scope == prefix:
        raise usage_error(f"a {token_type} token needs --scope {prefix}NAME")


def choose_platform(args: argparse.Namespace, environ: Mapping[str, str]) -> str:
    """The ID token source: explicit flags first, then the CI platform's own marker variable."""
    implied = {
        name for name, flag in (("file", args.token_file), ("stdin", args.token_stdin)) if flag
    }
    if len(implied) > 1:
        raise usage_error("give only one of --token-file and --token-stdin")
    if args.platform and implied and {args.platform} != implied:
        raise usage_error(f"--platform {args.platform} contradicts --token-{implied.pop()}")
    platform: str | None = args.platform or (implied.pop() if implied else None)
    if platform == "file" and not args.token_file:
        raise usage_error("--platform file needs --token-file PATH")
    if platform is not None:
        return platform
    for variable, name in PLATFORM_MARKERS:
        if environ.get(variable, "").lower() == "true":
            return name
    raise usage_error(
        "cannot tell which CI platform this is (none of GITHUB_ACTIONS, GITLAB_CI, CIRCLECI, "
        "BUILDKITE is true): pass --platform, --token-file PATH or --token-stdin"
    )


# --- HTTP --------------------------------------------------------------------------------------
class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx surfaces as an HTTPError the caller explains


_OPENER = urllib.request.build_opener(_NoRedirects())


def http(request: urllib.request.Request, *, timeout: float, what: str) -> Response:
    """Send a request; any HTTP status is a Response, a transport failure a LoginError.

    `what` names the endpoint in messages (scheme, host and path; never a query or header).
    """
    try:
        with _OPENER.open(request, timeout=timeout) as answer:
            return Response(
                answer.status, _lowered(answer.headers), answer.read(MAX_RESPONSE_BYTES)
            )
    except urllib.error.HTTPError as exc:
        try:
            body = exc.read(MAX_RESPONSE_BYTES)
        finally:
            exc.close()
        return Response(exc.code, _lowered(exc.headers), body)
    except urllib.error.URLError as exc:
        raise LoginError(f"could not connect to {what}: {exc.reason}") from None
    except TimeoutError:
        raise LoginError(f"no answer from {what} within {timeout:g} s") from None
    except OSError as exc:
        raise LoginError(f"could not connect to {what}: {exc}") from None


def _lowered(headers: Any) -> dict[str, str]:
    return {str(name).lower(): str(value) for name, value in (headers or {}).items()}


def _shown(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


# --- obtaining the ID token --------------------------------------------------------------------
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
    what = f"GitHub's ID token endpoint ({_shown(url)})"
    answer = http(request, timeout=options.timeout, what=what)
    document = _json_object(answer.body)
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
    return _json_object(payload)


# --- the exchange ------------------------------------------------------------------------------
def exchange(options: Options, id_token: str) -> Granted:
    """POST the RFC 8693 exchange; the granted token, or a LoginError explaining the refusal."""
    body: dict[str, Any] = {
        "audience": options.audience,
        "grant_type": GRANT_TYPE,
        "subject_token_type": ID_TOKEN_TYPE,
        "requested_token_type": REQUESTED_PREFIX + options.token_type,
        "subject_token": id_token,
        "scope": options.scope,
    }
    if options.expiration is not None:
        body["expiration"] = options.expiration
    endpoint = f"{options.url}/api/oauth/token"
    request = urllib.request.Request(  # noqa: S310 (scheme checked by check_portal_url)
        endpoint,
        data=json.dumps(body).encode(),
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        },
    )
    answer = http(request, timeout=options.timeout, what=f"the portal at {endpoint}")
    document = _json_object(answer.body)
    if answer.status == 200 and document and isinstance(document.get("access_token"), str):
        access_token = document["access_token"]
        # It goes into `export` lines and $GITHUB_ENV: a newline there would set other variables.
        if not PLAIN_TOKEN.fullmatch(access_token):
            raise LoginError(f"the portal at {endpoint} answered a malformed access token")
        expires_in = document.get("expires_in")
        return Granted(
            access_token=access_token,
            token_type=options.token_type,
            scope=str(document.get("scope", options.scope)),
            expires_in=expires_in if isinstance(expires_in, int) else None,
        )
    raise LoginError(refusal_message(options, answer, document, id_token, endpoint))


REASON_HINTS = {
    "denied_by_policy": "a deny definition of the issuer's trust policy matches this job",
    "no_matching_policy": "no allow definition of the issuer's trust policy grants "
    "{what} to this job",
    "untrusted_token": "the portal does not say which (on purpose): there is no organization "
    "{org}, it has no enabled issuer for iss {iss}, or the token's audience is not accepted",
    "token_expired": "the ID token has expired: take a fresh one",
    "jti_replayed": "this ID token was already exchanged and its issuer accepts each once",
    "issuer_unhealthy": "the portal cannot currently get the issuer's keys",
    "scope_mismatch": "the scope does not fit the token type",
}


def refusal_message(
    options: Options,
    answer: Response,
    document: Mapping[str, Any] | None,
    id_token: str,
    endpoint: str,
) -> str:
    """Explain a refused exchange: error, reason and request id, plus what to change."""
    if 300 <= answer.status < 400:
        location = answer.headers.get("location", "")
        return (
            f"the portal at {endpoint} answered a redirect (HTTP {answer.status}"
            + (f" to {_shown(location)}" if location else "")
            + "), which is not followed: pass the portal's final URL as --url"
        )
    if document is None or not isinstance(document.get("error"), str):
        return (
            f"the portal at {endpoint} answered HTTP {answer.status} without an OAuth error: "
            "is --url the portal's base URL?"
        )
    error = document["error"]
    reason = str(document.get("reason") or "")
    request_id = str(document.get("request_id") or answer.headers.get("x-request-id") or "")
    lines = [
        f"the portal refused the exchange: {error} (HTTP {answer.status})"
        + (f", reason: {reason}" if reason else "")
    ]
    if not reason and document.get("error_description"):
        lines.append(str(document["error_description"]))
    claims = unverified_claims(id_token) or {}
    if reason == "untrusted_token" and not _has_audience(claims, options.audience):
        lines.extend(audience_advice(options, claims))
    elif reason == "rate_limited" or answer.status == 429:
        retry = answer.headers.get("retry-after", "")
        lines.append("too many attempts" + (f": retry in {retry} s" if retry else ""))
    elif reason in REASON_HINTS:
        what = f"the requested {options.token_type} token" + (
            f" with scope {options.scope}" if options.scope else ""
        )
        lines.append(
            REASON_HINTS[reason].format(
                what=what, org=options.organization, iss=claims.get("iss", "(unreadable)")
            )
        )
    if request_id:
        lines.append(
            f"request id: {request_id} (give the request id to your portal admin: the exchange "
            "history shows the full reason)"
        )
    return "\n  ".join(lines)


def _has_audience(claims: Mapping[str, Any], audience: str) -> bool:
    has = claims.get("aud")
    return audience in has if isinstance(has, list) else has == audience


def audience_advice(options: Options, claims: Mapping[str, Any]) -> list[str]:
    """Which audience the ID token has against the one asked for, and how to line them up."""
    has = claims.get("aud")
    if has is None:
        shown = "no audience (or an unreadable payload)"
    elif isinstance(has, list):
        shown = ", ".join(json.dumps(a) for a in has) or "an empty audience list"
    else:
        shown = json.dumps(has)
    lines = [
        f"the ID token's audience is {shown}, but this exchange asked for "
        f"{json.dumps(options.audience)}",
        "(the audience was read from the token's payload, decoded WITHOUT verifying it)",
    ]
    fixes = {
        "github": "request it with --id-token-audience " + options.audience,
        "buildkite": "request it with --id-token-audience " + options.audience,
        "gitlab": f"set `aud: {options.audience}` under `id_tokens: {options.gitlab_variable}:`",
        "circleci": "CircleCI's audience is your CircleCI organization id: ask your portal admin "
        "to add it to the issuer's audiences",
        "file": f"set `audience: {options.audience}` on the projected serviceAccountToken volume",
    }
    fix = fixes.get(options.platform, f"mint the ID token for {options.audience}")
    lines.append(f"fix: {fix}, or ask your portal admin to add the token's audience to the issuer")
    return lines


# --- output ------------------------------------------------------------------------------------
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
    except _Exit as done:
        return done.status
    except LoginError as failure:
        err.write(f"{PROG}: {failure.message}\n")
        return failure.code
    err.write(summary(options, granted))
    return 0


if __name__ == "__main__":
    sys.exit(main())
