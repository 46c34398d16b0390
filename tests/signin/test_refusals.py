"""Single sign-on refusals, each with a clear page, a security-log row and nothing created.

The browser cannot tamper with what the provider sends, so these drive the portal with the Django
test client and the real provider (tests/signin/op) with an HTTP client; where the attack is a
substituted ID token, the token is a real one from another provider or for another client.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from signin.backends import OIDCBackend
from signin.models import ExternalIdentity, IdentityProvider, SignInEvent
from tests.signin.openid_provider import (
    OTHER_SECRET,
    OpenIDProvider,
    authorize,
    exchange_code,
    make_provider,
)
from trustportal.models import Organization, User

pytestmark = pytest.mark.django_db
CALLBACK = "http://testserver/signin/oidc/callback/"


@pytest.fixture
def op(start_provider: Any, allow_local_issuers: None) -> OpenIDProvider:
    provider = start_provider([CALLBACK])
    provider.set_person("erin", groups=["acme-admins"])
    return provider


def start(client: Client, provider: IdentityProvider) -> str:
    answer = client.get(f"/signin/oidc/{provider.pk}/start/")
    assert answer.status_code == 302
    return str(answer["Location"])


def assert_refused(answer: Any, reason: str, words: str, users_before: int) -> None:
    page = answer.content.decode()
    assert answer.status_code in (400, 403)
    assert "Sign-in refused" in page and words in page and reason in page
    assert User.objects.count() == users_before
    assert not ExternalIdentity.objects.exists()
    assert SignInEvent.objects.filter(kind="refused", reason=reason).exists()
    assert not SignInEvent.objects.filter(kind="signed_in").exists()


def test_the_start_asks_for_code_flow_with_pkce_and_a_nonce(
    op: OpenIDProvider, org: Organization
) -> None:
    provider = make_provider(op, organization=org)
    location = start(Client(), provider)
    assert location.startswith(f"{op.issuer}/auth?")
    for part in (
        "response_type=code",
        "code_challenge_method=S256",
        "nonce=",
        "state=",
        "client_id=portal",
    ):
        assert part in location


def test_a_tampered_state_is_refused(op: OpenIDProvider, org: Organization) -> None:
    provider = make_provider(op, organization=org)
    client = Client()
    answer = authorize(op, start(client, provider), "erin")
    users = User.objects.count()
    tampered = client.get("/signin/oidc/callback/", {**answer, "state": answer["state"] + "x"})
    assert_refused(tampered, "state_mismatch", "state does not match", users)


def test_a_wrong_nonce_is_refused(op: OpenIDProvider, org: Organization) -> None:
    provider = make_provider(op, organization=org)
    client = Client()
    answer = authorize(op, start(client, provider), "erin")
    session = client.session
    session["oidc_states"][answer["state"]]["nonce"] = "a-nonce-this-sign-in-never-sent"
    session.save()
    users = User.objects.count()
    refused = client.get("/signin/oidc/callback/", answer)
    assert_refused(refused, "nonce_mismatch", "nonce does not match", users)


def _substitute_id_token(monkeypatch: pytest.MonkeyPatch, id_token: str) -> None:
    """The provider's token endpoint answers as usual, but with someone else's ID token."""
    real = OIDCBackend.get_token

    def get_token(self: OIDCBackend, payload: dict[str, Any]) -> dict[str, Any]:
        return {**real(self, payload), "id_token": id_token}

    monkeypatch.setattr(OIDCBackend, "get_token", get_token)


def _real_token(client: Client, op: OpenIDProvider, provider: IdentityProvider, secret: str) -> str:
    answer = authorize(op, start(client, provider), "erin")
    verifier = client.session["oidc_states"][answer["state"]]["code_verifier"]
    tokens = exchange_code(
        op, code=answer["code"], verifier=verifier, client_id=provider.client_id, secret=secret
    )
    return str(tokens["id_token"])


def test_an_id_token_from_another_issuer_is_refused(
    op: OpenIDProvider, start_provider: Any, org: Organization, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another provider with the same signing key: only `iss` tells its tokens apart.
    elsewhere = start_provider([CALLBACK])
    elsewhere.set_person("erin", groups=["acme-admins"])
    foreign = make_provider(elsewhere, organization=None, name="Elsewhere")
    from tests.signin.openid_provider import CLIENT_SECRET

    foreign_token = _real_token(Client(), elsewhere, foreign, CLIENT_SECRET)
    provider = make_provider(op, organization=org)
    client = Client()
    answer = authorize(op, start(client, provider), "erin")
    _substitute_id_token(monkeypatch, foreign_token)
    users = User.objects.count()
    refused = client.get("/signin/oidc/callback/", answer)
    assert_refused(refused, "issuer_mismatch", "issued by another identity provider", users)


def test_an_id_token_for_another_client_is_refused(
    op: OpenIDProvider, org: Organization, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = make_provider(
        op, organization=None, client_id="other", secret=OTHER_SECRET, name="Other"
    )
    other_token = _real_token(Client(), op, other, OTHER_SECRET)
    provider = make_provider(op, organization=org)
    client = Client()
    answer = authorize(op, start(client, provider), "erin")
    _substitute_id_token(monkeypatch, other_token)
    users = User.objects.count()
    refused = client.get("/signin/oidc/callback/", answer)
    assert_refused(refused, "audience_mismatch", "issued for another application", users)


def test_the_genuine_answer_signs_in_once(op: OpenIDProvider, org: Organization) -> None:
    provider = make_provider(op, organization=org)
    client = Client()
    answer = authorize(op, start(client, provider), "erin")
    assert client.get("/signin/oidc/callback/", answer).status_code == 302
    assert ExternalIdentity.objects.filter(provider=provider, subject="erin").count() == 1
    # The same answer again (a replay): its state was used up.
    replay = Client().get("/signin/oidc/callback/", answer)
    assert replay.status_code == 400 and "state does not match" in replay.content.decode()
