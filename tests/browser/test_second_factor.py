"""TOTP enrolment and sign-in with a second factor, in a real browser."""

from __future__ import annotations

import re
import time
from typing import cast

import pytest
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import Page, expect

from signin.models import OrganizationSignInPolicy, SignInEvent
from tests.browser.conftest import screenshot
from tests.factories import PASSWORD, UserFactory
from trustportal.models import Organization, User

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def code_for(device: TOTPDevice, steps_ahead: int = 0) -> str:
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time() + steps_ahead * device.step
    return f"{totp.token():0{device.digits}d}"


def password_sign_in(page: Page, username: str, next_path: str = "/") -> None:
    page.goto(f"/login/?next={next_path}")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("main button[type=submit]")


def test_an_org_admin_without_a_second_factor_cannot_reach_the_admin(
    page: Page, org: Organization, org_admin: User
) -> None:
    OrganizationSignInPolicy.objects.create(organization=org, require_admin_mfa=True)
    page.goto("/login/?next=/admin/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", PASSWORD)
    page.click("main button[type=submit]")
    expect(page).to_have_url(re.compile(r"/signin/mfa/enrol/\?next=%2Fadmin%2F$"))
    for path in ("/admin/", "/admin/trustportal/membership/", "/orgs/acme/history/"):
        page.goto(path)
        expect(page).to_have_url(re.compile(r"/signin/mfa/enrol/"))
        expect(page.locator("h1")).to_have_text("Set up a second factor")


def test_totp_enrolment_then_sign_in_with_a_code_and_with_a_recovery_code(
    page: Page, org: Organization
) -> None:
    root = cast(User, UserFactory(username="root", is_superuser=True, is_staff=True))
    page.goto("/login/?next=/admin/")
    page.fill("#id_username", "root")
    page.fill("#id_password", PASSWORD)
    page.click("main button[type=submit]")
    expect(page.locator("h1")).to_have_text("Set up a second factor")
    screenshot(page, "mfa-enrol")
    device = TOTPDevice.objects.get(user=root, confirmed=False)
    shown = page.locator("#totp-secret").inner_text().replace(" ", "")
    import base64

    assert base64.b32decode(shown + "=" * (-len(shown) % 8)) == device.bin_key

    page.fill("#id_code", "000000" if code_for(device) != "000000" else "111111")
    page.click("main button[type=submit]")
    expect(page.locator(".error")).to_contain_text("That code is not right")
    page.wait_for_timeout(1100)  # django-otp throttles: 1 s after one wrong code
    page.fill("#id_code", code_for(device))
    page.click("main button[type=submit]")
    expect(page.locator("h1")).to_have_text("Your recovery codes")
    codes = page.locator("#recovery-codes code").all_inner_texts()
    assert len(codes) == 10
    screenshot(page, "mfa-recovery-codes")
    page.click("#continue")
    expect(page).to_have_url(re.compile(r"/admin/$"))
    assert SignInEvent.objects.filter(kind="mfa_enrolled", user=root).exists()

    # Next sign-in: a TOTP code (the next time step: the one just used cannot be replayed).
    page.context.clear_cookies()
    password_sign_in(page, "root", "/admin/")
    expect(page.locator("h1")).to_have_text("Second factor")
    page.goto("/admin/")
    expect(page).to_have_url(re.compile(r"/signin/mfa/verify/"))
    device.refresh_from_db()
    page.fill("#id_code", code_for(device, steps_ahead=1))
    page.click("main button[type=submit]")
    expect(page).to_have_url(re.compile(r"/admin/$"))

    # And one with a recovery code, which then is spent.
    page.context.clear_cookies()
    password_sign_in(page, "root", "/")
    page.fill("#id_code", codes[0])
    page.click("main button[type=submit]")
    expect(page.locator("h1")).to_have_text("Your organizations")
    page.context.clear_cookies()
    password_sign_in(page, "root", "/")
    page.fill("#id_code", codes[0])
    page.click("main button[type=submit]")
    expect(page.locator(".error")).to_contain_text("That code is not right")
    assert (
        SignInEvent.objects.filter(kind="mfa_verified", method="recovery", user=root).count() == 1
    )
