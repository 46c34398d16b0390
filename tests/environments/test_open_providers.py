"""`fn::open::<provider>`: pure evaluation with a fake `open`, the provider registry, the `oidc`
provider through the real ESC open API, and the record of every credential issuance."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import jwt
import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from devtools.issuer import DevIssuer
from environments import opens, providers, signing
from environments.errors import DefinitionInvalid
from environments.evaluator import OpenCall, OpenFailed, Source, evaluate, no_imports
from environments.models import (
    AccessEvent,
    CredentialIssuance,
    Environment,
    OpenOutputs,
    Outcome,
)
from environments.parser import parse
from environments.providers.base import Credentials, OpenContext, ProviderError
from environments.sealing import seal
from issuers.services import Outbound
from tests.conftest import auth
from tests.environments.conftest import exchange, make_environment, system_actor, trust_local_issuer
from tests.factories import UserFactory, pass_second_factor
from tests.tokens.conftest import people, signed_in  # noqa: F401  (fixture)
from tokens.models import AccessToken, ExchangeEvent
from trustportal.models import Organization

ISSUER = "https://portal.example.test/oidc"
BASE = "/api/esc/environments/acme"

OIDC_YAML = """\
values:
  registry:
    url: https://registry.example.test
    login:
      fn::open::oidc:
        audience: ${registry.url}
        subjectAttributes: [currentEnvironment.name, pulumi.user.login]
        duration: 10m
  environmentVariables:
    REGISTRY_TOKEN: ${registry.login.token}
