"""Deleting or disabling an issuer revokes what it minted: pages, API, admin, one transaction."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from issuers.models import Issuer
from tests.conftest import auth
from tests.factories import PASSWORD, make_token, pass_second_factor
from tests.tokens.conftest import (  # noqa: F401  (fixtures)
    AUDIENCE,
    exchange_body,
    people,
    signed_in,
    trusted,
)
from tokens.format import hash_token
from tokens.models import AccessToken, ExchangeEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def minted(api_client, local_issuer, request) -> dict[str, Any]:
    """Two real exchanges (the trusted local issuer), a token created with one, a hand-made one."""
    request.getfixturevalue("people")
    issuer: Issuer = request.getfixturevalue("trusted")
    tokens = []
    for _ in range(2):
        response = api_client.post(
            "/api/oauth/token",
            exchange_body(local_issuer.mint(audience=AUDIENCE), scope="admin"),
            format="json",
        )
        assert response.status_code == 200, response.json()
        tokens.append(response.json()["access_token"])
    created = auth(api_client, tokens[0]).post(
        "/api/orgs/acme/tokens", {"name": "child", "admin": True, "expires": 0}, format="json"
    )
    assert created.status_code == 201
    api_client.credentials()
    rows = [AccessToken.objects.get(token_hash=hash_token(t)) for t in tokens]
    child = AccessToken.objects.get(pk=int(created.json()["id"]))
    admin = make_token("organization", organization=issuer.organization, permission="admin")
    return {
        "issuer": issuer,
        "issuer_id": issuer.pk,
        "rows": [*rows, child],
        "bystander": AccessToken.objects.get(token_hash=hash_token(admin)),
        "admin": admin,
    }


def active(minted: dict[str, Any]) -> list[bool]:
    return [
        AccessToken.objects.get(pk=t.pk).revoked_at is None
        for t in [*minted["rows"], minted["bystander"]]
    ]


def page(name: str, issuer_id: Any) -> str:
    return reverse(f"issuers:{name}", kwargs={"org": "acme", "issuer_id": issuer_id})


def assert_history_kept(minted: dict[str, Any]) -> None:
    """Tokens and events keep the deleted issuer's id, and the history still filters by it."""
    issuer_id = minted["issuer_id"]
    assert [
        t.issuer_id for t in AccessToken.objects.filter(pk__in=[r.pk for r in minted["rows"][:2]])
    ] == [issuer_id] * 2
    events = ExchangeEvent.objects.filter(decision="allow")
    assert events.count() == 2 and {e.issuer_id for e in events} == {issuer_id}
    history = signed_in("alice").get(f"/orgs/acme/history/?issuer={issuer_id}")
    assert history.status_code == 200
    assert history.content.decode().count(f"/orgs/acme/history/{events[0].pk}/") >= 1


# --- deleting -----------------------------------------------------------------------------------
def test_the_delete_page_counts_then_revokes_in_the_same_step(minted) -> None:
    client = signed_in("alice")
    detail = client.get(page("detail", minted["issuer_id"])).content.decode()
    assert page("delete", minted["issuer_id"]) in detail
    confirm = client.get(page("delete", minted["issuer_id"])).content.decode()
    assert "Deleting dev revokes 3 tokens" in confirm
    assert "the 1 token created with them" in confirm

    unconfirmed = client.post(page("delete", minted["issuer_id"]))
    assert unconfirmed.status_code == 400
    assert Issuer.objects.filter(pk=minted["issuer_id"]).exists() and all(active(minted))

    done = client.post(page("delete", minted["issuer_id"]), {"confirm": "on"}, follow=True)
    assert "Deleted the issuer dev and revoked 3 tokens." in done.content.decode()
    assert not Issuer.objects.filter(pk=minted["issuer_id"]).exists()
    assert active(minted) == [False, False, False, True]
    assert {t.revoked_reason for t in minted["rows"] if t.refresh_from_db() is None} == {
        "issuer dev deleted"
    }
    assert_history_kept(minted)


