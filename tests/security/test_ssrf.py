"""Issuer URLs as an SSRF vector: the forms the outbound guard's own tables do not hold yet.

tests/issuers/test_http.py (`HOSTILE`) and tests/issuers/test_registration_guard.py
(`hostile_urls`) hold the bulk of the corpus; this adds further IPv6, IPv4 and DNS disguises
(each refused with nothing fetched and no connection made), and the hostile-server behaviours
seen through registration and key refresh: redirects to metadata addresses, slow-drip servers
cut at the deadline, oversized and non-finite documents, and guarded `jwks_uri`s.
"""

from __future__ import annotations

import ipaddress
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from devtools.issuer import CannedResponse, DevIssuer
from issuers.errors import IssuerInvalid
from issuers.models import Issuer, IssuerKey
from issuers.services import Outbound, issuer_refresh_keys
from outbound.client import check_url, fetch_json
from outbound.policy import DEFAULT_MAX_BYTES, OutboundPolicy
from policies.registration import issuer_register
from tests.conftest import LOOPBACK
from tests.issuers import test_http as guard_tests
from tests.issuers import test_registration_guard as registration_tests
from tests.issuers.test_http import FakeResolver, LocalServer, Route, json_body_of_size, refused
from tests.security.reporting import record_summary
from trustportal.models import Organization

connect_log = guard_tests.connect_log
server = guard_tests.server