"""


# --- pure evaluation ----------------------------------------------------------------------------
class FakeOpen:
    """An `open` function that records its calls and answers from a table (or fails)."""

    def __init__(self, answers: Mapping[str, Any] | None = None) -> None:
        self.calls: list[OpenCall] = []
        self.answers = answers or {}

    def __call__(self, call: OpenCall) -> Mapping[str, Any]:
        self.calls.append(call)
        answer = self.answers.get(call.provider, {"token": f"t-{len(self.calls)}"})
        if isinstance(answer, Exception):
            raise answer
        found: Mapping[str, Any] = answer
        return found


def run(text: str, opener: FakeOpen | None = None, name: str = "app/dev", **kwargs: Any) -> Any:
    return evaluate(
        Source(name, text, lambda c: c, opener), kwargs.pop("load", no_imports), **kwargs
    )


def test_an_open_calls_the_provider_once_with_resolved_arguments() -> None:
    opener = FakeOpen({"oidc": {"token": "ey.jwt", "claims": {"n": [1, 2]}}})
    text = OIDC_YAML + "  again: ${registry.login.token}\n  password:\n    fn::secret: pw\n"
    text = text.replace("duration: 10m", "duration: 10m\n        extra: ${password}")
    result = run(text, opener, providers={"oidc"})
    assert result.ok, result.diagnostics
    (call,) = opener.calls  # referenced three times, called once
    assert (call.provider, call.environment) == ("oidc", "app/dev")
    assert call.path == "values.registry.login"
    assert call.arguments == {
        "audience": "https://registry.example.test",
        "subjectAttributes": ["currentEnvironment.name", "pulumi.user.login"],
        "duration": "10m",
        "extra": "pw",  # secrets are revealed to the provider
    }
    assert "pw" not in repr(call)
    login = result.properties["registry"].lookup(["login"])
    assert login.plain(reveal=True) == {"token": "ey.jwt", "claims": {"n": [1, 2]}}
    assert login.plain(reveal=False) == {"token": "[secret]", "claims": {"n": ["[secret]"] * 2}}
    variable = result.properties["environmentVariables"].lookup(["REGISTRY_TOKEN"])
    assert (variable.value, variable.secret) == ("ey.jwt", True)
    assert result.properties["again"].to_wire(reveal=False)["value"] == "[secret]"


def test_without_an_open_function_values_are_unknown_placeholders() -> None:
    text = OIDC_YAML + "  url: ${registry.login.token}/v2\n  plain: ${registry.url}\n"
    result = run(text, None, providers={"oidc"})
    assert result.ok, result.diagnostics
    login = result.properties["registry"].lookup(["login"])
    assert login.unknown and login.plain(reveal=True) == "[unknown]"
    wire = login.to_wire(reveal=True)
    assert wire["unknown"] is True and wire["value"] is None and wire["secret"] is True
    for name in ("url",):
        assert result.properties[name].unknown
    assert result.properties["environmentVariables"].plain(reveal=True) == {
        "REGISTRY_TOKEN": "[unknown]"
    }
    assert result.properties["plain"].value == "https://registry.example.test"
    assert "unknown" not in result.properties["plain"].to_wire(reveal=True)


def test_arguments_that_depend_on_an_unknown_leave_the_call_unmade() -> None:
    text = (
        "values:\n  a:\n    fn::open::oidc: {audience: x}\n"
        "  b:\n    fn::open::oidc:\n      audience: ${a.token}\n"
    )
    opener = FakeOpen()
    result = run(text, opener, providers={"oidc"})
    assert result.ok and len(opener.calls) == 2
    assert opener.calls[1].arguments == {"audience": "t-1"}


@pytest.mark.parametrize(
    ("text", "summary", "line", "column"),
    [
        (
            "values:\n  x:\n    fn::open::aws-logn: {}\n",
            'unknown provider "aws-logn" in fn::open: available are oidc',
            3,
            5,
        ),
        (
            "values:\n  x:\n    fn::open::AWS: {}\n",
            '"fn::open::AWS" does not name a provider: use fn::open::<name> with lowercase '
            "letters, digits and '-'",
            3,
            5,
        ),
        (
            "values:\n  x:\n    fn::open::oidc: {audience: '${nope}'}\n",
            'unknown property "nope"',
            3,
            33,
        ),
        (
            "values:\n  x:\n    fn::open::oidc: {}\n    other: 1\n",
            '"fn::open::oidc" must be the only key of its mapping',
            3,
            5,
        ),
    ],
)
def test_bad_calls_are_diagnostics_with_a_position(
    text: str, summary: str, line: int, column: int
) -> None:
    opener = FakeOpen()
    result = run(text, opener, providers={"oidc"})
    (diagnostic,) = result.diagnostics
    assert diagnostic.summary == summary
    assert diagnostic.range is not None
    assert (diagnostic.range.begin.line, diagnostic.range.begin.column) == (line, column)
    assert opener.calls == []


def test_a_failing_provider_is_a_diagnostic_at_the_call() -> None:
    opener = FakeOpen({"oidc": OpenFailed("`audience` is required")})
    result = run("values:\n  a: 1\n  x:\n    fn::open::oidc: {}\n", opener, providers={"oidc"})
    assert result.value is None
    (diagnostic,) = result.diagnostics
    assert diagnostic.summary == "fn::open::oidc: `audience` is required"
    assert diagnostic.path == "values.x"
    assert diagnostic.where() == "4:5"


def test_each_imported_environment_opens_as_itself() -> None:
    opener = FakeOpen()
    imported = Source("infra/aws", "values:\n  creds:\n    fn::open::oidc: {audience: a}\n",
                      lambda c: c, opener)
    result = run(
        "imports: [infra/aws]\nvalues:\n  token: ${creds.token}\n",
        opener,
        load=lambda name: imported if name == "infra/aws" else "not found",
    )
    assert result.ok, result.diagnostics
    (call,) = opener.calls
    assert (call.environment, call.path) == ("infra/aws", "values.creds")
    assert result.properties["token"].secret


def test_secrets_inside_arguments_are_sealed_like_any_other() -> None:
    text = "values:\n  x:\n    fn::open::vault-login:\n      token:\n        fn::secret: s3cr3t\n"
    sealed, problems = seal(text, "app/dev", lambda plain: "v1.k." + plain[::-1])
    assert problems == ()
    assert "s3cr3t" not in sealed and "fn::secret: {ciphertext: v1.k.t3rc3s}" in sealed
    assert parse(sealed, "app/dev").diagnostics == ()


# --- the registry -------------------------------------------------------------------------------
def test_the_registry_names_every_provider_and_guards_missing_modules(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert {"oidc", "aws-login", "gcp-login", "azure-login", "vault-login"} <= providers.names()
    assert providers.provider_named("oidc") is not None
    assert providers.provider_named("nope") is None
    monkeypatch.setattr(
        providers,
        "PROVIDERS",
        {**providers.PROVIDERS, "ghost-login": ("environments.providers.ghost", "ghost_login")},
    )
    assert "ghost-login" in providers.names()
    assert providers.provider_named("ghost-login") is None


# --- through the ESC API ------------------------------------------------------------------------
@pytest.fixture
def oidc_settings(settings: Any, allow_local_issuers: None) -> None:
    settings.TRUSTPORTAL = dataclasses.replace(settings.TRUSTPORTAL, oidc_issuer_url=ISSUER)


@pytest.fixture
def exchanged(
    org: Organization, local_issuer: DevIssuer, outbound: Outbound, oidc_settings: None
) -> APIClient:
    """A client holding an access token exchanged from the local issuer's ID token."""
    trust_local_issuer(org, local_issuer, outbound)
    client = APIClient()
    return auth(client, exchange(client, local_issuer))


