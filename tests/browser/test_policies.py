"""The policy editor in a real browser: add, reorder, lint, simulate, replay, save, roll back."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Dialog, Locator, Page, expect
from rest_framework.test import APIClient

from issuers.devissuer import DevIssuer
from issuers.models import Issuer
from issuers.services import Outbound, issuer_register
from policies.models import AuthPolicy
from tests.browser.conftest import screenshot
from tests.tokens.conftest import AUDIENCE, exchange_body
from tokens.models import ExchangeEvent
from trustportal.models import Organization, User

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("allow_local_issuers"),
]

PUSH_TO_APP = {"sub": "repo:acme/app:ref:refs/heads/main", "event_name": "push"}
# Four rules: one more than the form's empty rows.
DENY_PULL_REQUESTS = {
    "event_name": "pull_request",
    "repository_owner": "acme",
    "ref_type": "branch",
    "repository_owner_id": "88310",
}


@pytest.fixture
def issuer(org: Organization, local_issuer: DevIssuer, outbound: Outbound) -> Issuer:
    return issuer_register(organization=org, url=local_issuer.url, name="dev", outbound=outbound)


def fact(scope: Page | Locator, term: str) -> Locator:
    return scope.locator(f"xpath=//dt[normalize-space()={term!r}]/following-sibling::dd[1]")


def add_definition(page: Page, decision: str, rules: dict[str, str]) -> None:
    """Fill the add form (an organization admin token with these rules) and submit it.

    The form shows three rule rows; more come from its "Add a rule row" button (script).
    """
    form = page.locator("#add")
    form.get_by_label(decision).check()
    form.get_by_label("Token type").select_option("organization")
    form.get_by_label("admin", exact=True).check()
    for number, (claim, pattern) in enumerate(rules.items(), start=1):
        if number > form.locator("[data-rule-row]").count():
            form.get_by_role("button", name="Add a rule row").click()
            expect(form.get_by_label(f"Claim path of rule {number}")).to_be_focused()
        form.get_by_label(f"Claim path of rule {number}").fill(claim)
        form.get_by_label(f"Patterns of rule {number}").fill(pattern)
    form.get_by_role("button", name="Add definition").click()


def cards(page: Page) -> Locator:
    return page.locator("ol.definition-list > li")


def test_edit_lint_simulate_replay_save_and_roll_back(
    signed_in: Callable[[User], Page],
    org_admin: User,
    issuer: Issuer,
    local_issuer: DevIssuer,
) -> None:
    page = signed_in(org_admin)
    editor = f"/orgs/acme/policies/{issuer.pk}/"
    page.goto(editor)
    expect(page.locator("h1")).to_have_text("Trust policy")
    expect(page.locator(".empty-state")).to_contain_text(
        "This issuer denies every exchange until you add an allow."
    )
    expect(page.locator(".policy-summary .badge").first).to_have_text("Version 1")
    screenshot(page, "policy-editor-empty")

    # An allow, then a deny; the allow's lint warning shows on its card.
    add_definition(page, "Allow: grant the token when every rule matches", {"sub": "repo:acme/*"})
    expect(page.locator(".messages")).to_contain_text("Definition 1 added. Saved as version 2.")
    add_definition(page, "Deny: refuse, whatever any allow says", DENY_PULL_REQUESTS)
    expect(page.locator(".messages")).to_contain_text("Definition 2 added. Saved as version 3.")
    expect(cards(page)).to_have_count(2)
    expect(cards(page).locator(".decision")).to_have_text(["Allow", "Deny"])
    warning = cards(page).nth(0).locator(".lint-warning")
    expect(warning).to_have_count(1)
    expect(warning).to_contain_text("Warning: grants an organization admin token")
    expect(warning).to_contain_text("could match a pull_request event")
    expect(cards(page).nth(1).locator(".lint-warning")).to_have_count(0)
    expect(page.locator(".policy-summary")).to_contain_text("1 warning")

    # Reorder: the deny first.
    page.get_by_role("button", name="Move definition 2 up").click()
    expect(page.locator(".messages")).to_contain_text(
        "Definition 2 moved up: it is now definition 1. Saved as version 4."
    )
    expect(cards(page).locator(".decision")).to_have_text(["Deny", "Allow"])
    # Rules are a JSON object: PostgreSQL (jsonb) keeps them in its own key order.
    claims = cards(page).nth(0).locator("td:first-child code").all_inner_texts()
    assert sorted(claims) == sorted(DENY_PULL_REQUESTS)
    expect(cards(page).nth(1).locator(".lint-warning")).to_contain_text("pull_request event")
    screenshot(page, "policy-editor")

    # The simulator on a pasted token, checked with the issuer's keys.
    token = local_issuer.mint(PUSH_TO_APP, audience=AUDIENCE)
    side = page.locator("aside.policy-side")
    side.get_by_label("Token (JWT)").fill(token)
    expect(side.get_by_label("a token I paste (JWT)")).to_be_checked()
    side.get_by_role("button", name="Simulate").click()
    result = page.locator("#result")
    expect(result.locator(".verdict")).to_have_text("Allowed")
    expect(result.locator(".why")).to_contain_text("definition 2")
    expect(fact(result, "Policy")).to_have_text("the current policy, version 4")
    expect(fact(result, "Claims from")).to_have_text("the pasted token")
    expect(fact(result, "Signature")).to_have_text("valid: checked with this issuer's keys")
    expect(result.locator("tbody.deciding")).to_contain_text("applies and decides")
    screenshot(page, "policy-simulator-token")

    # The simulator on a sample claim set: a pull request is denied by the deny.
    form = page.locator("form[data-simulate-form]")
    form.get_by_label("Sample claim set", exact=True).select_option(
        label="GitHub Actions: pull request"
    )
    expect(form.get_by_label("a sample claim set")).to_be_checked()
    form.get_by_role("button", name="Simulate").click()
    expect(result.locator(".verdict")).to_have_text("Denied")
    expect(result.locator(".why")).to_have_text(
        "A deny applies, and a deny always wins: definition 1."
    )
    expect(fact(result, "Claims from")).to_have_text("a sample claim set")
    expect(fact(result, "Would mint")).to_have_text("nothing: the exchange would be refused")
    screenshot(page, "policy-simulator-sample")

    # A real exchange, then replay a draft without the allow: that exchange would be denied.
    body = exchange_body(local_issuer.mint(PUSH_TO_APP, audience=AUDIENCE), scope="admin")
    response = APIClient().post("/api/oauth/token", body, format="json")
    assert response.status_code == 200, response.content
    page.get_by_role("navigation", name="Policy pages").get_by_role("link", name="Replay").click()
    draft = page.get_by_label("Draft definitions")
    current = json.loads(draft.input_value())
    assert [d["decision"] for d in current] == ["deny", "allow"]
    draft.fill(json.dumps(current[:1]))
    page.get_by_role("button", name=re.compile(r"Replay the last \d+ exchanges")).click()
    replay = page.locator("#replay-result")
    expect(replay).to_contain_text("1 of 1 replayed exchange would get a different decision")
    row = replay.locator("tbody tr")
    expect(row).to_have_count(1)
    expect(row.locator("td").nth(2)).to_have_text(PUSH_TO_APP["sub"])
    expect(row.locator("td").nth(4)).to_contain_text("Allow")
    expect(row.locator("td").nth(5)).to_contain_text("Deny")
    expect(row.locator("td").nth(5)).to_contain_text("no_matching_policy")
    screenshot(page, "policy-replay")
    assert AuthPolicy.objects.get(issuer=issuer).version == 4, "replay saves nothing"
    event = ExchangeEvent.objects.get()
    row.get_by_role("link", name=f"#{event.pk}").click()
    expect(page.locator("h1")).to_contain_text(f"Exchange attempt #{event.pk}")

    # Save an edit: pin the allow to one repository's main branch.
    page.goto(editor)
    cards(page).nth(1).get_by_role("link", name="Edit").click()
    editing = page.locator("#definition-2")
    expect(editing.locator("h3")).to_have_text("Edit definition 2")
    editing.get_by_label("Patterns of rule 1").fill("repo:acme/infra:ref:refs/heads/main")
    editing.get_by_role("button", name="Save definition").click()
    expect(page.locator(".messages")).to_contain_text("Definition 2 saved. Saved as version 5.")
    expect(cards(page).nth(1).locator("code.pattern")).to_have_text(
        ["repo:acme/infra:ref:refs/heads/main"]
    )

    # Roll back to version 4 from the version history (the button asks first).
    tabs = page.get_by_role("navigation", name="Policy pages")
    tabs.get_by_role("link", name="Version history").click()
    expect(page.locator("section.version h2").first).to_contain_text("Version 5")
    expect(page.locator("#version-5 .diff ins")).to_contain_text(["repo:acme/infra"])
    expect(page.locator("#version-5 .diff del")).to_contain_text(["repo:acme/*"])
    screenshot(page, "policy-versions")
    asked: list[str] = []

    def accept(dialog: Dialog) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    page.locator("#version-4").get_by_role("button", name="Roll back to this version").click()
    expect(page.locator(".messages")).to_contain_text(
        "Rolled back to version 4. Saved as version 6."
    )
    assert asked == ["Save version 4's definitions as a new version?"]
    expect(page).to_have_url(re.compile(rf"/orgs/acme/policies/{issuer.pk}/$"))
    expect(cards(page).nth(1).locator("code.pattern")).to_have_text(["repo:acme/*"])
    assert AuthPolicy.objects.get(issuer=issuer).version == 6


def test_an_incomplete_definition_is_explained_next_to_its_rows(
    signed_in: Callable[[User], Page], org_admin: User, issuer: Issuer
) -> None:
    page = signed_in(org_admin)
    page.goto(f"/orgs/acme/policies/{issuer.pk}/")
    form = page.locator("#add")
    form.get_by_label("Claim path of rule 1").fill("sub")
    form.get_by_label("Patterns of rule 2").fill("acme/infra")
    form.get_by_role("button", name="Add definition").click()
    form = page.locator("#add")
    expect(form.locator(".form-errors")).to_contain_text(
        "Some rule rows are incomplete: see the rules below."
    )
    bad_rows = form.locator("tr.rule-row.has-error")
    expect(bad_rows.locator(".error")).to_have_text(
        [
            "Give at least one pattern, one per line.",
            "Give the claim path these patterns apply to, e.g. sub.",
        ]
    )
    permissions = form.locator("fieldset.has-error", has_text="Permissions (organization tokens)")
    expect(permissions.locator(".error")).to_contain_text(
        'required when tokenType is "organization"'
    )
    # What was typed is kept, so only the mistake needs fixing.
    expect(form.get_by_label("Claim path of rule 1")).to_have_value("sub")
    expect(form.get_by_label("Patterns of rule 2")).to_have_value("acme/infra")
    screenshot(page, "policy-editor-incomplete-rows")
    assert AuthPolicy.objects.get(issuer=issuer).version == 1
