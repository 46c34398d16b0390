"""Creating a token by hand is POST-redirect-GET: the value shows once, a reload makes nothing."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from tests.tokens.conftest import signed_in
from tokens.format import hash_token
from tokens.models import AccessToken

pytestmark = pytest.mark.django_db

FORM = {"type": "organization", "name": "legacy", "permission": "standard", "lifetime": "90"}
SECRET = re.compile(r'<code class="secret">(tpo_\w+)</code>')


def test_reloading_the_created_page_creates_nothing_and_hides_the_value(people) -> None:
    client = signed_in("alice")
    created = client.post(reverse("tokens:token-create", kwargs={"org": "acme"}), FORM)
    assert created.status_code == 302
    row = AccessToken.objects.get()
    shown_at = reverse("tokens:token-created", kwargs={"org": "acme", "token_id": row.pk})
    assert created["Location"] == shown_at

    first = client.get(shown_at)
    assert first.status_code == 200 and first["Cache-Control"] == "no-store"
    value = SECRET.search(first.content.decode())
    assert value is not None and AccessToken.objects.get(token_hash=hash_token(value.group(1)))

    reload = client.get(shown_at, follow=True)
    page = reload.content.decode()
    assert value.group(1) not in page and SECRET.search(page) is None
    assert "shown only once" in page and row.prefix in page
    assert AccessToken.objects.count() == 1


def test_another_session_never_sees_the_value(people) -> None:
    client = signed_in("alice")
    client.post(reverse("tokens:token-create", kwargs={"org": "acme"}), FORM)
    row = AccessToken.objects.get()
    shown_at = reverse("tokens:token-created", kwargs={"org": "acme", "token_id": row.pk})
    page = signed_in("alice").get(shown_at, follow=True).content.decode()
    assert SECRET.search(page) is None