def open_session(client: APIClient, path: str = f"{BASE}/app/dev") -> tuple[str, Any]:
    opened = client.post(f"{path}/open")
    assert opened.status_code == 200, opened.json()
    session = opened.json()["id"]
    return session, client.get(f"{path}/open/{session}")


def verify(token: str, audience: str) -> dict[str, Any]:
    keys = {key["kid"]: key for key in signing.jwks_document()["keys"]}
    claims: dict[str, Any] = jwt.decode(
        token,
        jwt.PyJWK(keys[jwt.get_unverified_header(token)["kid"]]).key,
        algorithms=["RS256"],
        audience=audience,
        issuer=ISSUER,
    )
    return claims


@pytest.mark.django_db
def test_the_oidc_provider_through_the_esc_api(exchanged: APIClient, org: Organization) -> None:
    make_environment(org, text=OIDC_YAML)
    session, read = open_session(exchanged)
    assert read.status_code == 200, read.json()
    login = read.json()["properties"]["registry"]["value"]["login"]
    assert login["secret"] is False  # a map; its leaves are secret
    token_value = login["value"]["token"]
    assert token_value["secret"] is True
    token = token_value["value"]
    variable = read.json()["properties"]["environmentVariables"]["value"]["REGISTRY_TOKEN"]
    assert variable == {**variable, "value": token, "secret": True}

    claims = verify(token, "https://registry.example.test")
    access_token = AccessToken.objects.get(token_type="organization", issuer__isnull=False)
    event = ExchangeEvent.objects.get(token_id=access_token.pk)
    assert claims["sub"] == (
        "pulumi:environments:pulumi.organization.login:acme:"
        "currentEnvironment.name:app/dev:pulumi.user.login:acme-bot"
    )
    assert claims["exp"] - claims["iat"] == 600
    assert (claims["org"], claims["current_env"]) == ("acme", "app/dev")
    assert claims["root_env"] == "app/dev"
    assert (claims["trigger_user"], claims["exchange_event"]) == ("acme-bot", event.pk)

    issuance = CredentialIssuance.objects.get()
    opened = AccessEvent.objects.get(kind="open")
    assert issuance.outcome == Outcome.OK and issuance.provider == "oidc"
    assert (issuance.project, issuance.name, issuance.root_environment) == ("app", "dev", "app/dev")
    assert issuance.path == "values.registry.login"
    assert issuance.role == issuance.audience == "https://registry.example.test"
    assert issuance.subject == claims["sub"]
    assert issuance.expires_at is not None
    assert int(issuance.expires_at.timestamp()) == claims["exp"]
    assert issuance.token_id == access_token.pk and issuance.exchange_event_id == event.pk
    assert issuance.access_event_id == opened.pk and issuance.login == "acme-bot"

    # Reading again (and one property) gives the same token: nothing is issued twice.
    again = exchanged.get(f"{BASE}/app/dev/open/{session}?property=registry.login.token")
    assert again.status_code == 200 and again.json()["value"] == token
    assert CredentialIssuance.objects.count() == 1

    # The token is stored nowhere readable: not in any column of any table.
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')
            dump = json.dumps(cursor.fetchall(), default=str)
            assert token.split(".")[2] not in dump, table  # not even the signature
    assert OpenOutputs.objects.get().sealed.startswith("v1.")


@pytest.mark.django_db
def test_a_definition_read_or_check_calls_no_provider(
    exchanged: APIClient, org: Organization
) -> None:
    make_environment(org, text=OIDC_YAML)
    assert "fn::open::oidc:" in exchanged.get(f"{BASE}/app/dev").content.decode()
    checked = exchanged.post(
        f"{BASE}/yaml/check", OIDC_YAML.encode(), content_type="application/x-yaml"
    )
    assert checked.status_code == 200, checked.json()
    login = checked.json()["properties"]["registry"]["value"]["login"]
    assert login["unknown"] is True and login["value"] is None
    assert not CredentialIssuance.objects.exists()


