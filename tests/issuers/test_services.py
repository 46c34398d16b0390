"""Registering issuers against a real local issuer, refreshing keys, and key lookup."""

from __future__ import annotations

import json
from datetime import timedelta

import jwt
import pytest
import time_machine
from cryptography.hazmat.primitives.asymmetric import ec
from django.utils import timezone

from devtools.issuer import CannedResponse, DevIssuer, SigningKey
from issuers.errors import IssuerConflict, IssuerInvalid, KeyLookupError
from issuers.keys import get_verification_key
from issuers.models import Issuer, IssuerKey, KeyFetch
from issuers.services import (
    Outbound,
    issuer_refresh_keys,
    issuer_update,
    refresh_interval,
)
from policies.registration import issuer_register
from tests.factories import OrganizationFactory
from trustportal.models import Organization

pytestmark = pytest.mark.django_db


def register(org: Organization, issuer: DevIssuer, outbound: Outbound, **kwargs) -> Issuer:
    return issuer_register(organization=org, url=issuer.url, outbound=outbound, **kwargs)


def test_register_discovers_issuer_and_keys(org, local_issuer, outbound) -> None:
    issuer = register(org, local_issuer, outbound, name="dev", audiences=["sts.amazonaws.com"])
    assert issuer.issuer == local_issuer.url
    assert issuer.jwks_uri == f"{local_issuer.url}/.well-known/jwks"
    assert issuer.thumbprints == []  # plain HTTP: no certificate to pin
    assert issuer.max_expiration == 7200
    assert issuer.audiences == ["sts.amazonaws.com"]
    assert issuer.last_success_at is not None
    assert issuer.next_refresh_at is not None
    key = IssuerKey.objects.get(issuer=issuer)
    assert (key.kid, key.kty, key.alg, key.size) == ("test-key-1", "RSA", "RS256", 2048)
    assert "d" not in key.jwk
    fetch = KeyFetch.objects.get(issuer=issuer)
    assert fetch.ok and fetch.trigger == "register" and fetch.keys_added == 1
    assert [r.path for r in local_issuer.requests] == [
        "/.well-known/openid-configuration",
        "/.well-known/jwks",
    ]


def test_same_url_in_two_orgs_is_independent(org, local_issuer, outbound) -> None:
    other = OrganizationFactory(login="other")
    a = register(org, local_issuer, outbound)
    b = register(other, local_issuer, outbound)
    assert a.pk != b.pk
    with pytest.raises(IssuerConflict, match="already registered"):
        register(org, local_issuer, outbound, name="again")


def test_issuer_mismatch_in_discovery_is_refused(org, local_issuer, outbound) -> None:
    document = {**local_issuer.discovery(), "issuer": "https://token.actions.githubusercontent.com"}
    local_issuer.canned["/.well-known/openid-configuration"] = CannedResponse(
        body=json.dumps(document).encode()
    )
    with pytest.raises(IssuerInvalid) as info:
        register(org, local_issuer, outbound)
    assert info.value.reason == "issuer_mismatch"
    assert "token.actions.githubusercontent.com" in info.value.message
    assert not Issuer.objects.exists()


def test_issuer_may_differ_by_one_trailing_slash(org, local_issuer, outbound) -> None:
    issuer = issuer_register(organization=org, url=local_issuer.url + "/", outbound=outbound)
    assert issuer.issuer == local_issuer.url
    assert issuer.url == local_issuer.url + "/"


def test_static_jwks_issuer_fetches_nothing(org, local_issuer, outbound) -> None:
    key = SigningKey.generate("ES256", kid="static-1")
    issuer = issuer_register(
        organization=org,
        url="https://kubernetes.default.svc",
        jwks={"keys": [key.public_jwk()]},
        outbound=outbound,
    )
    assert issuer.is_static and issuer.issuer == "https://kubernetes.default.svc"
    assert IssuerKey.objects.get(issuer=issuer).kid == "static-1"
    assert issuer_refresh_keys(issuer=issuer, trigger="schedule", outbound=outbound) is None
    assert local_issuer.requests == []
    found = get_verification_key(issuer, "static-1", "ES256")
    public = key.private_key.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert found.public_numbers() == public.public_numbers()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_expiration": 10}, "between 60 and 90000"),
        ({"max_expiration": 90001}, "between 60 and 90000"),
        ({"max_expiration": "7200"}, "whole number"),
        ({"thumbprints": ["abc"]}, "64 hex digits"),
        ({"audiences": "aud"}, "list of non-empty strings"),
        ({"algorithms": ["HS256"]}, "unsupported algorithms HS256"),
        ({"algorithms": ["none"]}, "unsupported algorithms none"),
        ({"name": ""}, "name is required"),
        ({"jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "x"}]}}, "symmetric"),
    ],
)
def test_registration_input_is_checked(org, local_issuer, outbound, kwargs, message) -> None:
    with pytest.raises(IssuerInvalid, match=message):
        register(org, local_issuer, outbound, **kwargs)
    assert not Issuer.objects.exists()


