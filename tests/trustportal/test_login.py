"""`trustportal-login` against a live portal and the local issuer, one test per ID token source.

The client runs in-process (`main([...], environ=..., run=...)`), so nothing is monkeypatched:
each test hands it the environment a CI platform would set. The policies are the ones the
docs/ci pages tell an admin to paste, the claims the platforms' sample claim sets, and the
command lines the ones the pages show, so a docs example that stops working fails here.
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
import shlex
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from devtools.issuer import GITHUB_LIKE_CLAIMS, CannedResponse, DevIssuer
from issuers.models import Issuer
from issuers.services import Outbound
from policies.models import AuthPolicy
from policies.registration import issuer_register
from policies.samples import sample_claims
from policies.services import policy_update
from policies.validation import lint_definitions, validate_definitions
from tests.factories import OrganizationFactory, RunnerFactory, TeamFactory
from tokens.models import ExchangeEvent
from tokens.usage import default_buffer
from trustportal.models import Organization
from trustportal_login.bundle import build
from trustportal_login.cli import main
from trustportal_login.sources import unverified_claims

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("allow_local_issuers", "_acme", "_no_rate_limits"),
]

ROOT = Path(__file__).resolve().parents[2]
CI_DOCS = ROOT / "docs" / "ci"
AUDIENCE = "urn:pulumi:org:acme"
CIRCLECI_ORG_ID = "4b3e6c34-7d1a-4c0a-9a4e-2f3b5c6d7e8f"
REGISTERED = ("iss", "aud", "iat", "nbf", "exp", "jti")

# The command lines of the docs/ci pages (each page must show exactly these flags).
GITHUB_ARGS = ["--scope", "admin", "--expiration", "1800", "--github-env"]
GITLAB_ARGS = ["--scope", "admin"]
CIRCLECI_ARGS = ["--scope", "admin"]
BUILDKITE_ARGS = ["--token-type", "team", "--scope", "team:platform"]
K8S_TOKEN_PATH = "/var/run/secrets/trustportal/token"
KUBERNETES_ARGS = [
    "--token-file",
    K8S_TOKEN_PATH,
    "--token-type",
    "runner",
    "--scope",
    "runner:deploy-eu",
]
STDIN_ARGS = ["--token-stdin", "--token-type", "runner", "--scope", "runner:deploy-eu"]
STDIN_ARGS += ["--output", "token"]
DOC_COMMANDS = {
    "github-actions": GITHUB_ARGS,
    "gitlab": GITLAB_ARGS,
    "circleci": CIRCLECI_ARGS,
    "buildkite": BUILDKITE_ARGS,
    "kubernetes": KUBERNETES_ARGS,
}
# The issuer each page registers, and whether it lists extra audiences (lint depends on both).
DOC_ISSUERS = {
    "github-actions": ("https://token.actions.githubusercontent.com", False),
    "gitlab": ("https://gitlab.com", False),
    "circleci": (f"https://oidc.circleci.com/org/{CIRCLECI_ORG_ID}", True),
    "buildkite": ("https://agent.buildkite.com", False),
    "kubernetes": (
        "https://oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE",
        False,
    ),
}


# --- helpers -------------------------------------------------------------------------------------
@dataclasses.dataclass
class Ran:
    code: int
    out: str
    err: str


def run_login(
    args: list[str],
    environ: dict[str, str],
    *,
    stdin: str = "",
    run: Any = None,
) -> Ran:
    out, err = io.StringIO(), io.StringIO()
    code = main(
        args,
        environ=environ,
        stdin=io.StringIO(stdin),
        stdout=out,
        stderr=err,
        run=run or _no_subprocess,
    )
    return Ran(code, out.getvalue(), err.getvalue())


def _no_subprocess(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError(f"unexpected subprocess {args}")


def portal_env(url: str, **more: str) -> dict[str, str]:
    return {"TRUSTPORTAL_URL": url, "TRUSTPORTAL_ORG": "acme", **more}


def exported(shell: str) -> dict[str, str]:
    """The variables of `export NAME=value` lines, parsed the way a shell would."""
    found: dict[str, str] = {}
    for line in shell.splitlines():
        words = shlex.split(line)
        assert words[0] == "export" and len(words) == 2, line
        name, _, value = words[1].partition("=")
        found[name] = value
    return found


def whoami(base_url: str, token: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{base_url}/api/user", headers={"Authorization": f"token {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        body: dict[str, Any] = json.load(response)
    return body


def doc_text(name: str) -> str:
    return (CI_DOCS / f"{name}.md").read_text(encoding="utf-8")


def json_blocks(text: str) -> list[Any]:
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", text, re.S)]


def doc_policies(name: str) -> list[list[dict[str, Any]]]:
    """The policies (JSON lists of definitions) a docs/ci page shows."""
    return [block for block in json_blocks(doc_text(name)) if isinstance(block, list)]


def platform_claims(sample: str) -> dict[str, Any]:
    """A platform's sample claims without the registered ones the local issuer sets itself."""
    claims = sample_claims(sample)
    assert claims is not None
    return {k: v for k, v in claims.items() if k not in REGISTERED}