@pytest.mark.django_db
def test_the_environment_page_previews_an_open_without_calling_it(
    org: Organization, people: dict[str, Any]  # noqa: F811
) -> None:
    make_environment(org, text=OIDC_YAML)
    page = signed_in("alice").get("/orgs/acme/environments/app/dev/")
    assert page.status_code == 200
    html = page.content.decode()
    assert (
        '<td class="mono">registry.login</td><td class="mono"><span class="badge">unknown</span>'
    ) in html
    assert "computed when the environment is opened" in html
    assert not CredentialIssuance.objects.exists()


@pytest.mark.django_db
def test_an_unknown_provider_is_refused_on_save(org: Organization, admin_token: str) -> None:
    make_environment(org)
    saved = auth(APIClient(), admin_token).generic(
        "PATCH",
        f"{BASE}/app/dev",
        b"values:\n  x:\n    fn::open::aws-logn: {}\n",
        content_type="application/x-yaml",
    )
    assert saved.status_code == 400
    (diagnostic,) = saved.json()["diagnostics"]
    assert diagnostic["summary"].startswith('unknown provider "aws-logn"')
    assert diagnostic["range"]["begin"] == {"line": 3, "column": 5, "byte": 17}


@pytest.mark.django_db
def test_a_failing_provider_refuses_the_open_and_is_recorded(
    exchanged: APIClient, org: Organization
) -> None:
    make_environment(org, text="values:\n  x:\n    fn::open::oidc:\n      duration: 2h\n")
    opened = exchanged.post(f"{BASE}/app/dev/open")
    assert opened.status_code == 400
    (diagnostic,) = opened.json()["diagnostics"]
    assert diagnostic["summary"] == (
        "fn::open::oidc: `audience` is required: a string of at most 500 characters"
    )
    assert diagnostic["range"]["begin"]["line"] == 3
    failed = CredentialIssuance.objects.get()
    assert failed.outcome == Outcome.FAILED and failed.reason == "provider_failed"
    assert failed.message.startswith("`audience` is required")
    assert failed.access_event_id is None and not AccessEvent.objects.exists()


@pytest.mark.django_db
def test_an_id_token_for_a_denied_subject_attribute_is_not_minted(
    exchanged: APIClient, org: Organization
) -> None:
    make_environment(
        org,
        text="values:\n  x:\n    fn::open::oidc:\n      audience: a\n"
        "      subjectAttributes: [pulumi.user.email]\n",
    )
    opened = exchanged.post(f"{BASE}/app/dev/open")
    assert opened.status_code == 400
    assert "unknown subject attribute 'pulumi.user.email'" in opened.json()["diagnostics"][0][
        "summary"
    ]
    assert CredentialIssuance.objects.get().reason == "bad_subject_attribute"


def _actor_and_environment(org: Organization, text: str) -> tuple[Any, Environment]:
    environment = make_environment(org, text=text)
    environment.refresh_from_db()
    return system_actor(org), environment


@pytest.mark.django_db
def test_a_crashing_provider_is_a_clear_diagnostic(org: Organization) -> None:
    actor, environment = _actor_and_environment(
        org, "values:\n  x:\n    fn::open::oidc: {audience: a}\n"
    )

    def crash(context: OpenContext, arguments: Mapping[str, Any]) -> Credentials:
        raise RuntimeError("secret-ish internal detail")

    with pytest.raises(DefinitionInvalid) as refused:
        opens.environment_open(
            environment=environment,
            revision=environment.revisions.get(number=environment.revision),
            actor=actor,
            issuer=ISSUER,
            find=lambda name: crash,
        )
    summary = refused.value.diagnostics[0].summary
    assert "unexpectedly" in summary and "internal detail" not in summary
    assert CredentialIssuance.objects.get().reason == "provider_crashed"


