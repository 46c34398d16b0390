"""The policy editor in a real browser: add, reorder, lint, simulate, replay, save, roll back."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Dialog, Locator, Page, expect
from rest_framework.test import APIClient

from devtools.issuer import DevIssuer
from issuers.models import Issuer
from issuers.services import Outbound
from policies.models import AuthPolicy
from policies.registration import issuer_register
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
    expect(page.locator(".policy-summary .badge").first).to_have_text("Live: version 1")
    screenshot(page, "policy-editor-empty")

    # An allow, then a deny; the allow's lint warning shows on its card.
    add_definition(page, "Allow: grant the token when every rule matches", {"sub": "repo:acme/*"})
    expect(page.locator(".messages")).to_contain_text("Definition 1 added. Staged in the draft")
    add_definition(page, "Deny: refuse, whatever any allow says", DENY_PULL_REQUESTS)
    expect(page.locator(".messages")).to_contain_text("Definition 2 added. Staged in the draft")
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
        "Definition 2 moved up: it is now definition 1. Staged in the draft"
    )
    expect(cards(page).locator(".decision")).to_have_text(["Deny", "Allow"])
    # Rules are a JSON object: PostgreSQL (jsonb) keeps them in its own key order.
    claims = cards(page).nth(0).locator("td:first-child code").all_inner_texts()
    assert sorted(claims) == sorted(DENY_PULL_REQUESTS)
    expect(cards(page).nth(1).locator(".lint-warning")).to_contain_text("pull_request event")
    screenshot(page, "policy-editor")

    # Publishing adds the allow's warning: the portal asks before making it live.
    draft = page.locator("#draft")
    expect(draft.locator(".draft-warnings")).to_contain_text("pull_request event")
    draft.get_by_role("button", name="Publish as version 2").click()
    expect(page.locator("h1")).to_have_text("Publish the draft?")
    expect(page.locator(".confirm-publish")).to_contain_text("Publishing adds 1 warning")
    assert AuthPolicy.objects.get(issuer=issuer).version == 1
    page.get_by_role("button", name="Publish anyway").click()
    expect(page.locator(".messages")).to_contain_text("Draft published as version 2.")
    assert AuthPolicy.objects.get(issuer=issuer).version == 2

    # The simulator on a pasted token, checked with the issuer's keys.
    token = local_issuer.mint(PUSH_TO_APP, audience=AUDIENCE)
    side = page.locator("aside.policy-side")
    side.get_by_label("Token (JWT)").fill(token)
    expect(side.get_by_label("a token I paste (JWT)")).to_be_checked()
    side.get_by_role("button", name="Simulate").click()
    result = page.locator("#result")
    expect(result.locator(".verdict")).to_have_text("Allowed")
    expect(result.locator(".why")).to_contain_text("definition 2")
    expect(fact(result, "Policy")).to_have_text("the current policy, version 2")
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
    assert AuthPolicy.objects.get(issuer=issuer).version == 2, "replay saves nothing"
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
    expect(page.locator(".messages")).to_contain_text("Definition 2 saved. Staged in the draft")
    expect(cards(page).nth(1).locator("code.pattern")).to_have_text(
        ["repo:acme/infra:ref:refs/heads/main"]
    )
    page.locator("#draft").get_by_role("button", name="Publish as version 3").click()
    expect(page.locator(".messages")).to_contain_text("Draft published as version 3.")

    # Roll back to version 4 from the version history (the button asks first).
    tabs = page.get_by_role("navigation", name="Policy pages")
    tabs.get_by_role("link", name="Version history").click()
    expect(page.locator("section.version h2").first).to_contain_text("Version 3")
    expect(page.locator("#version-3 .diff ins")).to_contain_text(["repo:acme/infra"])
    expect(page.locator("#version-3 .diff del")).to_contain_text(["repo:acme/*"])
    screenshot(page, "policy-versions")
    asked: list[str] = []

    def accept(dialog: Dialog) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    page.locator("#version-2").get_by_role("button", name="Roll back to this version").click()
    expect(page.locator(".messages")).to_contain_text(
        "Rolled back to version 2: live as version 4."
    )
    assert asked == ["Save version 2's definitions as a new version?"]
    expect(page).to_have_url(re.compile(rf"/orgs/acme/policies/{issuer.pk}/$"))
    expect(cards(page).nth(1).locator("code.pattern")).to_have_text(["repo:acme/*"])
    assert AuthPolicy.objects.get(issuer=issuer).version == 4


def exchange(dev: DevIssuer, claims: dict[str, str]) -> int:
    body = exchange_body(dev.mint(claims, audience=AUDIENCE), scope="admin")
    return APIClient().post("/api/oauth/token", body, format="json").status_code


def test_a_draft_goes_live_as_one_version_reached_from_the_issuer(
    signed_in: Callable[[User], Page],
    org_admin: User,
    issuer: Issuer,
    local_issuer: DevIssuer,
) -> None:
    page = signed_in(org_admin)
    # From the issuer to its policy in two clicks: the issuer, then its Policy tab.
    page.goto("/orgs/acme/issuers/")
    row = page.locator("table.issuers tbody tr", has_text="dev")
    expect(row).to_contain_text("denies everything")
    row.get_by_role("link", name="dev", exact=True).click()
    expect(page.locator("#policy")).to_contain_text("denies everything")
    page.get_by_role("navigation", name="Issuer pages").get_by_role("link", name="Policy").click()
    expect(page).to_have_url(re.compile(rf"/orgs/acme/policies/{issuer.pk}/$"))
    expect(page.locator("h1")).to_have_text("Trust policy")

    # The allow is staged: the live policy still denies the job it would allow.
    allow = {"sub": PUSH_TO_APP["sub"]}
    add_definition(page, "Allow: grant the token when every rule matches", allow)
    expect(page.locator(".messages")).to_contain_text("Definition 1 added. Staged in the draft")
    expect(page.locator(".policy-summary .badge").first).to_have_text("Live: version 1")
    assert AuthPolicy.objects.get(issuer=issuer).version == 1
    assert exchange(local_issuer, PUSH_TO_APP) == 400, "the draft is never evaluated"
    add_definition(page, "Deny: refuse, whatever any allow says", {"event_name": "pull_request"})
    expect(page.locator(".messages")).to_contain_text("Definition 2 added. Staged in the draft")
    assert AuthPolicy.objects.get(issuer=issuer).version == 1
    assert exchange(local_issuer, PUSH_TO_APP) == 400

    page.reload()  # the replay summary now includes the attempt made after the last edit
    draft = page.locator("#draft")
    expect(draft.locator("h2")).to_have_text("Draft: not live yet")
    expect(draft.locator(".diff ins").first).to_be_visible()
    expect(draft.locator(".replay-summary")).to_contain_text(
        "2 of the last 2 exchanges would change"
    )
    expect(draft.locator(".draft-changes li")).to_have_text(
        ["added definition 1", "added definition 2"]
    )
    screenshot(page, "policy-draft")
    draft.get_by_role("button", name="Publish as version 2").click()
    expect(page.locator(".messages")).to_contain_text("Draft published as version 2.")
    expect(page.locator(".policy-summary .badge").first).to_have_text("Live: version 2")
    versions = AuthPolicy.objects.get(issuer=issuer).versions.order_by("version")
    assert [v.version for v in versions] == [1, 2], "no live version with the allow alone"
    assert exchange(local_issuer, PUSH_TO_APP) == 200
    assert exchange(local_issuer, {**PUSH_TO_APP, "event_name": "pull_request"}) == 400

    page.goto("/orgs/acme/issuers/")
    expect(page.locator("table.issuers tbody tr", has_text="dev")).to_contain_text(
        "1 allow, 1 deny"
    )


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
