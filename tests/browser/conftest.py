"""Browser fixtures: one Chromium for the browser tests, a fresh context per test, screenshots.

The tests drive Debian's Chromium (`/usr/bin/chromium`) with Playwright's sync API against
pytest-django's `live_server`. No browser is ever downloaded: without that binary the tests
skip with the reason, except under CI (`CI=true`), where a missing browser is a failure.

Playwright's sync API keeps an asyncio loop marked as running in this thread while it is
started, and Django refuses ORM calls from a thread with a running loop. The loop belongs to
Playwright, not to Django code, so `DJANGO_ALLOW_ASYNC_UNSAFE` is set for exactly as long as
Playwright runs: the browser is package-scoped, so it stops (and the variable is restored)
after the last browser test, before any other test of the session runs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from playwright.sync_api import Browser, ConsoleMessage, Page, Response, sync_playwright

from trustportal.models import User

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-quic",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "browser"
TIMEOUT_MS = 10_000


def _require_chromium() -> None:
    """Skip (or, under CI, fail) when the system Chromium is not installed."""
    if os.access(CHROMIUM, os.X_OK):
        return
    reason = f"browser tests need Chromium at {CHROMIUM} (apt-get install chromium)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI must provide it")
    pytest.skip(reason)


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """One headless Chromium for every browser test; each `chromium.launch` uses a fresh
    temporary profile (user-data dir) that Playwright deletes when the browser closes."""
    _require_chromium()
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
            )
            try:
                yield chromium
            finally:
                chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@dataclass
class Problems:
    """What the browser complained about while a test ran (CSP violations, script errors)."""

    messages: list[str] = field(default_factory=list)

    def console(self, message: ConsoleMessage) -> None:
        # A failed load is reported with its URL by `response`; the console line has none.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.messages.append(f"console: {message.text}")

    def response(self, response: Response) -> None:
        # Pages may answer 4xx on purpose (a refused form); what they load must not fail.
        # Chromium asks every site for /favicon.ico on its own.
        if (
            response.status >= 400
            and response.request.resource_type != "document"
            and not response.url.endswith("/favicon.ico")
        ):
            self.messages.append(f"{response.status} for {response.url}")

    def error(self, error: Any) -> None:
        self.messages.append(f"page error: {error}")


@pytest.fixture
def page(browser: Browser, live_server: Any) -> Iterator[Page]:
    """A new page in a fresh browser context (no cookies) pointed at the live server.

    Fails the test at teardown if the browser reported a console error or a script error:
    every refused inline script or style (the pages' strict CSP) shows up there.
    """
    context = browser.new_context(
        base_url=live_server.url, accept_downloads=True, viewport={"width": 1280, "height": 900}
    )
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    problems = Problems()
    tab.on("console", problems.console)
    tab.on("pageerror", problems.error)
    tab.on("response", problems.response)
    try:
        yield tab
    finally:
        context.close()
    assert not problems.messages, "the browser reported problems:\n" + "\n".join(problems.messages)


@pytest.fixture
def signed_in(page: Page, live_server: Any) -> Callable[[User], Page]:
    """Sign a user in by giving the browser a session cookie (the sign-in form has its own test)."""

    def sign_in(user: User) -> Page:
        client = Client()
        client.force_login(user)
        page.context.add_cookies(
            [
                {
                    "name": "sessionid",
                    "value": client.cookies["sessionid"].value,
                    "url": live_server.url,
                }
            ]
        )
        return page

    return sign_in


def screenshot(page: Page, name: str) -> Path:
    """Save the whole page as var/browser/<name>.png (kept as a test artifact)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', name)}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