@pytest.mark.django_db
def test_provider_outputs_are_sealed_under_the_session_and_purged_with_it(
    org: Organization,
) -> None:
    actor, environment = _actor_and_environment(
        org, "values:\n  x:\n    fn::open::aws-login: {role: r}\n"
    )

    def fake_login(context: OpenContext, arguments: Mapping[str, Any]) -> Credentials:
        assert (context.organization, context.root_environment, context.actor) == (
            "acme",
            "dev",
            "setup",
        )
        return Credentials(
            values={"accessKeyId": "ASIAFAKE", "secretAccessKey": "sekret-value"},
            role="arn:aws:iam::1:role/r",
            expires_at=timezone.now() + timedelta(hours=1),
            details={"account": "1"},
        )

    now = timezone.now()
    revision = environment.revisions.get(number=environment.revision)
    session, event = opens.environment_open(
        environment=environment,
        revision=revision,
        actor=actor,
        issuer=ISSUER,
        duration=timedelta(minutes=30),
        find=lambda name: fake_login,
        now=now,
    )
    row = OpenOutputs.objects.get(access_event=event)
    assert "sekret-value" not in row.sealed and row.expires == event.expires
    issuance = CredentialIssuance.objects.get()
    assert (issuance.role, issuance.details) == ("arn:aws:iam::1:role/r", {"account": "1"})

    read = opens.environment_read_open(
        environment=environment, event=event, actor=actor, session_id=session
    )
    secret = read.properties["x"].lookup(["secretAccessKey"])
    assert secret is not None and (secret.value, secret.secret) == ("sekret-value", True)
    # Without the session id (or with another one) the outputs cannot be read.
    for wrong in (None, "0" * 32):
        with pytest.raises(DefinitionInvalid):
            opens.environment_read_open(
                environment=environment, event=event, actor=actor, session_id=wrong
            )

    assert opens.open_outputs_purge(now=now + timedelta(minutes=29)) == 0
    assert opens.open_outputs_purge(now=now + timedelta(minutes=30)) == 1
    assert not OpenOutputs.objects.exists()


def test_a_provider_error_keeps_its_reason() -> None:
    error = ProviderError("no", reason="sts_refused")
    assert (error.message, error.reason) == ("no", "sts_refused")


# --- the history page ---------------------------------------------------------------------------
@pytest.mark.django_db
def test_issuances_are_listed_with_filters_for_auditors_only_in_their_org(
    exchanged: APIClient, org: Organization, people: dict[str, Any]  # noqa: F811
) -> None:
    make_environment(org, text=OIDC_YAML)
    make_environment(org, project="app", name="bad", text="values:\n  x:\n    fn::open::oidc: {}\n")
    open_session(exchanged)
    assert exchanged.post(f"{BASE}/app/bad/open").status_code == 400
    url = "/orgs/acme/history/credentials/"

    page = signed_in("audrey").get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert "Credential issuances" in html and "https://registry.example.test" in html
    assert "app/dev" in html and "app/bad" in html and "Failed" in html
    event = ExchangeEvent.objects.get(token_id__isnull=False)
    assert f"/orgs/acme/history/{event.pk}/" in html
    token = CredentialIssuance.objects.get(outcome=Outcome.OK)
    assert token.subject in html

    only_bad = signed_in("audrey").get(url, {"environment": "app/bad"}).content.decode()
    assert "app/bad" in only_bad and "https://registry.example.test" not in only_bad
    none = signed_in("audrey").get(url, {"provider": "aws-login"}).content.decode()
    assert "No credential issuance matches these filters." in none
    ok_only = signed_in("audrey").get(url, {"outcome": "ok"}).content.decode()
    assert "app/bad" not in ok_only

    assert signed_in("bob").get(url).status_code == 404  # another organization's admin
    tab = signed_in("audrey").get("/orgs/acme/history/").content.decode()
    assert url in tab


@pytest.mark.django_db
def test_the_admin_shows_issuances_and_keys_read_only(
    exchanged: APIClient, org: Organization, people: dict[str, Any]  # noqa: F811
) -> None:
    make_environment(org, text=OIDC_YAML)
    open_session(exchanged)
    issuance = CredentialIssuance.objects.get()
    listing = "/admin/environments/credentialissuance/"
    alice = signed_in("alice")
    assert "https://registry.example.test" in alice.get(listing).content.decode()
    detail = f"{listing}{issuance.pk}/change/"
    assert alice.get(detail).status_code == 200
    assert alice.post(detail, {"provider": "x"}).status_code == 403
    assert alice.get(f"{listing}add/").status_code == 403
    assert alice.post(f"{listing}{issuance.pk}/delete/", {"post": "yes"}).status_code == 403
    assert CredentialIssuance.objects.get().provider == "oidc"
    assert "https://registry.example.test" not in signed_in("bob").get(listing).content.decode()

    keys = "/admin/environments/signingkey/"
    assert alice.get(keys).status_code == 403  # only superusers see the portal's keys
    UserFactory(username="root", is_superuser=True, is_staff=True)
    key = signing.published_keys()[0]
    root = pass_second_factor(signed_in("root"), "root")  # superusers owe one (portal.signin.mfa)
    page = root.get(f"{keys}{key.pk}/change/").content.decode()
    assert key.kid in page and key.private_key[:30] not in page
