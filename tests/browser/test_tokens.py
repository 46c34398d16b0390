"""Creating a long-lived token in a real browser: the value is shown once, and reloading or
going back to the result page creates nothing."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import screenshot
from tokens.models import AccessToken
from trustportal.models import Organization, User

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_reloading_the_token_created_page_creates_nothing(
    org: Organization, org_admin: User, signed_in: Callable[[User], Page], live_server: object
) -> None:
    page = signed_in(org_admin)
    page.goto(f"{live_server}/orgs/acme/tokens/new/")
    page.get_by_label("Name").fill("deploy-bot")
    page.get_by_role("button", name="Create token").click()
    shown = page.locator("text=/tpo_[A-Za-z0-9]{40,}/").first
    expect(shown).to_be_visible()
    value = shown.inner_text()
    token = re.search(r"tpo_[A-Za-z0-9]+", value)
    assert token is not None
    # Post-redirect-get: the page showing the value is a GET of its own, so the browser has no
    # form to send again.
    assert re.search(r"/orgs/acme/tokens/\d+/created/$", page.url), page.url
    screenshot(page, "token-created")
    assert AccessToken.objects.filter(name="deploy-bot").count() == 1

    page.reload()
    page.go_back()
    page.go_forward()
    page.reload()
    assert AccessToken.objects.filter(name="deploy-bot").count() == 1
    # The value is never shown again, whatever the browser replays.
    assert token.group(0) not in page.content()