def assert_no_secrets(ran: Ran, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in ran.err


# --- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _empty_usage_buffer() -> Iterator[None]:
    default_buffer().drain()
    yield
    default_buffer().drain()


@pytest.fixture
def _no_rate_limits(settings: Any, allow_local_issuers: None) -> None:
    settings.TRUSTPORTAL = dataclasses.replace(
        settings.TRUSTPORTAL, rate_limit_per_ip=0, rate_limit_per_subject=0
    )


@pytest.fixture
def _acme() -> None:
    org = OrganizationFactory(login="acme", name="ACME Corp")
    TeamFactory(organization=org, name="platform")
    RunnerFactory(organization=org, name="deploy-eu")


@pytest.fixture
def trust(local_issuer: DevIssuer, outbound: Outbound) -> Any:
    """Register the local issuer for acme with the policy a docs/ci page shows."""

    def trust(doc: str, *, audiences: list[str] | None = None) -> Issuer:
        issuer = issuer_register(
            organization=Organization.objects.get(login="acme"),
            url=local_issuer.url,
            name="ci",
            max_expiration=3600,
            audiences=audiences,
            outbound=outbound,
        )
        policy_update(
            policy=AuthPolicy.objects.get(issuer=issuer), definitions=doc_policies(doc)[0]
        )
        return issuer

    return trust


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# --- one test per ID token source ----------------------------------------------------------------
@pytest.mark.parametrize("query", ["", "?api-version=2.0"])
def test_github_actions(live_server, local_issuer, trust, tmp_path, query) -> None:
    trust("github-actions")
    github_env = tmp_path / "github_env"
    github_env.write_text("EARLIER=kept\n")
    environ = portal_env(
        live_server.url,
        GITHUB_ACTIONS="true",
        ACTIONS_ID_TOKEN_REQUEST_URL=f"{local_issuer.url}/token{query}",
        ACTIONS_ID_TOKEN_REQUEST_TOKEN=local_issuer.request_token,
        GITHUB_ENV=str(github_env),
    )
    ran = run_login(GITHUB_ARGS, environ)
    assert ran.code == 0, ran.err
    (asked,) = local_issuer.requests_to("/token")
    assert asked.query["audience"] == [AUDIENCE]
    assert asked.headers["authorization"] == f"Bearer {local_issuer.request_token}"
    if query:
        assert asked.query["api-version"] == ["2.0"]
    lines = github_env.read_text().splitlines()
    assert lines[0] == "EARLIER=kept"
    written = dict(line.split("=", 1) for line in lines[1:])
    token = written["TRUSTPORTAL_ACCESS_TOKEN"]
    assert written == {
        "TRUSTPORTAL_ACCESS_TOKEN": token,
        "PULUMI_ACCESS_TOKEN": token,
        "PULUMI_BACKEND_URL": live_server.url,
    }
    assert ran.out == f"::add-mask::{token}\n"
    assert token.startswith("tpo_")
    assert "valid for 1800 s" in ran.err and "(scope admin)" in ran.err
    assert_no_secrets(ran, token, local_issuer.request_token)
    assert whoami(live_server.url, token)["githubLogin"] == "acme-bot"


def test_gitlab(live_server, local_issuer, trust) -> None:
    trust("gitlab")
    id_token = local_issuer.mint(platform_claims("gitlab-ci"), audience=AUDIENCE)
    environ = portal_env(live_server.url, GITLAB_CI="true", TRUSTPORTAL_ID_TOKEN=id_token)
    ran = run_login(GITLAB_ARGS, environ)
    assert ran.code == 0, ran.err
    variables = exported(ran.out)
    token = variables["TRUSTPORTAL_ACCESS_TOKEN"]
    assert variables == {
        "TRUSTPORTAL_ACCESS_TOKEN": token,
        "PULUMI_ACCESS_TOKEN": token,
        "PULUMI_BACKEND_URL": live_server.url,
    }
    assert_no_secrets(ran, token, id_token)
    assert whoami(live_server.url, token)["githubLogin"] == "acme-bot"


def test_gitlab_variable_can_be_renamed(live_server, local_issuer, trust) -> None:
    trust("gitlab")
    id_token = local_issuer.mint(platform_claims("gitlab-ci"), audience=AUDIENCE)
    environ = portal_env(live_server.url, GITLAB_CI="true", DEPLOY_TOKEN=id_token)
    ran = run_login(["--gitlab-variable", "DEPLOY_TOKEN", "--output", "token"], environ)
    assert ran.code == 0, ran.err
    assert whoami(live_server.url, ran.out.strip())["githubLogin"] == "acme-bot"


@pytest.mark.parametrize("variable", ["CIRCLE_OIDC_TOKEN_V2", "CIRCLE_OIDC_TOKEN"])
def test_circleci(live_server, local_issuer, trust, variable) -> None:
    # CircleCI's audience is its organization id; the issuer lists it among its audiences.
    trust("circleci", audiences=[CIRCLECI_ORG_ID])
    claims = platform_claims("circleci")
    id_token = local_issuer.mint(claims, audience=CIRCLECI_ORG_ID)
    environ = portal_env(live_server.url, CIRCLECI="true", **{variable: id_token})
    if variable == "CIRCLE_OIDC_TOKEN":
        environ["CIRCLE_OIDC_TOKEN_V2"] = ""
    ran = run_login(CIRCLECI_ARGS, environ)
    assert ran.code == 0, ran.err
    token = exported(ran.out)["PULUMI_ACCESS_TOKEN"]
    assert_no_secrets(ran, token, id_token)
    assert whoami(live_server.url, token)["githubLogin"] == "acme-bot"


def test_buildkite_runs_the_agent(live_server, local_issuer, trust) -> None:
    trust("buildkite")
    calls: list[tuple[list[str], dict[str, Any]]] = []

    def agent(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        calls.append((argv, kwargs))
        audience = argv[argv.index("--audience") + 1]
        token = local_issuer.mint(platform_claims("buildkite"), audience=audience)
        return subprocess.CompletedProcess(argv, 0, stdout=token + "\n", stderr="")

    environ = portal_env(live_server.url, BUILDKITE="true", BUILDKITE_JOB_ID="0190a6c4")
    ran = run_login(BUILDKITE_ARGS, environ, run=agent)
    assert ran.code == 0, ran.err
    (argv, kwargs), *more = calls
    assert not more
    assert argv == ["buildkite-agent", "oidc", "request-token", "--audience", AUDIENCE]
    assert kwargs["env"] == environ and kwargs["capture_output"] and kwargs["text"]
    token = exported(ran.out)["TRUSTPORTAL_ACCESS_TOKEN"]
    assert token.startswith("tpt_")
    assert whoami(live_server.url, token)["githubLogin"] == "acme-platform-bot"


def test_buildkite_agent_failures(live_server) -> None:
    def missing(argv: list[str], **kwargs: Any) -> Any:
        raise FileNotFoundError(argv[0])

    def failing(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(argv, 1, stdout="", stderr="fatal: no job id\n")

    environ = portal_env(live_server.url, BUILDKITE="true")
    gone = run_login([], environ, run=missing)
    assert gone.code == 2 and "buildkite-agent is not on PATH" in gone.err
    failed = run_login([], environ, run=failing)
    assert failed.code == 1
    assert "request-token failed (exit 1): fatal: no job id" in failed.err


def test_kubernetes_token_file(live_server, local_issuer, trust, tmp_path) -> None:
    trust("kubernetes")
    id_token = local_issuer.mint(platform_claims("kubernetes-eks"), audience=AUDIENCE)
    token_file = tmp_path / "token"
    token_file.write_text(id_token)  # the kubelet writes no newline; a trailing one is fine too
    args = [str(token_file) if arg == K8S_TOKEN_PATH else arg for arg in KUBERNETES_ARGS]
    ran = run_login(args, portal_env(live_server.url))
    assert ran.code == 0, ran.err
    token = exported(ran.out)["TRUSTPORTAL_ACCESS_TOKEN"]
    assert token.startswith("tpr_")
    assert_no_secrets(ran, token, id_token)
    assert whoami(live_server.url, token)["githubLogin"] == "acme-bot"


def test_stdin(live_server, local_issuer, trust) -> None:
    trust("kubernetes")
    id_token = local_issuer.mint(platform_claims("kubernetes-eks"), audience=AUDIENCE)
    ran = run_login(STDIN_ARGS, portal_env(live_server.url), stdin=id_token + "\n")
    assert ran.code == 0, ran.err
    token = ran.out.strip()
    assert ran.out == token + "\n" and token.startswith("tpr_")
    assert whoami(live_server.url, token)["githubLogin"] == "acme-bot"


def test_the_single_file_runs_without_site_packages(
    live_server, local_issuer, trust, tmp_path
) -> None:
    """What the docs show: the one-file build copied into a repository, run by any Python 3.11."""
    client = build(tmp_path / "trustportal-login")
    trust("kubernetes")
    id_token = local_issuer.mint(platform_claims("kubernetes-eks"), audience=AUDIENCE)
    finished = subprocess.run(
        [sys.executable, "-I", "-S", str(client), *STDIN_ARGS],
        input=id_token,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=portal_env(live_server.url),
    )
    assert finished.returncode == 0, finished.stderr
    assert whoami(live_server.url, finished.stdout.strip())["githubLogin"] == "acme-bot"


def test_console_script_help() -> None:
    script = Path(sys.executable).parent / "trustportal-login"
    finished = subprocess.run(
        [str(script), "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.startswith("usage: trustportal-login")
    for option in ("--platform", "--token-file", "--token-stdin", "--github-env", "--scope"):
        assert option in finished.stdout


# --- refusals and configuration errors -----------------------------------------------------------
def test_github_without_id_token_permission(live_server) -> None:
    environ = portal_env(live_server.url, GITHUB_ACTIONS="true", GITHUB_ENV="/nonexistent")
    ran = run_login(GITHUB_ARGS, environ)
    assert ran.code == 2
    assert "permissions:" in ran.err and "id-token: write" in ran.err
    assert ran.out == ""


def test_wrong_audience_names_both(live_server, local_issuer, trust) -> None:
    trust("gitlab")
    id_token = local_issuer.mint(platform_claims("gitlab-ci"), audience="https://gitlab.com")
    environ = portal_env(live_server.url, GITLAB_CI="true", TRUSTPORTAL_ID_TOKEN=id_token)
    ran = run_login(GITLAB_ARGS, environ)
    assert ran.code == 1 and ran.out == ""
    assert "reason: untrusted_token" in ran.err
    assert (
        'the ID token\'s audience is "https://gitlab.com", but this exchange asked for '
        '"urn:pulumi:org:acme"'
    ) in ran.err
    assert "WITHOUT verifying" in ran.err
    assert "set `aud: urn:pulumi:org:acme` under `id_tokens: TRUSTPORTAL_ID_TOKEN:`" in ran.err
    event = ExchangeEvent.objects.get()
    assert f"request id: {event.request_id}" in ran.err
    assert_no_secrets(ran, id_token)


def test_denied_by_policy_shows_reason_and_request_id(live_server, local_issuer, trust) -> None:
    trust("github-actions")
    # A pull request run: its claims match the page's deny, which wins.
    local_issuer.default_claims = {
        **GITHUB_LIKE_CLAIMS,
        **platform_claims("github-actions-pull-request"),
    }
    environ = portal_env(
        live_server.url,
        GITHUB_ACTIONS="true",
        ACTIONS_ID_TOKEN_REQUEST_URL=f"{local_issuer.url}/token",
        ACTIONS_ID_TOKEN_REQUEST_TOKEN=local_issuer.request_token,
    )
    ran = run_login(["--scope", "admin"], environ)
    assert ran.code == 1 and ran.out == ""
    event = ExchangeEvent.objects.get()
    assert event.reason == "denied_by_policy"
    assert ran.err.splitlines() == [
        "trustportal-login: the portal refused the exchange: invalid_request (HTTP 400), "
        "reason: denied_by_policy",
        "  a deny definition of the issuer's trust policy matches this job",
        f"  request id: {event.request_id} (give the request id to your portal admin: "
        "the exchange history shows the full reason)",
    ]


def test_no_matching_allow(live_server, local_issuer, trust) -> None:
    trust("gitlab")
    id_token = local_issuer.mint(platform_claims("gitlab-ci"), audience=AUDIENCE)
    environ = portal_env(live_server.url, GITLAB_CI="true", TRUSTPORTAL_ID_TOKEN=id_token)
    ran = run_login(["--token-type", "team", "--scope", "team:platform"], environ)
    assert ran.code == 1
    assert "invalid_scope" in ran.err and "reason: no_matching_policy" in ran.err
    assert "grants the requested team token with scope team:platform" in ran.err


def test_unreachable_portal_is_named(local_issuer) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    id_token = local_issuer.mint(audience=AUDIENCE)
    environ = portal_env(url, GITLAB_CI="true", TRUSTPORTAL_ID_TOKEN=id_token)
    ran = run_login([], environ)
    assert ran.code == 1 and ran.out == ""
    assert f"could not connect to the portal at {url}/api/oauth/token" in ran.err
    assert_no_secrets(ran, id_token)


def test_a_url_that_is_not_the_portal(live_server, local_issuer) -> None:
    id_token = local_issuer.mint(audience=AUDIENCE)
    environ = portal_env(f"{live_server.url}/nowhere", GITLAB_CI="true")
    environ["TRUSTPORTAL_ID_TOKEN"] = id_token
    ran = run_login([], environ)
    assert ran.code == 1
    assert "answered HTTP 404 without an OAuth error: is --url the portal's base URL?" in ran.err


BASE = {"TRUSTPORTAL_URL": "http://127.0.0.1:9", "TRUSTPORTAL_ORG": "acme"}


@pytest.mark.parametrize(
    ("args", "environ", "message"),
    [
        ([], {"TRUSTPORTAL_ORG": "acme"}, "pass --url or set TRUSTPORTAL_URL"),
        ([], {"TRUSTPORTAL_URL": "https://portal.example"}, "pass --org or set TRUSTPORTAL_ORG"),
        (["--url", "http://portal.example", "--org", "acme"], {}, "over plain http"),
        (["--url", "https://u:p@portal.example", "--org", "acme"], {}, "credentials"),
        (["--url", "ftp://portal.example", "--org", "acme"], {}, "must look like https://"),
        (["--scope", "team:x"], BASE, "organization token takes no --scope or --scope admin"),
        (["--token-type", "team", "--scope", "platform"], BASE, "needs --scope team:NAME"),
        (["--expiration", "0"], BASE, "--expiration must be a positive"),
        (["--github-env", "--output", "token"], BASE, "--github-env contradicts --output token"),
        (["--github-env", "--platform", "github"], BASE, "--github-env needs $GITHUB_ENV"),
        (["--platform", "gitlab", "--token-stdin"], BASE, "contradicts --token-stdin"),
        (["--platform", "file"], BASE, "--platform file needs --token-file PATH"),
        ([], BASE, "cannot tell which CI platform this is"),
        (["--platform", "gitlab"], BASE, "id_tokens:\n      TRUSTPORTAL_ID_TOKEN:\n        aud:"),
        (["--platform", "circleci"], BASE, "audience is your CircleCI organization id"),
        (["--token-file", "/nonexistent/token"], BASE, "cannot read the ID token file"),
        (["--platform", "github"], BASE, "is this a GitHub Actions job?"),
        (["--token-stdin"], BASE, "the ID token from stdin is empty"),
        (
            ["--platform", "gitlab"],
            {**BASE, "TRUSTPORTAL_ID_TOKEN": "not-a-jwt"},
            "what gitlab gave is not a JWT",
        ),
        (["--bogus"], BASE, "unrecognized arguments: --bogus"),
    ],
)
def test_usage_errors_exit_2(args, environ, message) -> None:
    ran = run_login(args, environ)
    assert ran.code == 2, ran.err
    assert message in ran.err
    assert ran.out == ""


class CannedPortal:
    """A stand-in portal answering every POST with one canned response (what ours never does)."""

    def __init__(self) -> None:
        self.status = 500
        self.body = b""
        self.headers: dict[str, str] = {}
        self.received: list[bytes] = []
        canned = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                canned.received.append(self.rfile.read(int(self.headers["Content-Length"])))
                self.send_response(canned.status)
                for name, value in canned.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(canned.body)))
                self.end_headers()
                self.wfile.write(canned.body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    def __call__(self, status: int, body: Any = None, **headers: str) -> str:
        """Answer with this from now on; returns the portal's URL."""
        self.status = status
        self.body = json.dumps(body).encode() if body is not None else b""
        self.headers = {"Content-Type": "application/json", **headers}
        return f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def canned_portal() -> Iterator[CannedPortal]:
    portal = CannedPortal()
    threading.Thread(target=portal.server.serve_forever, daemon=True).start()
    yield portal
    portal.server.shutdown()
    portal.server.server_close()


def test_a_redirect_is_not_followed(canned_portal, local_issuer) -> None:
    url = canned_portal(308, Location="https://elsewhere.example/api/oauth/token?x=1")
    environ = portal_env(url, GITLAB_CI="true", TRUSTPORTAL_ID_TOKEN=local_issuer.mint())
    ran = run_login([], environ)
    assert ran.code == 1
    assert (
        "answered a redirect (HTTP 308 to https://elsewhere.example/api/oauth/token), "
        "which is not followed: pass the portal's final URL as --url"
    ) in ran.err


def test_rate_limited(canned_portal, local_issuer) -> None:
    body = {"error": "invalid_request", "reason": "rate_limited", "request_id": "r-1"}
    url = canned_portal(429, body, **{"Retry-After": "17"})
    environ = portal_env(url, GITLAB_CI="true", TRUSTPORTAL_ID_TOKEN=local_issuer.mint())
    ran = run_login([], environ)
    assert ran.code == 1
    assert "too many attempts: retry in 17 s" in ran.err and "request id: r-1" in ran.err


def test_what_the_client_sends_and_a_malformed_answer(canned_portal, local_issuer) -> None:
    url = canned_portal(200, {"access_token": "tpo_x\nLD_PRELOAD=/tmp/evil.so"})
    id_token = local_issuer.mint()
    environ = portal_env(url, GITLAB_CI="true", TRUSTPORTAL_ID_TOKEN=id_token)
    ran = run_login(
        ["--token-type", "personal", "--scope", "user:octocat", "--expiration", "60"], environ
    )
    assert ran.code == 1 and ran.out == ""
    assert "answered a malformed access token" in ran.err and "LD_PRELOAD" not in ran.err
    (sent,) = canned_portal.received
    assert json.loads(sent) == {
        "audience": AUDIENCE,
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
        "requested_token_type": "urn:pulumi:token-type:access_token:personal",
        "subject_token": id_token,
        "scope": "user:octocat",
        "expiration": 60,
    }


def test_a_redirect_from_githubs_endpoint_is_not_followed(live_server, local_issuer) -> None:
    # Following it would hand the request token (Authorization header) to another host.
    local_issuer.canned["/token"] = CannedResponse(
        status=302, headers={"Location": f"{local_issuer.url}/elsewhere"}
    )
    environ = portal_env(
        live_server.url,
        GITHUB_ACTIONS="true",
        ACTIONS_ID_TOKEN_REQUEST_URL=f"{local_issuer.url}/token?api-version=2.0",
        ACTIONS_ID_TOKEN_REQUEST_TOKEN=local_issuer.request_token,
    )
    ran = run_login([], environ)
    assert ran.code == 1
    assert f"GitHub's ID token endpoint ({local_issuer.url}/token) answered HTTP 302" in ran.err
    assert local_issuer.requests_to("/elsewhere") == []
    assert_no_secrets(ran, local_issuer.request_token)


def test_unverified_claims_never_raise() -> None:
    assert unverified_claims("a.b.c") is None
    assert unverified_claims("a.%%%.c") is None
    assert unverified_claims("nodots") is None
    payload = unverified_claims("x.eyJhdWQiOiJhIn0.y")
    assert payload == {"aud": "a"}


# --- the docs ------------------------------------------------------------------------------------
def test_every_policy_in_the_docs_validates() -> None:
    checked = 0
    for page in sorted(CI_DOCS.glob("*.md")):
        for block in json_blocks(page.read_text(encoding="utf-8")):
            if isinstance(block, list):
                assert validate_definitions(block) == [], page.name
                checked += 1
    assert checked >= len(DOC_COMMANDS)


@pytest.mark.parametrize("doc", sorted(DOC_ISSUERS))
def test_the_docs_policies_raise_no_lint_warning(doc) -> None:
    issuer_url, extra_audiences = DOC_ISSUERS[doc]
    for policy in doc_policies(doc):
        warnings = lint_definitions(
            policy, issuer_url=issuer_url, has_fixed_audience=not extra_audiences
        )
        assert warnings == [], [str(w) for w in warnings]


@pytest.mark.parametrize("doc", sorted(DOC_COMMANDS))
def test_the_docs_show_the_tested_command_lines(doc) -> None:
    text = doc_text(doc)
    assert "trustportal-login " + " ".join(DOC_COMMANDS[doc]) in text
    assert "TRUSTPORTAL_URL" in text and "TRUSTPORTAL_ORG" in text
    if doc == "kubernetes":
        assert "trustportal-login " + " ".join(STDIN_ARGS) in text
    if doc == "gitlab":
        assert f"TRUSTPORTAL_ID_TOKEN:\n      aud: {AUDIENCE}" in text


def test_the_github_page_shows_auth_actions_with_cloud_url() -> None:
    text = doc_text("github-actions")
    assert "uses: pulumi/auth-actions@v1" in text and "cloud-url: https://" in text
    assert "id-token: write" in text
