"""Tokens created with other tokens: linked, never outliving the parent, revoked with it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from issuers.models import Issuer
from tests.conftest import auth
from tests.factories import make_token
from tests.tokens.conftest import AUDIENCE, exchange_body, signed_in
from tokens.errors import InvalidAccessToken
from tokens.filters import token_filters_from
from tokens.format import hash_token
from tokens.models import AccessToken
from tokens.selectors import revocation_preview
from tokens.services import token_create, token_revoke, tokens_revoke_matching
from trustportal.models import Organization

pytestmark = pytest.mark.django_db


def exchanged_admin_token(api_client: Any, local_issuer: Any) -> tuple[str, AccessToken]:
    """A real exchange: the local issuer's ID token for acme's admin policy (3600 s)."""
    response = api_client.post(
        "/api/oauth/token",
        exchange_body(local_issuer.mint(audience=AUDIENCE), scope="admin"),
        format="json",
    )
    assert response.status_code == 200, response.json()
    plaintext = response.json()["access_token"]
    return plaintext, AccessToken.objects.get(token_hash=hash_token(plaintext))


def create_with(client: Any, plaintext: str, **body: Any) -> AccessToken:
    """POST /api/orgs/acme/tokens authenticated by `plaintext`; the created row."""
    response = auth(client, plaintext).post("/api/orgs/acme/tokens", body, format="json")
    assert response.status_code == 201, response.json()
    return AccessToken.objects.get(pk=int(response.json()["id"]))


def value_of(client: Any, plaintext: str, **body: Any) -> tuple[str, AccessToken]:
    response = auth(client, plaintext).post("/api/orgs/acme/tokens", body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()["tokenValue"], AccessToken.objects.get(pk=int(response.json()["id"]))


def revoketokens(*args: str) -> str:
    out = StringIO()
    call_command("revoketokens", *args, stdout=out)
    return out.getvalue().strip()


@pytest.fixture
def chain(api_client, local_issuer, trusted: Issuer) -> dict[str, Any]:
    """exchanged admin token → child (created with it) → grandchild (created with the child)."""
    root_value, root = exchanged_admin_token(api_client, local_issuer)
    child_value, child = value_of(api_client, root_value, name="child", admin=True, expires=0)
    grand_value, grandchild = value_of(api_client, child_value, name="grandchild", admin=True)
    return {
        "issuer": trusted,
        "root": root,
        "child": child,
        "grandchild": grandchild,
        "values": (root_value, child_value, grand_value),
    }


def revoked(*tokens: AccessToken) -> list[bool]:
    return [AccessToken.objects.get(pk=t.pk).revoked_at is not None for t in tokens]


# --- the attack ---------------------------------------------------------------------------------
def test_an_exchanged_admin_token_cannot_create_a_token_that_never_expires(
    api_client, local_issuer, trusted: Issuer
) -> None:
    parent_value, parent = exchanged_admin_token(api_client, local_issuer)
    assert parent.expires is not None
    child = create_with(api_client, parent_value, name="forever", admin=True, expires=0)
    assert child.parent_id == parent.pk
    assert child.expires == parent.expires  # "never" is clamped to the parent's expiry
    body = auth(api_client, parent_value).get(f"/api/orgs/acme/tokens/{child.pk}").json()
    assert body["parentId"] == str(parent.pk) and body["expires"] == int(parent.expires.timestamp())

    assert revoketokens("--org", "acme", "--issuer", str(trusted.pk), "--dry-run") == (
        "2 token(s) would be revoked (1 of them created with the others)"
    )
    assert revoketokens("--org", "acme", "--issuer", str(trusted.pk), "--yes") == (
        "2 token(s) revoked"
    )
    assert revoked(parent, child) == [True, True]


def test_an_expiry_beyond_the_parent_is_clamped_and_an_earlier_one_kept(
    api_client, local_issuer, trusted: Issuer
) -> None:
    parent_value, parent = exchanged_admin_token(api_client, local_issuer)
    assert parent.expires is not None
    later = int((parent.expires + timedelta(days=300)).timestamp())
    assert create_with(api_client, parent_value, name="late", expires=later).expires == (
        parent.expires
    )
    earlier = (parent.expires - timedelta(minutes=10)).replace(microsecond=0)
    kept = create_with(api_client, parent_value, name="early", expires=int(earlier.timestamp()))
    assert kept.expires == earlier and kept.parent_id == parent.pk


def test_a_personal_token_created_with_an_exchanged_personal_token_ends_with_it(
    api_client, local_issuer, trusted: Issuer
) -> None:
    response = api_client.post(
        "/api/oauth/token",
        exchange_body(
            local_issuer.mint(audience=AUDIENCE),
            requested_token_type="urn:pulumi:token-type:access_token:personal",
            scope="user:octocat",
        ),
        format="json",
    )
    assert response.status_code == 200, response.json()
    parent = AccessToken.objects.get(token_hash=hash_token(response.json()["access_token"]))
    created = auth(api_client, response.json()["access_token"]).post(
        "/api/user/tokens", {"description": "forever", "expires": 0}, format="json"
    )
    assert created.status_code == 201
    child = AccessToken.objects.get(pk=int(created.json()["id"]))
    assert child.parent_id == parent.pk and child.expires == parent.expires


def test_a_parent_that_never_expires_leaves_the_expiry_alone(org: Organization) -> None:
    parent, _ = token_create(token_type="organization", organization=org, permission="admin")
    child, _ = token_create(token_type="organization", organization=org, parent=parent)
    assert child.parent_id == parent.pk and child.expires is None


def test_a_revoked_parent_creates_nothing(org: Organization) -> None:
    parent, _ = token_create(token_type="organization", organization=org, permission="admin")
    token_revoke(token=parent)
    # The row the caller authenticated with may be up to 5 s old: creation re-reads it, locked.
    stale = AccessToken.objects.get(pk=parent.pk)
    stale.revoked_at = None
    with pytest.raises(InvalidAccessToken):
        token_create(token_type="organization", organization=org, parent=stale)
    assert AccessToken.objects.count() == 1


# --- chains of three ----------------------------------------------------------------------------
def test_revoketokens_by_issuer_revokes_a_chain_of_three(chain) -> None:
    root, child, grandchild = chain["root"], chain["child"], chain["grandchild"]
    assert grandchild.parent_id == child.pk and child.parent_id == root.pk
    assert grandchild.expires == child.expires == root.expires
    issuer = str(chain["issuer"].pk)
    assert revoketokens("--org", "acme", "--issuer", issuer, "--yes") == "3 token(s) revoked"
    assert revoked(root, child, grandchild) == [True, True, True]
    assert {t.revoked_at for t in AccessToken.objects.all()} == {
        AccessToken.objects.get(pk=root.pk).revoked_at
    }


@pytest.mark.parametrize(
    "params",
    [
        lambda chain: {"policy": str(chain["root"].policy_id)},
        lambda chain: {"subject": "repo:acme/infra:*"},
        lambda chain: {
            "policy": str(chain["root"].policy_id),
            "version": str(chain["root"].policy_version),
            "definition": "0",
        },
    ],
    ids=["policy", "subject", "definition"],
)
def test_revoking_by_filter_revokes_the_descendants(chain, params) -> None:
    filters = token_filters_from(params(chain))
    organization = chain["root"].organization
    preview = revocation_preview(organization=organization, filters=filters, now=timezone.now())
    assert (preview.count, preview.descendants, preview.total) == (1, 2, 3)
    revoked_count = tokens_revoke_matching(
        organization=organization, filters=filters, by=None, reason="test", upto=preview.upto
    )
    assert revoked_count == 3
    assert revoked(chain["root"], chain["child"], chain["grandchild"]) == [True, True, True]


def test_the_api_bulk_revoke_counts_and_revokes_the_descendants(chain, api_client) -> None:
    client = auth(
        api_client,
        make_token("organization", organization=chain["root"].organization, permission="admin"),
    )
    body = {"issuer": str(chain["issuer"].pk), "dryRun": True}
    preview = client.post("/api/orgs/acme/tokens/revoke", body, format="json").json()
    assert preview["count"] == 3
    body = {"issuer": str(chain["issuer"].pk), "upto": preview["upto"]}
    assert client.post("/api/orgs/acme/tokens/revoke", body, format="json").json()["count"] == 3
    assert revoked(chain["root"], chain["child"], chain["grandchild"]) == [True, True, True]


def test_revoking_the_middle_token_revokes_only_below_it(chain, api_client) -> None:
    root_value, _child_value, grand_value = chain["values"]
    response = auth(api_client, root_value).delete(f"/api/orgs/acme/tokens/{chain['child'].pk}")
    assert response.status_code == 204
    assert revoked(chain["root"], chain["child"], chain["grandchild"]) == [False, True, True]
    assert auth(api_client, grand_value).get("/api/user").status_code == 401
    assert auth(api_client, root_value).get("/api/user").status_code == 200


def test_the_revoke_page_says_what_else_is_revoked(chain, people) -> None:
    client = signed_in("alice")
    url = reverse("tokens:token", kwargs={"org": "acme", "token_id": chain["root"].pk})
    page = client.get(url).content.decode()
    assert "also revokes the 2 active tokens created with it" in page
    child_page = client.get(
        reverse("tokens:token", kwargs={"org": "acme", "token_id": chain["child"].pk})
    ).content.decode()
    assert f"/tokens/{chain['root'].pk}/" in child_page
    revoke = reverse("tokens:token-revoke", kwargs={"org": "acme", "token_id": chain["root"].pk})
    client.post(revoke, {"confirm": "on", "reason": "leak"})
    assert revoked(chain["root"], chain["child"], chain["grandchild"]) == [True, True, True]
    preview = client.get(
        reverse("tokens:revoke-matching", kwargs={"org": "acme"}) + f"?issuer={chain['issuer'].pk}"
    ).content.decode()
    assert "No active token matches" in preview


def test_the_revoke_by_filter_page_counts_the_descendants(chain, people) -> None:
    page = (
        signed_in("alice")
        .get(
            reverse("tokens:revoke-matching", kwargs={"org": "acme"})
            + f"?issuer={chain['issuer'].pk}"
        )
        .content.decode()
    )
    assert "3 active tokens will be revoked" in page
    assert "2 were created with them" in page


def test_descendants_below_an_already_revoked_token_are_revoked_too(org) -> None:
    """The sweep goes through revoked tokens: nothing below a revoked token stays active."""
    parent, _ = token_create(token_type="organization", organization=org, permission="admin")
    child, _ = token_create(token_type="organization", organization=org, parent=parent)
    grandchild, _ = token_create(token_type="organization", organization=org, parent=child)
    AccessToken.objects.filter(pk=child.pk).update(revoked_at=datetime(2026, 1, 1, tzinfo=UTC))
    assert token_revoke(token=parent) is True
    assert revoked(parent, child, grandchild) == [True, True, True]
    assert AccessToken.objects.get(pk=child.pk).revoked_at == datetime(2026, 1, 1, tzinfo=UTC)
