"""Pulumi's own `pulumi-esc-sdk`, unchanged, against the live server with an exchanged token."""

from __future__ import annotations

from typing import Any

import pulumi_esc_sdk as esc
import pytest
from pulumi_esc_sdk.exceptions import ApiException

from environments import grants
from environments.models import AccessEvent
from tests.environments.conftest import (
    SDK_YAML,
    close_connections,
    exchange_over_http,
    trust_local_issuer,
)
from tests.factories import OrganizationFactory
from tokens.format import hash_token
from tokens.models import AccessToken, ExchangeEvent

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("allow_local_issuers"),
]


def extra_values(definition: esc.EnvironmentDefinition | None) -> dict[str, Any]:
    """The definition's `values` beyond pulumiConfig/environmentVariables/files."""
    assert definition is not None and definition.values is not None
    return definition.values.additional_properties


def test_environment_lifecycle_through_the_sdk(live_server, local_issuer, outbound) -> None:
    org = OrganizationFactory(login="acme")
    trust_local_issuer(org, local_issuer, outbound)
    token = exchange_over_http(live_server.url, local_issuer, scope="admin")
    client = esc.EscClient(esc.Configuration(host=live_server.url, access_token=token))

    assert client.list_environments("acme").environments == []
    client.create_environment("acme", "app", "dev")
    listed = client.list_environments("acme")
    assert [(e.organization, e.project, e.name) for e in listed.environments or []] == [
        ("acme", "app", "dev")
    ]
    assert listed.next_token == ""

    diagnostics = client.update_environment_yaml("acme", "app", "dev", SDK_YAML)
    assert not diagnostics.diagnostics

    definition, raw = client.get_environment("acme", "app", "dev")
    assert extra_values(definition)["greeting"] == "hello from ${app.name}"
    secret = extra_values(definition)["password"]["fn::secret"]
    assert set(secret) == {"ciphertext"}
    assert b"correct-horse-battery-staple" not in raw

    opened = client.open_environment("acme", "app", "dev")
    _environment, values, _raw = client.read_open_environment("acme", "app", "dev", opened.id)
    assert values == {
        "app": {"name": "web", "ports": [80, 443]},
        "greeting": "hello from web",
        "password": "correct-horse-battery-staple",
        "dsn": "postgres://app:correct-horse-battery-staple@db/app",
    }
    value, resolved = client.read_open_environment_property(
        "acme", "app", "dev", opened.id, "app.ports[1]"
    )
    assert resolved == 443 and value.secret is False
    _value, _environment_values, _raw = client.open_and_read_environment("acme", "app", "dev")

    revisions = client.list_environment_revisions("acme", "app", "dev")
    assert [r.number for r in revisions] == [2, 1]
    assert revisions[0].tags == ["latest"]

    # The SDK's read-modify-write keeps the sealed secret as it is.
    again, _yaml = client.get_environment_at_version("acme", "app", "dev", "2")
    extra_values(again)["extra"] = "yes"
    client.update_environment("acme", "app", "dev", again)
    client.create_environment_revision_tag("acme", "app", "dev", "stable", 2)
    _env, at_stable, _raw = client.open_and_read_environment_at_version(
        "acme", "app", "dev", "stable"
    )
    assert "extra" not in at_stable and at_stable["password"] == "correct-horse-battery-staple"
    _env, latest, _raw = client.open_and_read_environment("acme", "app", "dev")
    assert latest["extra"] == "yes" and latest["password"] == "correct-horse-battery-staple"
    tags = client.list_environment_revision_tags("acme", "app", "dev")
    assert [t.name for t in tags.tags or []] == ["latest", "stable"]

    client.create_environment_tag("acme", "app", "dev", "owner", "platform")
    assert client.list_environment_tags("acme", "app", "dev").tags["owner"].value == "platform"

    decrypted, _text = client.decrypt_environment("acme", "app", "dev")
    assert extra_values(decrypted)["password"] == {"fn::secret": "correct-horse-battery-staple"}

    # Every open is recorded with the token and the exchange that produced it.
    row = AccessToken.objects.get(token_hash=hash_token(token))
    event = ExchangeEvent.objects.get(token_id=row.pk)
    recorded = AccessEvent.objects.all()
    assert sorted(e.kind for e in recorded) == ["decrypt"] + ["open"] * 4
    assert {(e.token_id, e.exchange_event_id, e.login) for e in recorded} == {
        (row.pk, event.pk, "acme-bot")
    }

    with pytest.raises(ApiException) as refused:
        client.update_environment_yaml("acme", "app", "dev", "values:\n  a: ${missing}\n")
    assert refused.value.status == 400 and refused.value.data is not None
    assert refused.value.data.diagnostics[0].summary == 'unknown property "missing"'
    del refused  # it holds the HTTP response, and so the connection

    checked = client.check_environment_yaml("acme", "values:\n  a: ${b}\n")
    assert [d.summary for d in checked.diagnostics or []] == ['unknown property "b"']
    clean = client.check_environment_yaml("acme", "values:\n  a: {fn::secret: x}\n")
    assert not clean.diagnostics and clean.properties is not None
    assert clean.properties["a"].value == "[secret]"

    client.delete_environment("acme", "app", "dev")
    assert client.list_environments("acme").environments == []
    close_connections(client)


BUILTINS_YAML = """\
values:
  app:
    name: web
    hosts: [a.example.com, b.example.com]
  password:
    fn::secret: correct-horse-battery-staple
  greeting: hello from ${app.name}
  hostList:
    fn::join: [",", "${app.hosts}"]
  hostsAgain:
    fn::split: [",", "${hostList}"]
  encoded:
    fn::toBase64: ${password}
  asJson:
    fn::toJSON: ${app}
  who: ${context.pulumi.user.login} in ${context.currentEnvironment.name}
"""


def test_a_standard_token_from_an_exchange_without_scope_under_the_defaults(
    live_server, local_issuer, outbound
) -> None:
    """No `scope`: a standard organization token, which holds the default `write` and creates."""
    org = OrganizationFactory(login="acme")
    trust_local_issuer(org, local_issuer, outbound)
    token = exchange_over_http(live_server.url, local_issuer)
    assert AccessToken.objects.get(token_hash=hash_token(token)).permission == "standard"
    client = esc.EscClient(esc.Configuration(host=live_server.url, access_token=token))

    client.create_environment("acme", "app", "dev")
    assert not client.update_environment_yaml("acme", "app", "dev", BUILTINS_YAML).diagnostics
    _env, values, _raw = client.open_and_read_environment("acme", "app", "dev")
    assert values["hostList"] == "a.example.com,b.example.com"
    assert values["hostsAgain"] == ["a.example.com", "b.example.com"]
    assert values["encoded"] == "Y29ycmVjdC1ob3JzZS1iYXR0ZXJ5LXN0YXBsZQ=="
    assert values["asJson"] == '{"hosts":["a.example.com","b.example.com"],"name":"web"}'
    assert values["who"] == "acme-bot in app/dev"
    listed = client.list_environments("acme").environments or []
    assert [(e.project, e.name) for e in listed] == [("app", "dev")]

    grants.environment_settings_update(organization=org, default_permission="read")
    with pytest.raises(ApiException) as refused:
        client.create_environment("acme", "app", "prod")
    assert refused.value.status == 403
    del refused
    close_connections(client)
