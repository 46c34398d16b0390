"""The registration use case: an issuer and its empty policy are saved together or not at all."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from issuers.models import Issuer, IssuerKey, KeyFetch
from issuers.services import issuer_create
from policies import registration
from policies.models import AuthPolicy, AuthPolicyVersion
from policies.registration import issuer_register

pytestmark = pytest.mark.django_db


def test_registering_an_issuer_creates_its_empty_policy(org, local_issuer, outbound) -> None:
    issuer = issuer_register(organization=org, url=local_issuer.url, outbound=outbound)
    policy = AuthPolicy.objects.get(issuer=issuer)
    assert (policy.organization_id, policy.version, policy.definitions) == (org.pk, 1, [])
    version = AuthPolicyVersion.objects.get(policy=policy)
    assert (version.version, version.definitions, version.note) == (
        1,
        [],
        "created with the issuer",
    )
    assert AuditEvent.objects.filter(event="issuer-registered").count() == 1


def test_a_failed_policy_leaves_no_issuer_keys_or_record(
    org, local_issuer, outbound, monkeypatch
) -> None:
    def refuse(**kwargs: object) -> AuthPolicy:
        raise RuntimeError("the policy could not be saved")

    monkeypatch.setattr(registration, "policy_create_for_issuer", refuse)
    with pytest.raises(RuntimeError, match="could not be saved"):
        issuer_register(organization=org, url=local_issuer.url, outbound=outbound)
    assert not Issuer.objects.exists()
    assert not IssuerKey.objects.exists()
    assert not KeyFetch.objects.exists()
    assert not AuthPolicy.objects.exists()
    assert not AuditEvent.objects.filter(event="issuer-registered").exists()


def test_the_issuers_part_calls_back_inside_its_transaction(org, local_issuer, outbound) -> None:
    seen: list[tuple[bool, bool]] = []

    def inside(issuer: Issuer) -> None:
        recorded = AuditEvent.objects.filter(event="issuer-registered").exists()
        seen.append((Issuer.objects.filter(pk=issuer.pk).exists(), recorded))

    issuer = issuer_create(
        organization=org, url=local_issuer.url, outbound=outbound, in_transaction=inside
    )
    # The issuer and its keys are saved when the callback runs, its audit record after it.
    assert seen == [(True, False)]
    assert not AuthPolicy.objects.filter(issuer=issuer).exists()  # issuers knows no policies