def test_refresh_picks_up_rotation_and_removed_keys_stop_verifying(
    org, local_issuer, outbound
) -> None:
    issuer = register(org, local_issuer, outbound)
    assert get_verification_key(issuer, "test-key-1", "RS256") is not None
    new = local_issuer.rotate()
    fetch = issuer_refresh_keys(issuer=issuer, trigger="schedule", outbound=outbound)
    assert fetch is not None and fetch.ok
    assert (fetch.keys_added, fetch.keys_removed) == (1, 1)
    assert get_verification_key(issuer, new.kid, "RS256") is not None
    with pytest.raises(KeyLookupError) as info:
        get_verification_key(issuer, "test-key-1", "RS256")
    assert info.value.reason == "unknown_kid"
    old = IssuerKey.objects.get(issuer=issuer, kid="test-key-1")
    assert old.removed_at is not None


BAD_SETS = {
    "duplicate_kid": lambda jwk: {"keys": [jwk, jwk]},
    "private_key": lambda jwk: {"keys": [{**jwk, "d": "AAAA"}]},
    "symmetric_key": lambda jwk: {"keys": [{"kty": "oct", "k": "AAAA", "kid": "h"}]},
    "unknown_kty": lambda jwk: {"keys": [{**jwk, "kty": "PQC"}]},
    "empty_jwks": lambda jwk: {"keys": []},
}


@pytest.mark.parametrize("reason", sorted(BAD_SETS))
def test_a_bad_refresh_keeps_the_previous_good_set(
    org, local_issuer, outbound, reason: str
) -> None:
    issuer = register(org, local_issuer, outbound)
    version = issuer.keys_version
    bad = BAD_SETS[reason](local_issuer.current_key.public_jwk())
    local_issuer.canned["/.well-known/jwks"] = CannedResponse(body=json.dumps(bad).encode())
    fetch = issuer_refresh_keys(issuer=issuer, trigger="schedule", outbound=outbound)
    assert fetch is not None and not fetch.ok and fetch.reason == reason
    issuer.refresh_from_db()
    assert issuer.last_error_reason == reason
    assert issuer.keys_version == version
    assert list(
        IssuerKey.objects.filter(issuer=issuer, removed_at=None).values_list("kid", flat=True)
    ) == ["test-key-1"]
    assert get_verification_key(issuer, "test-key-1", "RS256") is not None


def test_weak_rsa_refresh_is_refused(org, local_issuer, outbound) -> None:
    issuer = register(org, local_issuer, outbound)
    weak = SigningKey.generate("RS256", kid="weak", rsa_bits=1024)
    local_issuer.keys = [weak]
    fetch = issuer_refresh_keys(issuer=issuer, trigger="schedule", outbound=outbound)
    assert fetch is not None and fetch.reason == "weak_key"
    assert get_verification_key(issuer, "test-key-1", "RS256") is not None


def test_not_modified_and_cache_control(org, local_issuer, outbound) -> None:
    local_issuer.jwks_max_age = 60  # below the floor: clamped to 5 minutes
    issuer = register(org, local_issuer, outbound)
    assert issuer.refresh_interval == 300
    assert issuer.jwks_etag
    fetch = issuer_refresh_keys(issuer=issuer, trigger="schedule", outbound=outbound)
    assert fetch is not None and fetch.ok and fetch.status == 304
    assert local_issuer.requests[-1].headers["if-none-match"] == issuer.jwks_etag
    assert [refresh_interval(v) for v in (None, 0, 600, 10**6)] == [900, 300, 600, 86400]


def test_stale_while_error_then_cut_off_after_seven_days(org, local_issuer, outbound) -> None:
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        issuer = register(org, local_issuer, outbound)
    local_issuer.canned["/.well-known/jwks"] = CannedResponse(status=503, body=b"{}")
    with time_machine.travel(start + timedelta(days=6), tick=False):
        fetch = issuer_refresh_keys(issuer=issuer, trigger="schedule", outbound=outbound)
        assert fetch is not None and not fetch.ok
        assert get_verification_key(issuer, "test-key-1", "RS256") is not None
    with time_machine.travel(start + timedelta(days=7, minutes=1), tick=False):
        issuer_refresh_keys(issuer=issuer, trigger="schedule", outbound=outbound)
        with pytest.raises(KeyLookupError) as info:
            get_verification_key(issuer, "test-key-1", "RS256")
        assert info.value.reason == "issuer_unhealthy"
    del local_issuer.canned["/.well-known/jwks"]
    with time_machine.travel(start + timedelta(days=8), tick=False):
        issuer_refresh_keys(issuer=issuer, trigger="schedule", outbound=outbound)
        assert get_verification_key(issuer, "test-key-1", "RS256") is not None


