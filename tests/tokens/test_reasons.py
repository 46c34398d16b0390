"""Every reason code the exchange can produce has a one-line explanation, shown on the pages.

The codes are found in the code itself: every construction of an OAuth error
(`tokens.errors.OAuthError` and its subclasses), of `issuers.errors.KeyLookupError` (whose
reason the exchange passes on) and every `reason="…"` given to the exchange's event builder,
in every module of the apps.
"""

from __future__ import annotations

import ast
import html
from pathlib import Path

import pytest
from django.urls import reverse

from tests.factories import make_event
from tests.tokens.conftest import people, signed_in  # noqa: F401  (fixture)
from tokens import errors
from tokens.reasons import REASONS, explain

ROOT = Path(__file__).resolve().parents[2]
APPS = ("tokens", "exchange", "issuers", "policies", "trustportal", "environments", "portal")
ERROR_CLASSES = {
    name
    for name, value in vars(errors).items()
    if isinstance(value, type) and issubclass(value, errors.OAuthError)
} | {"KeyLookupError"}
# Calls that build an exchange event with a `reason=` keyword (`exchange.pipeline.event_row`).
EVENT_BUILDERS = {"event_row"}
# Codes built from a template: every value the template takes in the code.
TEMPLATES = {
    "missing_{name}": {"missing_exp", "missing_iat"},  # nbf is optional
    "bad_{name}": {"bad_exp", "bad_iat", "bad_nbf"},
}
# The one call that passes a reason on instead of naming it (KeyLookupError's, found above).
PASSED_ON = {"exc.reason"}


def _template(node: ast.JoinedStr) -> str:
    return "".join(
        str(part.value) if isinstance(part, ast.Constant) else "{" + ast.unparse(part.value) + "}"
        for part in node.values
        if isinstance(part, ast.Constant | ast.FormattedValue)
    )


def _codes(value: ast.expr) -> set[str] | None:
    """The codes an argument can be, or None when it cannot be read."""
    if isinstance(value, ast.Constant) and isinstance(value.value, str):
        return {value.value}
    if isinstance(value, ast.JoinedStr) and _template(value) in TEMPLATES:
        return TEMPLATES[_template(value)]
    if isinstance(value, ast.IfExp):
        body, orelse = _codes(value.body), _codes(value.orelse)
        return body | orelse if body is not None and orelse is not None else None
    return None


def produced_reasons() -> tuple[set[str], list[str]]:
    """(every code found, every place whose code could not be read)."""
    codes: set[str] = set()
    unreadable: list[str] = []
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if not isinstance(node, ast.Call):
                    continue
                name = getattr(node.func, "id", getattr(node.func, "attr", ""))
                values = [node.args[0]] if name in ERROR_CLASSES and node.args else []
                if name in EVENT_BUILDERS:
                    values += [k.value for k in node.keywords if k.arg == "reason"]
                for value in values:
                    where = f"{path.relative_to(ROOT)}:{node.lineno}"
                    found = _codes(value)
                    if found is not None:
                        codes |= found
                    elif ast.unparse(value) not in PASSED_ON and name in ERROR_CLASSES:
                        unreadable.append(f"{where}: {ast.unparse(value)}")
    return codes, unreadable


def test_every_reason_the_exchange_produces_is_explained() -> None:
    codes, unreadable = produced_reasons()
    assert not unreadable, f"reason codes the test cannot read (add to TEMPLATES): {unreadable}"
    # The scan finds the codes of every stage of the pipeline.
    assert {"allowed", "malformed_body", "bad_signature", "unknown_kid", "jti_replayed"} <= codes
    assert {"denied_by_policy", "rate_limited", "database_unavailable"} <= codes
    missing = sorted(codes - REASONS.keys())
    assert not missing, f"reason codes without an explanation in tokens/reasons.py: {missing}"


def test_explanations_are_one_line_and_unknown_codes_explain_nothing() -> None:
    assert all(text and "\n" not in text and len(text) <= 120 for text in REASONS.values())
    assert explain("no_such_reason") == ""


@pytest.mark.django_db
def test_history_event_and_dashboard_explain_the_reason(people) -> None:  # noqa: F811
    event = make_event(people["acme"], reason="jti_replayed")
    client = signed_in("audrey")
    text = REASONS["jti_replayed"]
    for name, kwargs in (
        ("tokens:history", {}),
        ("tokens:event", {"event_id": event.pk}),
        ("tokens:dashboard", {}),
    ):
        page = client.get(reverse(name, kwargs={"org": "acme", **kwargs})).content.decode()
        assert text in html.unescape(page), name
