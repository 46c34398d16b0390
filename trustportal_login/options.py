"""The command line and the environment, checked into `Options`; no network, no token."""

from __future__ import annotations

import argparse
import ipaddress
import urllib.parse
from collections.abc import Mapping
from typing import IO, TYPE_CHECKING, Any, NoReturn

from trustportal_login.model import (
    DEFAULT_AUDIENCE_PREFIX,
    DEFAULT_GITLAB_VARIABLE,
    EXIT_USAGE,
    OUTPUTS,
    PLATFORM_MARKERS,
    PLATFORMS,
    PROG,
    SCOPE_PREFIXES,
    TOKEN_TYPES,
    Options,
    usage_error,
)

if TYPE_CHECKING:
    from _typeshed import SupportsWrite


class ParserExit(Exception):
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
        raise ParserExit(status)

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
    _add_source_arguments(parser)
    _add_grant_and_output_arguments(parser)
    parser.add_argument(
        "--timeout", type=float, default=30.0, metavar="SECONDS", help="default: %(default)s"
    )
    return parser


def _add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """The options choosing where the ID token comes from."""
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


def _add_grant_and_output_arguments(parser: argparse.ArgumentParser) -> None:
    """The options choosing what to ask for and how to hand it over."""
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