def test_unknown_kid_refreshes_at_most_once_per_minute(org, local_issuer, outbound) -> None:
    issuer = register(org, local_issuer, outbound)
    local_issuer.clear_log()

    def refresh(target: Issuer) -> None:
        issuer_refresh_keys(issuer=target, trigger="on_demand", outbound=outbound)

    start = timezone.now()
    with time_machine.travel(start, tick=False):
        for i in range(200):
            with pytest.raises(KeyLookupError):
                get_verification_key(issuer, f"random-{i}", "RS256", refresh=refresh)
    assert len(local_issuer.requests_to("/.well-known/jwks")) == 1
    # A real rotation within the window is picked up on the next allowed refresh.
    new = local_issuer.rotate(keep_old=True)
    with (
        time_machine.travel(start + timedelta(seconds=30), tick=False),
        pytest.raises(KeyLookupError),
    ):
        get_verification_key(issuer, new.kid, "RS256", refresh=refresh)
    with time_machine.travel(start + timedelta(seconds=61), tick=False):
        assert get_verification_key(issuer, new.kid, "RS256", refresh=refresh) is not None
    assert len(local_issuer.requests_to("/.well-known/jwks")) == 2


@pytest.mark.parametrize(
    ("kid", "alg", "reason"),
    [
        ("test-key-1", "ES256", "alg_mismatch"),  # the key says RS256
        ("test-key-1", "HS256", "alg_not_allowed"),
        ("test-key-1", "none", "alg_not_allowed"),
        ("../etc/passwd", "RS256", "bad_kid"),
        ("x" * 129, "RS256", "bad_kid"),
        ("", "RS256", "bad_kid"),
    ],
)
def test_key_lookup_refusals(org, local_issuer, outbound, kid, alg, reason) -> None:
    issuer = register(org, local_issuer, outbound)
    with pytest.raises(KeyLookupError) as info:
        get_verification_key(issuer, kid, alg)
    assert info.value.reason == reason


def test_algorithm_allow_list_is_per_issuer(org, local_issuer, outbound) -> None:
    issuer = register(org, local_issuer, outbound, algorithms=["ES256"])
    with pytest.raises(KeyLookupError) as info:
        get_verification_key(issuer, "test-key-1", "RS256")
    assert info.value.reason == "alg_not_allowed"


def test_keys_of_one_issuer_never_serve_another(org, local_issuer, outbound) -> None:
    first = register(org, local_issuer, outbound)
    other = SigningKey.generate("RS256", kid="other-1")
    second = issuer_register(
        organization=org,
        url="https://other.example",
        jwks={"keys": [other.public_jwk()]},
        outbound=outbound,
    )
    with pytest.raises(KeyLookupError):
        get_verification_key(second, "test-key-1", "RS256")
    with pytest.raises(KeyLookupError):
        get_verification_key(first, "other-1", "RS256")


def test_verification_key_really_verifies(org, local_issuer, outbound) -> None:
    issuer = register(org, local_issuer, outbound)
    token = local_issuer.mint(audience="aud")
    key = get_verification_key(issuer, "test-key-1", "RS256")
    assert (
        jwt.decode(token, key=key, algorithms=["RS256"], audience="aud")["iss"] == local_issuer.url
    )


def test_update_keeps_url_and_requires_name(org, local_issuer, outbound) -> None:
    issuer = register(org, local_issuer, outbound)
    with pytest.raises(IssuerInvalid, match="cannot change"):
        issuer_update(issuer=issuer, data={"name": "x", "url": "https://evil"}, outbound=outbound)
    with pytest.raises(IssuerInvalid, match="name is required"):
        issuer_update(issuer=issuer, data={"maxExpiration": 600}, outbound=outbound)
    issuer_update(
        issuer=issuer,
        data={"name": "renamed", "maxExpiration": 600, "singleUse": True, "enabled": False},
        outbound=outbound,
    )
    issuer.refresh_from_db()
    assert (issuer.name, issuer.max_expiration, issuer.single_use, issuer.enabled) == (
        "renamed",
        600,
        True,
        False,
    )


@pytest.mark.parametrize("url", ["https://[::1", "https://a]b/", "https://[::1/x"])
def test_unparseable_urls_are_refused_not_500(org, outbound, url) -> None:
    with pytest.raises(IssuerInvalid) as info:
        issuer_register(organization=org, url=url, outbound=outbound)
    assert info.value.reason == "bad_url"


def test_static_issuer_url_must_be_a_url(org, outbound) -> None:
    key = SigningKey.generate("ES256", kid="s")
    with pytest.raises(IssuerInvalid, match="https:// URL"):
        issuer_register(
            organization=org,
            url="not a url at all",
            jwks={"keys": [key.public_jwk()]},
            outbound=outbound,
        )


def test_refused_update_leaves_the_issuer_unchanged(org, local_issuer, outbound) -> None:
    issuer = register(org, local_issuer, outbound, name="dev")
    with pytest.raises(IssuerInvalid):
        issuer_update(
            issuer=issuer, data={"name": "new", "maxExpiration": 10**6}, outbound=outbound
        )
    assert issuer.name == "dev"
