"""`fn::open::aws-login`: end to end against moto's STS, and STS's checks against `FakeSts`."""

from __future__ import annotations

import functools
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
import pytest

from devtools.issuer import SigningKey
from environments.providers.aws import aws_login, parse_xml, sts_endpoint
from environments.providers.base import ProviderError
from environments.providers.common import (
    BAD_ANSWER,
    ENDPOINT_NOT_ALLOWED,
    INVALID_ARGUMENTS,
    REFUSED,
    UNREACHABLE,
)
from outbound.client import post as guarded_post
from tests.environments.cloud_servers import (
    LOCAL,
    FakeSts,
    Portal,
    Reply,
    closed_port_url,
    listen,
    subject,
)

ROLE = "arn:aws:iam::123456789012:role/deploy"
TRUST_POLICY = """{"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
 "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/portal.example.com/oidc"},
 "Action": "sts:AssumeRoleWithWebIdentity"}]}"""


@pytest.fixture
def portal(_issuer_key: SigningKey) -> Iterator[Portal]:
    with Portal(_issuer_key) as running:
        yield running


@pytest.fixture
def sts(portal: Portal) -> Iterator[FakeSts]:
    with FakeSts(portal, trust={ROLE: ("aws:acme", subject())}) as running:
        yield running


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    """moto's server mode (real STS, IAM and S3 APIs) on a free loopback port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    executable = Path(sys.executable).with_name("moto_server")
    environment = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "x"}
    process = subprocess.Popen(
        [str(executable), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=environment,
    )
    url = listen(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def client(service: str, url: str, **keys: str) -> Any:
    """A boto3 client for moto at `url`, with the given keys (or moto's dummy ones)."""
    keys = keys or {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    return boto3.client(service, endpoint_url=url, region_name="us-east-1", **keys)


def arguments(endpoint: str, **oidc: Any) -> dict[str, Any]:
    return {
        "oidc": {"roleArn": ROLE, "sessionName": "portal-deploy", **oidc},
        "endpoint": endpoint,
    }


def refused(call: Any) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        call()
    return caught.value


def test_credentials_from_moto_sts_work_with_boto3(portal: Portal, moto_url: str) -> None:
    """End to end with a real STS implementation: assume the role, then use the keys.

    moto does not verify the web identity token (no signature, issuer or audience check), so
    this proves the wire format and that the returned keys work; `FakeSts` below proves the
    token is one STS would accept.
    """
    client("iam", moto_url).create_role(RoleName="deploy", AssumeRolePolicyDocument=TRUST_POLICY)

    credentials = aws_login(portal.context(), arguments(moto_url, duration="1h"))

    keys = credentials.values
    assert set(keys) == {"accessKeyId", "secretAccessKey", "sessionToken"}
    session = {
        "aws_access_key_id": keys["accessKeyId"],
        "aws_secret_access_key": keys["secretAccessKey"],
        "aws_session_token": keys["sessionToken"],
    }
    identity = client("sts", moto_url, **session).get_caller_identity()
    assert identity["Arn"] == "arn:aws:sts::123456789012:assumed-role/deploy/portal-deploy"
    s3 = client("s3", moto_url, **session)
    s3.create_bucket(Bucket="portal-artifacts")
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["portal-artifacts"]

    assert credentials.role == ROLE
    assert credentials.details["assumedRoleArn"] == identity["Arn"]
    assert credentials.expires_at is not None
    expected = datetime.now(UTC) + timedelta(hours=1)
    assert abs(credentials.expires_at - expected) < timedelta(seconds=30)


def test_the_request_is_stss_and_the_token_is_one_sts_trusts(portal: Portal, sts: FakeSts) -> None:
    policies = ["arn:aws:iam::aws:policy/ReadOnlyAccess", "arn:aws:iam::123456789012:policy/x"]
    credentials = aws_login(portal.context(), arguments(sts.url, policyArns=policies))

    assert credentials.values["accessKeyId"].startswith("ASIA")
    (form,) = sts.forms
    assert form == {
        "Action": "AssumeRoleWithWebIdentity",
        "Version": "2011-06-15",
        "RoleArn": ROLE,
        "RoleSessionName": "portal-deploy",
        "WebIdentityToken": portal.tokens[0],
        "DurationSeconds": "7200",  # Pulumi's documented default of 2 hours
        "PolicyArns.member.1.arn": policies[0],
        "PolicyArns.member.2.arn": policies[1],
    }
    assert [r.audience for r in portal.minted] == ["aws:acme"]
    assert credentials.details["policyArns"] == policies


@pytest.mark.parametrize(
    ("trust", "status", "message"),
    [
        (("sts.amazonaws.com", subject()), 400, "InvalidIdentityToken: Incorrect token: invalid"),
        (("aws:acme", subject("acme", "app/prod")), 403, "AccessDenied: Not authorized"),
    ],
    ids=["wrong audience", "untrusted subject"],
)
def test_sts_refusals_carry_the_xml_error(
    portal: Portal, trust: tuple[str, str], status: int, message: str
) -> None:
    with FakeSts(portal, trust={ROLE: trust}) as sts:
        error = refused(lambda: aws_login(portal.context(), arguments(sts.url)))
    assert error.reason == REFUSED
    assert error.message.startswith(f"AWS STS refused the request (HTTP {status}): {message}")
    assert portal.tokens[0] not in error.message


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<AssumeRoleWithWebIdentityResponse>&lol2;</AssumeRoleWithWebIdentityResponse>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><r>&xxe;</r>"""


@pytest.mark.parametrize(
    ("reply", "reason", "message"),
    [
        (Reply(200, BILLION_LAUGHS, "text/xml"), BAD_ANSWER, "declares a DTD or entities"),
        (Reply(200, EXTERNAL_ENTITY, "text/xml"), BAD_ANSWER, "declares a DTD or entities"),
        (Reply(200, b"<a>" * 40 + b"</a>" * 40, "text/xml"), BAD_ANSWER, "nested too deeply"),
        (Reply(200, "<r>é</r>".encode("latin-1"), "text/xml"), BAD_ANSWER, "not UTF-8"),
        (Reply(200, b"<r><unclosed></r>", "text/xml"), BAD_ANSWER, "malformed"),
        (Reply(200, b"<Other/>", "text/xml"), BAD_ANSWER, "no AssumeRoleWithWebIdentityResult"),
        (Reply(503, b"<html>down", "text/html"), REFUSED, "refused the request (HTTP 503)"),
        (Reply(200, b"<a/>" * 100_000, "text/xml"), BAD_ANSWER, "the limit is 262144 bytes"),
    ],
    ids=[
        "entity expansion",
        "external entity",
        "deep",
        "latin-1",
        "malformed",
        "other",
        "503",
        "big",
    ],
)
def test_hostile_or_broken_answers_are_refused(
    portal: Portal, sts: FakeSts, reply: Reply, reason: str, message: str
) -> None:
    sts.canned["/"] = reply
    error = refused(lambda: aws_login(portal.context(), arguments(sts.url)))
    assert (error.reason, message in error.message) == (reason, True), error.message
    assert "/etc/passwd" not in error.message and "root:" not in error.message


def test_an_answer_without_expiration_is_refused(portal: Portal, sts: FakeSts) -> None:
    body = (
        b"<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>"
        b"<AccessKeyId>A</AccessKeyId><SecretAccessKey>S</SecretAccessKey>"
        b"<SessionToken>T</SessionToken></Credentials></AssumeRoleWithWebIdentityResult>"
        b"</AssumeRoleWithWebIdentityResponse>"
    )
    sts.canned["/"] = Reply(200, body, "text/xml")
    error = refused(lambda: aws_login(portal.context(), arguments(sts.url)))
    assert error.message == "AWS STS's answer has no Expiration"


def test_parse_xml_drops_namespaces_and_keeps_text() -> None:
    document = parse_xml(b'<a xmlns="urn:x"><b>one</b><c:d xmlns:c="urn:y">two</c:d></a>')
    assert (document.tag, document.findtext("b"), document.findtext("d")) == ("a", "one", "two")


def test_server_down_is_a_clear_error(portal: Portal) -> None:
    url = closed_port_url()
    error = refused(lambda: aws_login(portal.context(), arguments(url)))
    assert error.reason == UNREACHABLE
    assert error.message.startswith(f"could not reach AWS STS at {url}/: could not connect")


def test_an_endpoint_not_listed_is_refused_before_minting(portal: Portal, sts: FakeSts) -> None:
    context = portal.context(endpoints="")
    error = refused(lambda: aws_login(context, arguments(sts.url)))
    assert error.reason == ENDPOINT_NOT_ALLOWED
    assert error.message == (
        f"aws-login.endpoint: {sts.url} is not an official AWS STS endpoint and not in the "
        "portal's list of provider endpoints (TRUSTPORTAL_PROVIDER_ENDPOINTS); ask the "
        "portal's operator to add it"
    )
    assert sts.requests == [] and portal.minted == []


@pytest.mark.parametrize(
    ("region", "endpoint"),
    [
        (None, "https://sts.amazonaws.com"),
        ("eu-west-1", "https://sts.eu-west-1.amazonaws.com"),
        ("us-gov-west-1", "https://sts.us-gov-west-1.amazonaws.com"),
        ("cn-north-1", "https://sts.cn-north-1.amazonaws.com.cn"),
    ],
)
def test_the_region_chooses_the_sts_endpoint(
    portal: Portal, region: str | None, endpoint: str
) -> None:
    assert sts_endpoint(region) == endpoint
    # Through the provider: every name resolves to a closed loopback port, so the error shows
    # the URL it really tried, without any network access.
    post = functools.partial(guarded_post, policy=LOCAL, resolve=lambda host, port: ["127.0.0.1"])
    context = portal.context()
    context = type(context)(**{**context.__dict__, "post": post})
    args: dict[str, Any] = {"oidc": {"roleArn": ROLE, "sessionName": "s1"}}
    if region:
        args["region"] = region
    error = refused(lambda: aws_login(context, args))
    assert error.message.startswith(f"could not reach AWS STS at {endpoint}/: ")


@pytest.mark.parametrize(
    ("arguments_", "message"),
    [
        ({}, "aws-login.oidc is required"),
        ({"static": {"accessKeyId": "AKIA"}}, "aws-login.static is not supported"),
        ({"oidc": {"sessionName": "s1"}}, "aws-login.oidc.roleArn is required"),
        ({"oidc": {"roleArn": "deploy", "sessionName": "s1"}}, "must be an IAM role ARN"),
        ({"oidc": {"roleArn": ROLE}}, "aws-login.oidc.sessionName is required"),
        ({"oidc": {"roleArn": ROLE, "sessionName": "a b"}}, "2 to 64 letters"),
        ({"oidc": {"roleArn": ROLE, "sessionName": "s1", "duration": "5m"}}, "between 15m and 12h"),
        ({"oidc": {"roleArn": ROLE, "sessionName": "s1", "duration": True}}, "a boolean"),
        ({"oidc": {"roleArn": ROLE, "sessionName": "s1", "policyArns": [ROLE]}}, "policy ARN"),
        (
            {"oidc": {"roleArn": ROLE, "sessionName": "s1", "policyArns": ["x"] * 11}},
            "at most 10 allowed",
        ),
        ({"oidc": {"roleArn": ROLE, "sessionName": "s1"}, "region": "Europe"}, "an AWS region"),
        ({"oidc": {"roleArn": ROLE, "sessionName": "s1"}, "endpoint": "sts.local"}, "https://"),
        (
            {"oidc": {"roleArn": ROLE, "sessionName": "s1", "roleARN": ROLE}},
            "'roleARN' is not a known argument",
        ),
    ],
)
def test_bad_arguments_are_refused_before_minting(
    portal: Portal, arguments_: dict[str, Any], message: str
) -> None:
    error = refused(lambda: aws_login(portal.context(), arguments_))
    assert error.reason == INVALID_ARGUMENTS
    assert message in error.message
    assert portal.minted == []
