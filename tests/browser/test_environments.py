"""The environment pages in a real browser: the list, a definition, its check and values."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import screenshot
from tests.environments.conftest import make_environment
from trustportal.models import Organization, User

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SECRET = "browser-secret-4c1d"
DEFINITION = f"""\
values:
  app: {{name: web}}
  greeting: hello from ${{app.name}}
  token:
    fn::secret: {SECRET}
"""


def test_list_open_check_and_read_a_definition(
    signed_in: Callable[[User], Page], org: Organization, org_admin: User
) -> None:
    page = signed_in(org_admin)
    page.goto("/orgs/acme/environments/")
    empty = page.locator(".empty-state")
    expect(empty.locator("h2")).to_have_text("No environments")
    expect(empty).to_contain_text("Create the first one below")
    screenshot(page, "environments-empty")

    make_environment(org, "payments", "prod", "values: {region: eu-west-1}\n")
    make_environment(org, "app", "dev", DEFINITION)
    page.reload()
    rows = page.locator("table.environments tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.locator("td:nth-child(1)")).to_have_text(["app", "payments"])
    expect(rows.locator("td:nth-child(2)")).to_have_text(["dev", "prod"])
    expect(rows.locator("td:nth-child(5)")).to_have_text(["admin", "admin"])
    screenshot(page, "environments")

    rows.first.get_by_role("link", name="dev").click()
    expect(page).to_have_url(re.compile(r"/orgs/acme/environments/app/dev/$"))
    expect(page.locator("h1")).to_have_text("app/dev")
    # The heading reads as one: monospace, and not smaller than the text under it.
    sizes = page.evaluate(
        "[...document.querySelectorAll('h1 .mono, main p')].map("
        "e => parseFloat(getComputedStyle(e).fontSize))"
    )
    assert sizes[0] > 1.5 * max(sizes[1:]), sizes
    definition = page.get_by_label("Definition (YAML)")
    shown = definition.input_value()
    assert "greeting: hello from ${app.name}" in shown
    assert SECRET not in shown and "fn::secret" in shown, "the page shows the secret sealed"
    values = page.locator("table.values tbody tr")
    expect(values.locator("td:nth-child(1)")).to_have_text(["app.name", "greeting", "token"])
    expect(values.locator("td:nth-child(2)")).to_have_text(["web", "hello from web", "secret"])
    expect(page.locator("body")).not_to_contain_text(SECRET)
    screenshot(page, "environment-detail")

    # A draft with a broken reference is checked, not saved; the problem points at its line.
    definition.fill("values:\n  greeting: hello from ${app.missing}\n")
    page.get_by_role("button", name="Check").click()
    problems = page.locator("#diagnostics")
    expect(problems.locator("h2")).to_have_text("1 problem")
    expect(problems.locator("li")).to_contain_text("2:")
    expect(page.locator("ol.code-lines li.bad")).to_contain_text("hello from ${app.missing}")
    screenshot(page, "environment-check-problem")
    page.get_by_role("link", name="Definition", exact=True).click()
    assert "hello from ${app.name}" in page.get_by_label("Definition (YAML)").input_value()


def test_a_refused_new_environment_is_explained(
    signed_in: Callable[[User], Page], org: Organization, org_admin: User
) -> None:
    make_environment(org, "app", "dev")
    page = signed_in(org_admin)
    page.goto("/orgs/acme/environments/")
    form = page.locator("form.create")
    form.get_by_label("Project").fill("app")
    form.get_by_label("Name").fill("dev")
    form.get_by_role("button", name="Create environment").click()
    expect(form.locator(".form-errors")).to_have_text("Environment 'app/dev' already exists.")
    expect(form.get_by_label("Name")).to_have_value("dev")

    form.get_by_label("Name").fill("no spaces allowed")
    form.get_by_role("button", name="Create environment").click()
    name = form.locator(".field.has-error")
    expect(name).to_have_count(1)
    expect(name.locator("label")).to_have_text("Name")
    expect(name.locator(".error")).to_have_text(
        "The name must be 1-100 letters, digits, '_', '.' or '-' (not only dots)."
    )
    expect(name.locator(".help")).to_have_text("For example dev, staging or prod.")
    expect(form.get_by_label("Name")).to_have_value("no spaces allowed")
    screenshot(page, "environment-create-refused")

    form.get_by_label("Name").fill("staging")
    form.get_by_role("button", name="Create environment").click()
    expect(page.locator(".messages")).to_contain_text("Created app/staging. Write its definition.")
    expect(page.locator("h1")).to_have_text("app/staging")
