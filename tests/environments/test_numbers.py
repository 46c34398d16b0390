"""Numbers in definitions stay within what JSON consumers hold: a diagnostic, never a 500.

Integers must lie within ±(2^53 - 1) (I-JSON, RFC 7493: what every JSON reader holds exactly);
a decimal number that overflows to infinity is refused too (`.inf`/`.nan` stay text as
written). Python refuses to convert integers of more than 4300 digits, so a huge literal once
made check, save and pages fail, and a huge hex literal saved fine and broke every open.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from environments import numbers
from environments.evaluator import Source, evaluate, no_imports
from environments.models import Environment, Revision
from tests.conftest import auth
from tests.environments.conftest import make_environment
from tests.environments.test_pages import signed_in, text, url
from tests.factories import MembershipFactory, UserFactory
from trustportal.models import Organization, Role

BASE = "/api/esc/environments/acme"
DECIMAL_5000 = "9" * 5000
HEX_4000 = "0x" + "f" * 4000
LIMIT = 2**53 - 1


def evaluated(text_: str) -> Any:
    return evaluate(Source("app/dev", text_, lambda c: c, None), no_imports)


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        (str(LIMIT), LIMIT),
        (str(-LIMIT), -LIMIT),
        ("0x1F", 31),
        ("+42", 42),
        ("1.5e+300", 1.5e300),
        (".nan", ".nan"),  # YAML's special floats have no JSON form: text as written
        (".inf", ".inf"),
    ],
)
def test_numbers_json_can_hold_are_values(literal: str, value: Any) -> None:
    result = evaluated(f"values:\n  n: {literal}\n")
    assert result.diagnostics == ()
    assert result.properties["n"].value == value


@pytest.mark.parametrize(
    ("literal", "message"),
    [
        (str(LIMIT + 1), "outside ±9007199254740991"),
        (str(-LIMIT - 1), "outside ±9007199254740991"),
        ("0x20000000000000", "outside ±9007199254740991"),
        (DECIMAL_5000, "outside ±9007199254740991"),
        ("-" + DECIMAL_5000, "outside ±9007199254740991"),
        (HEX_4000, "outside ±9007199254740991"),
        ("1.0e+400", "too large for a JSON number"),
        ("-" + "9" * 400 + ".5", "too large for a JSON number"),
    ],
)
def test_numbers_out_of_range_are_diagnostics_at_their_path(literal: str, message: str) -> None:
    result = evaluated(f"values:\n  deep:\n    list: [1, {literal}]\n")
    (diagnostic,) = result.diagnostics
    assert diagnostic.path == "values.deep.list[1]"
    assert message in diagnostic.summary
    assert "quote it" in diagnostic.summary
    assert len(diagnostic.summary) < 300  # the literal itself is not repeated in full
    assert diagnostic.where() == "3:15"


def test_the_pure_rule() -> None:
    assert numbers.integer("12") == 12
    assert numbers.integer("1_000") == "1_000"  # YAML 1.1 forms stay strings
    assert isinstance(numbers.integer("9" * 5000), numbers.OutOfRange)
    assert numbers.decimal("1e3") == 1000.0
    assert isinstance(numbers.decimal("1e999"), numbers.OutOfRange)


# --- through the API and the pages --------------------------------------------------------------
@pytest.fixture
def client(org: Organization, admin_token: str) -> APIClient:
    return auth(APIClient(), admin_token)


def store_unchecked(environment: Environment, definition: str) -> None:
    """A revision saved before these checks existed (written straight to the table)."""
    environment.revision += 1
    environment.save(update_fields=["revision"])
    Revision.objects.create(
        environment=environment,
        number=environment.revision,
        definition=definition,
        created=timezone.now(),
    )


@pytest.mark.django_db
@pytest.mark.parametrize("literal", [DECIMAL_5000, HEX_4000, str(LIMIT + 1)])
def test_check_and_save_refuse_with_a_diagnostic(
    client: APIClient, org: Organization, literal: str
) -> None:
    make_environment(org, "app", "dev", "values: {a: 1}\n")
    draft = f"values:\n  big: {literal}\n".encode()
    checked = client.post(f"{BASE}/yaml/check", draft, content_type="application/x-yaml")
    assert checked.status_code == 400
    assert checked.json()["diagnostics"][0]["path"] == "values.big"
    saved = client.generic("PATCH", f"{BASE}/app/dev", draft, content_type="application/x-yaml")
    assert saved.status_code == 400
    (diagnostic,) = saved.json()["diagnostics"]
    assert diagnostic["path"] == "values.big"
    assert "outside ±9007199254740991" in diagnostic["summary"]
    assert Environment.objects.get(name="dev").revision == 2  # nothing saved


@pytest.mark.django_db
@pytest.mark.parametrize("literal", [DECIMAL_5000, HEX_4000])
def test_a_stored_bad_number_is_a_diagnostic_for_the_environment_and_its_importers(
    client: APIClient, org: Organization, literal: str
) -> None:
    base = make_environment(org, "shared", "base", "values: {a: 1}\n")
    make_environment(org, "app", "dev", "imports: [shared/base]\nvalues: {b: '${a}'}\n")
    store_unchecked(base, f"values:\n  a: {literal}\n")

    for path in ("shared/base", "app/dev"):
        opened = client.post(f"{BASE}/{path}/open")
        assert opened.status_code == 400, path
        summaries = [d["summary"] for d in opened.json()["diagnostics"]]
        assert any("outside ±9007199254740991" in s for s in summaries), summaries
        assert client.get(f"{BASE}/{path}").status_code == 200  # the definition still reads
    checked = client.post(
        f"{BASE}/yaml/check", b"imports: [shared/base]\n", content_type="application/x-yaml"
    )
    assert checked.status_code == 400


@pytest.mark.django_db
def test_the_pages_show_the_diagnostic(org: Organization) -> None:
    user = UserFactory(username="alice")
    MembershipFactory(organization=org, user=user, role=Role.ADMIN)
    base = make_environment(org, "shared", "base", "values: {a: 1}\n")
    make_environment(org, "app", "dev", "imports: [shared/base]\nvalues: {b: '${a}'}\n")
    store_unchecked(base, f"values:\n  a: {HEX_4000}\n")
    alice = signed_in("alice")
    for project, name in (("shared", "base"), ("app", "dev")):
        page = alice.get(url("detail", project=project, name=name))
        assert page.status_code == 200, (project, name)
        assert "Resolved values" not in text(page)  # no preview of what cannot be evaluated
    checked = alice.post(
        url("detail"),
        {"definition": f"values:\n  n: {DECIMAL_5000}\n", "action": "check", "base_revision": 1},
    )
    assert checked.status_code == 400
    assert "outside ±9007199254740991" in text(checked)
