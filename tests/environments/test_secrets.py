"""Secrets: AES-GCM at rest, bound to their environment, never in the database, logs or reads."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from environments import definitions, grants
from environments.errors import DefinitionInvalid
from environments.models import Environment, Level, Revision
from environments.secrets import environment_context
from kernel.secretbox import SecretBox, SecretError, SecretKey, box_for, default_box
from tests.conftest import auth
from tests.environments.conftest import make_environment, system_actor
from tests.factories import PASSWORD, MembershipFactory, TeamFactory, UserFactory, make_token
from tests.test_no_plaintext_tokens import database_text
from trustportal.models import Organization, Role

PLAINTEXT = "Tr0ub4dor&3-very-secret-value"
CONTEXT = environment_context(1, "env-a")


# --- the box, without a database ----------------------------------------------------------------
@pytest.fixture
def box() -> SecretBox:
    return SecretBox((SecretKey.derive("k" * 40),))


def test_round_trip_and_fresh_nonces(box: SecretBox) -> None:
    first = box.encrypt(PLAINTEXT, context=CONTEXT)
    second = box.encrypt(PLAINTEXT, context=CONTEXT)
    assert first != second and PLAINTEXT not in first
    assert first.startswith(f"v1.{box.keys[0].key_id}.")
    assert box.decrypt(first, context=CONTEXT) == PLAINTEXT == box.decrypt(second, context=CONTEXT)


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda c: c, "it belongs to another environment or was altered"),  # other context
        (lambda c: "v2" + c[2:], "it is not a ciphertext this portal wrote"),
        (lambda c: "garbage", "it is not a ciphertext this portal wrote"),
        (lambda c: c[:-4] + ("AAAA" if not c.endswith("AAAA") else "BBBB"), "altered"),
        (lambda c: "v1.deadbeef." + c.split(".", 2)[2], "it was encrypted with another key"),
        (lambda c: c.rsplit(".", 1)[0] + ".AAAA", "it is too short"),
        (lambda c: c.rsplit(".", 1)[0] + ".A", "it is not valid base64"),
    ],
)
def test_refusals_say_why_without_revealing_anything(
    box: SecretBox, mangle: Any, message: str
) -> None:
    ciphertext = mangle(box.encrypt(PLAINTEXT, context=CONTEXT))
    with pytest.raises(SecretError, match=message) as refused:
        box.decrypt(ciphertext, context=environment_context(1, "env-b"))
    assert PLAINTEXT not in str(refused.value)


def test_rotation_decrypts_with_older_keys(box: SecretBox) -> None:
    old = box.encrypt(PLAINTEXT, context=CONTEXT)
    rotated = SecretBox((SecretKey.derive("n" * 40), *box.keys))
    assert rotated.decrypt(old, context=CONTEXT) == PLAINTEXT
    assert rotated.encrypt("x", context=CONTEXT).split(".")[1] == rotated.keys[0].key_id


def test_keys_come_from_hkdf_and_never_print() -> None:
    configured = box_for("s" * 40, secret_key="insecure-dev-" + "x" * 40)
    derived = box_for(None, secret_key="insecure-dev-" + "x" * 40)
    same_material = box_for("insecure-dev-" + "x" * 40, secret_key="irrelevant" * 5)
    assert configured.keys[0].key != derived.keys[0].key
    # SECRET_KEY is derived under its own label: never equal to the same string as a secrets key.
    assert derived.keys[0].key != same_material.keys[0].key
    assert len(configured.keys[0].key) == 32
    assert "s" * 10 not in repr(configured) and repr(configured.keys[0].key) not in repr(configured)
    with pytest.raises(ValueError, match="at least 32"):
        SecretKey.derive("short")


@pytest.mark.django_db
def test_default_box_follows_settings(settings: Any) -> None:
    settings.TRUSTPORTAL = dataclasses.replace(settings.TRUSTPORTAL, secrets_key=None)
    from_secret_key = default_box().keys[0].key_id
    settings.TRUSTPORTAL = dataclasses.replace(settings.TRUSTPORTAL, secrets_key="q" * 48)
    assert default_box().keys[0].key_id != from_secret_key


# --- with the database --------------------------------------------------------------------------
DEFINITION = f"""\
values:
  db:
    password:
      fn::secret: {PLAINTEXT}
  url: postgres://app:${{db.password}}@db/app
  plain: visible