def test_the_api_delete_answers_204_with_the_count_shown_first_by_get(minted, api_client) -> None:
    client = auth(api_client, minted["admin"])
    url = f"/api/orgs/acme/oidc/issuers/{minted['issuer_id']}"
    assert client.get(url).json()["activeTokens"] == 3
    response = client.delete(url)
    assert response.status_code == 204 and response["X-Revoked-Tokens"] == "3"
    assert active(minted) == [False, False, False, True]
    assert client.get(url).status_code == 404
    assert_history_kept(minted)


def test_a_failed_deletion_revokes_nothing(minted, monkeypatch) -> None:
    def refuse(self: Issuer, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the database refused the deletion")

    monkeypatch.setattr(Issuer, "delete", refuse)
    with pytest.raises(RuntimeError):
        signed_in("alice").post(page("delete", minted["issuer_id"]), {"confirm": "on"})
    assert Issuer.objects.filter(pk=minted["issuer_id"]).exists()
    assert all(active(minted))


def test_the_admin_refuses_deletion_in_favour_of_the_page(minted, django_user_model) -> None:
    django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)
    for client in (signed_in("alice"), pass_second_factor(signed_in("root"), "root")):
        url = reverse("admin:issuers_issuer_delete", args=[minted["issuer_id"]])
        assert client.get(url).status_code == 403
        assert client.post(url, {"post": "yes"}).status_code == 403
        changelist = reverse("admin:issuers_issuer_changelist")
        client.post(
            changelist, {"action": "delete_selected", "_selected_action": [minted["issuer_id"]]}
        )
    assert Issuer.objects.filter(pk=minted["issuer_id"]).exists() and all(active(minted))


# --- disabling ----------------------------------------------------------------------------------
def test_the_disable_page_offers_to_revoke_with_the_count(minted) -> None:
    client = signed_in("alice")
    confirm = client.get(page("disable", minted["issuer_id"])).content.decode()
    assert "Also revoke the 3 tokens it minted" in confirm
    done = client.post(
        page("set-enabled", minted["issuer_id"]), {"enabled": "false", "revoke": "on"}, follow=True
    )
    assert "3 tokens it minted" in done.content.decode()
    assert Issuer.objects.get(pk=minted["issuer_id"]).enabled is False
    assert active(minted) == [False, False, False, True]


def test_disabling_without_the_checkbox_keeps_the_tokens(minted) -> None:
    signed_in("alice").post(page("set-enabled", minted["issuer_id"]), {"enabled": "false"})
    assert Issuer.objects.get(pk=minted["issuer_id"]).enabled is False
    assert all(active(minted))


def test_the_api_patch_disables_and_revokes(minted, api_client) -> None:
    client = auth(api_client, minted["admin"])
    url = f"/api/orgs/acme/oidc/issuers/{minted['issuer_id']}"
    refused = client.patch(url, {"name": "dev", "revokeTokens": True}, format="json")
    assert refused.status_code == 400 and "enabled: false" in refused.json()["message"]
    refused = client.patch(
        url, {"name": "dev", "enabled": False, "revokeTokens": "yes"}, format="json"
    )
    assert refused.status_code == 400
    assert Issuer.objects.get(pk=minted["issuer_id"]).enabled is True and all(active(minted))

    response = client.patch(
        url, {"name": "dev", "enabled": False, "revokeTokens": True}, format="json"
    )
    assert response.status_code == 200 and response["X-Revoked-Tokens"] == "3"
    assert response.json()["enabled"] is False and response.json()["activeTokens"] == 0
    assert active(minted) == [False, False, False, True]


def test_a_refused_update_revokes_nothing(minted, api_client) -> None:
    client = auth(api_client, minted["admin"])
    url = f"/api/orgs/acme/oidc/issuers/{minted['issuer_id']}"
    response = client.patch(
        url, {"name": "", "enabled": False, "revokeTokens": True}, format="json"
    )
    assert response.status_code == 400
    assert Issuer.objects.get(pk=minted["issuer_id"]).enabled is True and all(active(minted))