DISCOVERY = "/.well-known/openid-configuration"
JWKS = "/.well-known/jwks"
STRICT = OutboundPolicy(timeout=2.0)
EVERYTHING = OutboundPolicy(
    allow_http=True,
    allowed_networks=(ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")),
    timeout=2.0,
)

# Names and what the injected resolver answers for them: every one is a disguise.
DNS = {
    "public.test": ["93.184.215.14"],
    "localhost": ["127.0.0.1"],
    "v6-loopback.test": ["::1"],
    "zero.test": ["0.0.0.0"],
    "mapped-metadata.test": ["::ffff:169.254.169.254"],
    "nat64-private.test": ["64:ff9b::10.0.0.5"],
    "aws-v6-metadata.test": ["fd00:ec2::254"],
    "scoped-link-local.test": ["fe80::1%eth0"],
    "v4-compatible-loopback.test": ["::127.0.0.1"],
    "benchmarking.test": ["198.18.0.1"],
    "this-network.test": ["0.1.2.3"],
    "short-form-answer.test": ["127.1"],
    "hex-answer.test": ["0x7f000001"],
    "second-answer-private.test": ["93.184.215.14", "::1"],
}

# (url with {port} for the local server, policy, reason). None of these is in the other tables.
NEW_FORMS: list[tuple[str, OutboundPolicy, str]] = [
    # IPv6 literals
    ("https://[::127.0.0.1]:{port}/", STRICT, "address_not_allowed"),  # IPv4-compatible
    ("https://[::7f00:1]:{port}/", STRICT, "address_not_allowed"),
    ("https://[0:0:0:0:0:0:0:1]:{port}/", STRICT, "address_not_allowed"),  # uncompressed ::1
    ("https://[0000::1]:{port}/", STRICT, "address_not_allowed"),
    ("https://[FE80::1]:{port}/", STRICT, "address_not_allowed"),  # upper case
    ("https://[::ffff:0:7f00:1]:{port}/", STRICT, "address_not_allowed"),  # IPv4-translated
    ("https://[100::1]/", STRICT, "address_not_allowed"),  # discard-only
    ("https://[64:ff9b:1::a00:5]/", STRICT, "address_not_allowed"),  # local-use NAT64
    ("https://[64:ff9b::10.0.0.5]/", STRICT, "address_not_allowed"),  # NAT64, dotted tail
    ("https://[fd00:ec2::254]/latest/meta-data/", STRICT, "address_not_allowed"),  # AWS v6
    ("https://[2001:10::1]/", STRICT, "address_not_allowed"),  # ORCHID
    ("https://[::1%25lo]:{port}/", EVERYTHING, "bad_url"),  # zone id, loopback
    ("https://[::1].:{port}/", EVERYTHING, "bad_url"),
    # IPv4-mapped IPv6, in forms the tables do not have
    ("https://[::ffff:7f00:1]:{port}/", EVERYTHING, "non_canonical_ip"),  # hex tail
    ("https://[0:0:0:0:0:ffff:a9fe:a9fe]/", EVERYTHING, "non_canonical_ip"),  # expanded
    ("https://[::ffff:10.0.0.5]/", EVERYTHING, "non_canonical_ip"),
    # decimal, hex and octal IPv4
    ("https://0x7f.1:{port}/", EVERYTHING, "non_canonical_ip"),
    ("https://127.0.1:{port}/", EVERYTHING, "non_canonical_ip"),
    ("https://0177.1:{port}/", EVERYTHING, "non_canonical_ip"),
    ("https://0x7f.0.0.01:{port}/", EVERYTHING, "non_canonical_ip"),
    ("https://0x00000000007f000001:{port}/", EVERYTHING, "non_canonical_ip"),  # zero-padded
    ("https://0:{port}/", EVERYTHING, "non_canonical_ip"),
    ("https://0300.0250.0.1/", EVERYTHING, "non_canonical_ip"),  # octal 192.168.0.1
    ("https://3232235777/", EVERYTHING, "non_canonical_ip"),  # decimal 192.168.1.1
    ("https://%31%32%37.0.0.1:{port}/", EVERYTHING, "non_canonical_ip"),  # percent-encoded
    ("https://127\u30020\u30020\u30021:{port}/", EVERYTHING, "bad_url"),  # ideographic dots
    ("https://\u2460\u2461\u2466.0.0.1:{port}/", EVERYTHING, "bad_url"),  # circled digits
    ("https://127.0.0.1%00.public.test/", EVERYTHING, "bad_url"),
    ("https://198.18.0.1/", STRICT, "address_not_allowed"),  # benchmarking
    ("https://0.1.2.3/", STRICT, "address_not_allowed"),  # "this network"
    # names resolving to non-public addresses (the injected resolver)
    ("https://localhost:{port}/", STRICT, "address_not_allowed"),
    ("https://LOCALHOST:{port}/", STRICT, "address_not_allowed"),
    ("https://localhost.:{port}/", STRICT, "bad_url"),
    ("https://v6-loopback.test:{port}/", STRICT, "address_not_allowed"),
    ("https://zero.test:{port}/", STRICT, "address_not_allowed"),
    ("https://mapped-metadata.test/", EVERYTHING, "address_not_allowed"),
    ("https://nat64-private.test/", STRICT, "address_not_allowed"),
    ("https://aws-v6-metadata.test/", STRICT, "address_not_allowed"),
    ("https://scoped-link-local.test/", STRICT, "address_not_allowed"),
    ("https://v4-compatible-loopback.test:{port}/", STRICT, "address_not_allowed"),
    ("https://benchmarking.test/", STRICT, "address_not_allowed"),
    ("https://this-network.test/", STRICT, "address_not_allowed"),
    ("https://second-answer-private.test:{port}/", STRICT, "address_not_allowed"),
    ("https://short-form-answer.test:{port}/", EVERYTHING, "dns_failure"),
    ("https://hex-answer.test:{port}/", EVERYTHING, "dns_failure"),
    # userinfo and delimiter tricks
    ("https://127.0.0.1:{port}@public.test/", EVERYTHING, "userinfo_not_allowed"),
    ("https://public.test:443@127.0.0.1:{port}/", EVERYTHING, "userinfo_not_allowed"),
    ("https://1.1.1.1\\@127.0.0.1:{port}/", EVERYTHING, "bad_url"),
    ("https://127.0.0.1:{port}#@public.test/", EVERYTHING, "fragment_not_allowed"),
]

# Behaviour tests below, each one more form (registration and refresh against real servers).
BEHAVIOUR_FORMS = {
    "test_redirect_to_metadata_on_key_refresh_keeps_the_previous_keys": 2,
    "test_protocol_relative_redirect_to_metadata_is_refused": 1,
    "test_slow_drip_discovery_is_cut_at_the_deadline": 1,
    "test_slow_drip_jwks_on_refresh_is_cut_at_the_deadline": 1,
    "test_silent_jwks_on_refresh_is_cut_at_the_deadline": 1,
    "test_oversized_discovery_is_refused_at_registration": 1,
    "test_oversized_jwks_on_refresh_keeps_the_previous_keys": 1,
    "test_jwks_with_a_number_beyond_float_range_is_not_json": 1,
    "test_jwks_uri_in_a_disguise_is_refused": 4,
}


@pytest.fixture(scope="module")
def _count() -> Iterator[None]:
    yield
    in_http, in_registration = len(guard_tests.HOSTILE), len(registration_tests.hostile_urls(1))
    behaviours = sum(BEHAVIOUR_FORMS.values())
    new = len(NEW_FORMS) + behaviours
    record_summary(
        "SSRF forms (issuer URLs and hostile issuer servers)",
        [
            f"{in_http + in_registration + new} forms refused: {in_http} in "
            f"tests/issuers/test_http.py, {in_registration} in "
            f"tests/issuers/test_registration_guard.py, {new} here ({len(NEW_FORMS)} URLs, "
            f"{behaviours} hostile-server behaviours)"
        ],
    )


pytestmark = pytest.mark.usefixtures("_count")


def form_id(url: str) -> str:
    return url.replace("{port}", "P").encode("ascii", "backslashreplace").decode()[:70]


def test_the_new_forms_are_new() -> None:
    existing = {url for url, _, _ in guard_tests.HOSTILE}
    existing |= {url for url, _ in registration_tests.hostile_urls(1)}
    urls = [url.replace(":{port}", "") for url, _, _ in NEW_FORMS]
    assert len(set(urls)) == len(urls)
    assert not existing & set(urls)
    assert len(NEW_FORMS) + sum(BEHAVIOUR_FORMS.values()) >= 25
    assert all(callable(globals().get(name)) for name in BEHAVIOUR_FORMS)


@pytest.mark.parametrize(
    ("url", "policy", "reason"), NEW_FORMS, ids=[form_id(u) for u, _, _ in NEW_FORMS]
)
def test_disguised_address_is_refused_before_connecting(
    url: str,
    policy: OutboundPolicy,
    reason: str,
    server: LocalServer,
    connect_log: list[Any],
) -> None:
    server.routes["/"] = Route(body=b'{"reached": true}')
    target = url.replace("{port}", str(server.port))
    resolver = FakeResolver(DNS)
    error = refused(lambda: fetch_json(target, policy=policy, resolve=resolver))
    assert error.reason == reason, error.message
    assert connect_log == []
    assert server.requests == [] and server.connections == 0
    assert refused(lambda: check_url(target, policy=policy, resolve=resolver)).reason == reason


# --- registration and refresh against hostile servers ----------------------------------------


def local_outbound(timeout: float = 2.0) -> Outbound:
    """The guard as `make run` configures it (http and loopback allowed), with a timeout."""
    return Outbound(
        policy=OutboundPolicy(allow_http=True, allowed_networks=LOOPBACK, timeout=timeout)
    )


def registered(org: Organization, issuer: DevIssuer) -> Issuer:
    return issuer_register(organization=org, url=issuer.url, name="dev", outbound=local_outbound())


def key_kids(issuer: Issuer) -> set[str]:
    return set(
        IssuerKey.objects.filter(issuer=issuer, removed_at__isnull=True).values_list(
            "kid", flat=True
        )
    )


def assert_refresh_refused(
    issuer: Issuer, outbound: Outbound, reason: str, kids_before: set[str]
) -> None:
    """A refresh fails with `reason`, records it, and keeps the previous good key set."""
    fetch = issuer_refresh_keys(issuer=issuer, trigger="manual", outbound=outbound)
    assert fetch is not None and not fetch.ok
    assert fetch.reason == reason, fetch.message
    issuer.refresh_from_db()
    assert issuer.last_error_reason == reason
    assert key_kids(issuer) == kids_before


@pytest.mark.django_db
@pytest.mark.parametrize(
    "location",
    ["http://169.254.169.254/latest/meta-data/iam/", "http://[fd00:ec2::254]/latest/meta-data/"],
)
def test_redirect_to_metadata_on_key_refresh_keeps_the_previous_keys(
    org: Organization, local_issuer: DevIssuer, connect_log: list[Any], location: str
) -> None:
    issuer = registered(org, local_issuer)
    kids = key_kids(issuer)
    local_issuer.canned[JWKS] = CannedResponse(status=302, headers={"Location": location})
    connect_log.clear()
    assert_refresh_refused(issuer, local_outbound(), "redirect_refused", kids)
    assert connect_log == [("127.0.0.1", local_issuer.port)]  # the redirect was not followed
    assert "169.254.169.254" in issuer.last_error or "fd00:ec2::254" in issuer.last_error


@pytest.mark.django_db
def test_protocol_relative_redirect_to_metadata_is_refused(
    org: Organization, local_issuer: DevIssuer, connect_log: list[Any]
) -> None:
    local_issuer.canned[DISCOVERY] = CannedResponse(
        status=301, headers={"Location": "//169.254.169.254/latest/meta-data/"}
    )
    with pytest.raises(IssuerInvalid) as info:
        registered(org, local_issuer)
    assert info.value.reason == "redirect_refused"
    assert {address for address, *_ in connect_log} == {"127.0.0.1"}
    assert not Issuer.objects.exists()


def drip_server(server: LocalServer, path: str, body: bytes) -> None:
    """Serve `body` on `path` one byte every 50 ms: a slowloris-style issuer."""
    server.routes[path] = Route(body=body, drip=0.05)


def assert_cut_at(started: float, timeout: float) -> None:
    elapsed = time.monotonic() - started
    assert timeout * 0.9 <= elapsed < timeout + 1.0, elapsed


@pytest.mark.django_db
def test_slow_drip_discovery_is_cut_at_the_deadline(org: Organization, server: LocalServer) -> None:
    url = f"http://127.0.0.1:{server.port}"
    document = {"issuer": url, "jwks_uri": f"{url}{JWKS}"}
    drip_server(server, DISCOVERY, json.dumps(document).encode())
    started = time.monotonic()
    with pytest.raises(IssuerInvalid) as info:
        issuer_register(organization=org, url=url, outbound=local_outbound(timeout=0.5))
    assert info.value.reason == "timeout"
    assert_cut_at(started, 0.5)
    assert [r.path for r in server.requests] == [DISCOVERY]  # the JWKS was never asked for
    assert not Issuer.objects.exists()


@pytest.mark.django_db
def test_slow_drip_jwks_on_refresh_is_cut_at_the_deadline(
    org: Organization, local_issuer: DevIssuer, server: LocalServer
) -> None:
    issuer = registered(org, local_issuer)
    kids = key_kids(issuer)
    drip_server(server, JWKS, json.dumps(local_issuer.jwks()).encode())
    Issuer.objects.filter(pk=issuer.pk).update(jwks_uri=f"http://127.0.0.1:{server.port}{JWKS}")
    issuer.refresh_from_db()
    started = time.monotonic()
    assert_refresh_refused(issuer, local_outbound(timeout=0.5), "timeout", kids)
    assert_cut_at(started, 0.5)


@pytest.mark.django_db
def test_silent_jwks_on_refresh_is_cut_at_the_deadline(
    org: Organization, local_issuer: DevIssuer
) -> None:
    issuer = registered(org, local_issuer)
    kids = key_kids(issuer)
    local_issuer.canned[JWKS] = CannedResponse(body=b'{"keys": []}', delay=3.0)
    started = time.monotonic()
    assert_refresh_refused(issuer, local_outbound(timeout=0.5), "timeout", kids)
    assert_cut_at(started, 0.5)


@pytest.mark.django_db
def test_oversized_discovery_is_refused_at_registration(
    org: Organization, local_issuer: DevIssuer
) -> None:
    local_issuer.canned[DISCOVERY] = CannedResponse(body=json_body_of_size(DEFAULT_MAX_BYTES + 1))
    with pytest.raises(IssuerInvalid) as info:
        registered(org, local_issuer)
    assert info.value.reason == "too_large"
    assert [r.path for r in local_issuer.requests] == [DISCOVERY]
    assert not Issuer.objects.exists()


@pytest.mark.django_db
def test_oversized_jwks_on_refresh_keeps_the_previous_keys(
    org: Organization, local_issuer: DevIssuer
) -> None:
    issuer = registered(org, local_issuer)
    kids = key_kids(issuer)
    huge = {"keys": [local_issuer.current_key.public_jwk()], "pad": "x" * DEFAULT_MAX_BYTES}
    local_issuer.canned[JWKS] = CannedResponse(body=json.dumps(huge).encode())
    assert_refresh_refused(issuer, local_outbound(), "too_large", kids)


@pytest.mark.django_db
def test_jwks_with_a_number_beyond_float_range_is_not_json(
    org: Organization, local_issuer: DevIssuer
) -> None:
    # 1e999 parses as Infinity, which no JSON column stores: the key would fail to save.
    issuer = registered(org, local_issuer)
    kids = key_kids(issuer)
    jwk = json.dumps({**local_issuer.current_key.public_jwk(), "x-extra": "@"})
    body = '{"keys": [' + jwk.replace('"@"', "1e999") + "]}"
    local_issuer.canned[JWKS] = CannedResponse(body=body.encode())
    assert_refresh_refused(issuer, local_outbound(), "not_json", kids)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("jwks_uri", "reason"),
    [
        ("https://2852039166/keys", "non_canonical_ip"),  # 169.254.169.254 in decimal
        ("https://[::ffff:169.254.169.254]/keys", "non_canonical_ip"),
        ("https://issuer.example@169.254.169.254/keys", "userinfo_not_allowed"),
        ("https://[fd00:ec2::254]/keys", "address_not_allowed"),
    ],
)
def test_jwks_uri_in_a_disguise_is_refused(
    org: Organization, local_issuer: DevIssuer, jwks_uri: str, reason: str
) -> None:
    document = {**local_issuer.discovery(), "jwks_uri": jwks_uri}
    local_issuer.canned[DISCOVERY] = CannedResponse(body=json.dumps(document).encode())
    with pytest.raises(IssuerInvalid) as info:
        registered(org, local_issuer)
    assert info.value.reason == reason, info.value.message
    assert [r.path for r in local_issuer.requests] == [DISCOVERY]
    assert not Issuer.objects.exists()