"""


@pytest.fixture
def world(org: Organization) -> dict[str, Any]:
    environment = make_environment(org, "app", "dev", DEFINITION)
    reader = TeamFactory(organization=org, name="readers")
    grants.grant_set(environment=environment, team=reader, permission=Level.READ)
    return {
        "environment": environment,
        "admin": auth(
            APIClient(), make_token("organization", organization=org, permission="admin")
        ),
        "reader": auth(APIClient(), make_token("team", team=reader)),
    }


@pytest.mark.django_db
def test_plaintext_never_reaches_the_database_or_logs(
    world: dict[str, Any], org: Organization, caplog: pytest.LogCaptureFixture, settings: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    admin, env = world["admin"], "/api/esc/environments/acme/app/dev"
    # Exercise everything that touches the secret: update, open, read, property, decrypt, check.
    assert (
        admin.generic("PATCH", env, DEFINITION.replace("plain: visible", "plain: v2")).status_code
        == 200
    )
    session = admin.post(f"{env}/open").json()["id"]
    assert admin.get(f"{env}/open/{session}").status_code == 200
    assert admin.get(f"{env}/open/{session}", {"property": "url"}).status_code == 200
    assert admin.get(f"{env}/decrypt").status_code == 200
    check = admin.post(
        "/api/esc/environments/acme/yaml/check",
        DEFINITION.encode(),
        content_type="application/x-yaml",
    )
    assert check.status_code == 200 and PLAINTEXT not in check.content.decode()
    user = UserFactory(username="alice")
    MembershipFactory(organization=org, user=user, role=Role.ADMIN)
    page = Client()
    assert page.login(username="alice", password=PASSWORD)
    assert page.get("/orgs/acme/environments/app/dev/").status_code == 200
    saved = page.post(
        "/orgs/acme/environments/app/dev/",
        {"definition": DEFINITION, "base_revision": 3, "action": "save"},
    )
    assert saved.status_code == 302

    dump = database_text()
    assert "visible" in dump and "postgres://app:${db.password}@db/app" in dump  # rows are there
    assert PLAINTEXT not in dump
    assert PLAINTEXT[:12] not in dump and PLAINTEXT[-12:] not in dump
    assert PLAINTEXT not in caplog.text
    assert Revision.objects.filter(definition__contains="ciphertext").count() == 3


@pytest.mark.django_db
def test_get_shows_ciphertext_and_only_open_shows_plaintext(world: dict[str, Any]) -> None:
    env = "/api/esc/environments/acme/app/dev"
    for client in (world["admin"], world["reader"]):
        definition = client.get(env)
        assert definition.status_code == 200
        text = definition.content.decode()
        assert PLAINTEXT not in text and "{ciphertext: v1." in text
        assert PLAINTEXT not in client.get(f"{env}/versions/2").content.decode()
        assert PLAINTEXT not in client.get(f"{env}/versions").content.decode()
    refused = world["reader"].post(f"{env}/open")
    assert refused.status_code == 403 and PLAINTEXT not in refused.content.decode()
    assert world["reader"].get(f"{env}/decrypt").status_code == 403

    session = world["admin"].post(f"{env}/open").json()["id"]
    properties = world["admin"].get(f"{env}/open/{session}").json()["properties"]
    assert properties["db"]["value"]["password"]["value"] == PLAINTEXT
    assert properties["url"]["value"] == f"postgres://app:{PLAINTEXT}@db/app"
    assert properties["url"]["secret"] is True and properties["plain"]["secret"] is False
    # The reader cannot use the admin's session either.
    assert world["reader"].get(f"{env}/open/{session}").status_code == 403


@pytest.mark.django_db
def test_ciphertext_copied_to_another_environment_does_not_open(
    world: dict[str, Any], org: Organization
) -> None:
    """Read access to one definition must not become open access through another."""
    stolen = world["admin"].get("/api/esc/environments/acme/app/dev").content.decode()
    thief = make_environment(org, "app", "mine")
    with pytest.raises(DefinitionInvalid) as refused:
        definitions.environment_update(environment=thief, text=stolen, actor=system_actor(org))
    assert refused.value.diagnostics[0].summary == (
        "cannot decrypt this secret: it belongs to another environment or was altered"
    )


@pytest.mark.django_db
def test_a_changed_key_is_named_in_the_diagnostic(
    world: dict[str, Any], org: Organization, settings: Any
) -> None:
    settings.TRUSTPORTAL = dataclasses.replace(settings.TRUSTPORTAL, secrets_key="z" * 48)
    response = world["admin"].post("/api/esc/environments/acme/app/dev/open")
    assert response.status_code == 400
    summary = response.json()["diagnostics"][0]["summary"]
    assert summary.startswith("cannot decrypt this secret: it was encrypted with another key (id ")
    decrypt = world["admin"].get("/api/esc/environments/acme/app/dev/decrypt")
    assert decrypt.status_code == 400 and PLAINTEXT not in decrypt.content.decode()


@pytest.mark.django_db
def test_deleting_an_environment_keeps_no_secret_behind(world: dict[str, Any]) -> None:
    environment: Environment = world["environment"]
    definitions.environment_delete(environment=environment)
    assert not Revision.objects.exists()
