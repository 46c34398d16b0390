"""The issuer API works unchanged with Pulumi's own `pulumi-cloud-sdk` client."""

from __future__ import annotations

import pytest
from pulumi_cloud_sdk import ApiClient, Configuration
from pulumi_cloud_sdk.apis import OrganizationsApi
from pulumi_cloud_sdk.models import OidcIssuerRegistrationRequest, OidcIssuerUpdateRequest

from issuers.models import Issuer
from tests.factories import OrganizationFactory, make_token

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("allow_local_issuers"),
]


def test_issuer_lifecycle_through_the_sdk(live_server, local_issuer) -> None:
    org = OrganizationFactory(login="acme")
    config = Configuration()
    config.host = live_server.url
    config.access_token = make_token("organization", organization=org, permission="admin")
    api = OrganizationsApi(ApiClient(config))

    created = api.register_oidc_issuer(
        "acme",
        OidcIssuerRegistrationRequest(name="dev", url=local_issuer.url, max_expiration=3600),
    )
    assert created.issuer == local_issuer.url
    assert created.max_expiration == 3600

    listed = api.list_orgs_oidc_issuers("acme")
    assert [i.id for i in listed.oidc_issuers] == [created.id]

    fetched = api.get_oidc_issuer("acme", created.id)
    assert fetched.name == "dev" and fetched.url == local_issuer.url

    updated = api.update_oidc_issuer(
        "acme", created.id, OidcIssuerUpdateRequest(name="renamed", max_expiration=1800)
    )
    assert updated.name == "renamed" and updated.max_expiration == 1800

    api.delete_oidc_issuer("acme", created.id)
    assert not Issuer.objects.exists()
