"""What the login providers share: argument reading, remote errors and scrubbing (pure)."""

from __future__ import annotations

import contextlib
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from environments.providers.aws import aws_login, parse_xml
from environments.providers.azure import azure_login
from environments.providers.base import IdTokenRequest, OpenContext, Provider, ProviderError
from environments.providers.common import (
    BAD_ANSWER,
    INVALID_ARGUMENTS,
    Answer,
    Arguments,
    expires_in,
    json_answer,
    parse_timestamp,
    remote_error,
    rfc3339,
    scrub,
    show_duration,
)
from environments.providers.endpoints import ProviderEndpoints
from environments.providers.gcp import gcp_login
from environments.providers.vault import vault_login
from kernel.strictjson import check_text

PROVIDERS: dict[str, Provider] = {
    "aws-login": aws_login,
    "gcp-login": gcp_login,
    "azure-login": azure_login,
    "vault-login": vault_login,
}
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLWJ5dGVz"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1h", timedelta(hours=1)),
        ("15m", timedelta(minutes=15)),
        ("1h30m", timedelta(minutes=90)),
        ("2h0m0s", timedelta(hours=2)),
        ("900", timedelta(seconds=900)),
        (900, timedelta(seconds=900)),
        (None, timedelta(hours=2)),
    ],
)
def test_durations_are_go_durations_or_seconds(raw: Any, expected: timedelta) -> None:
    args = Arguments.read("p", {"duration": raw}, allowed=("duration",))
    value = args.duration(
        "duration", default=timedelta(hours=2), minimum=timedelta(0), maximum=timedelta(days=1)
    )
    assert value == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("1d", "p.duration must be a duration such as 1h, 15m or 900 (seconds)"),
        ("-1h", "must be a duration"),
        ("", "must be a duration"),
        ("9" * 400, "must be a duration"),
        (1.5, "p.duration must be a duration such as 1h or 15m, not a number"),
        ([], "not a list"),
        ("25h", "p.duration must be between 15m and 1h"),
        (60, "p.duration must be between 15m and 1h"),
    ],
)
def test_bad_durations_name_the_argument(raw: Any, message: str) -> None:
    args = Arguments.read("p", {"duration": raw}, allowed=("duration",))
    with pytest.raises(ProviderError) as caught:
        args.duration(
            "duration",
            default=timedelta(hours=1),
            minimum=timedelta(minutes=15),
            maximum=timedelta(hours=1),
        )
    assert caught.value.reason == INVALID_ARGUMENTS
    assert message in caught.value.message


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("a\\nb", None),
        ("a\nb", "p.name is too long or contains control characters"),
        ("", "p.name must not be empty"),
        ("x" * 3000, "too long"),
        (True, "p.name must be a string, not a boolean"),
        ({"k": "v"}, "p.name must be a string, not a mapping"),
        (42, None),
    ],
)
def test_strings_refuse_junk(value: Any, message: str | None) -> None:
    args = Arguments.read("p", {"name": value}, allowed=("name",))
    if message is None:
        assert args.string("name") == str(value)
        return
    with pytest.raises(ProviderError) as caught:
        args.string("name")
    assert message in caught.value.message


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"error": "invalid_grant", "error_description": "bad aud"}, "invalid_grant: bad aud"),
        (
            {"error": {"code": 403, "message": "denied", "status": "PERMISSION_DENIED"}},
            "PERMISSION_DENIED: denied",
        ),
        ({"errors": ["permission denied", 7]}, "permission denied"),
        ({"message": "Bad credentials"}, "Bad credentials"),
        ({"error": "invalid_client", "message": "ignored"}, "invalid_client"),
        ({"unrelated": True}, None),
    ],
)
def test_remote_error_shapes(document: dict[str, Any], expected: str | None) -> None:
    assert remote_error(document) == expected


def test_scrub_removes_tokens_control_characters_and_length() -> None:
    text = f"token {JWT} secret hvs.0123456789abcdef\r\nnext line " + "x" * 1000
    shown = scrub(text, secrets=("hvs.0123456789abcdef", "short"))
    assert JWT not in shown and "hvs.0123456789abcdef" not in shown
    assert shown.startswith("token [redacted] secret [redacted] next line x")
    assert len(shown) <= 403 and shown.endswith("...")


def test_a_refusal_message_never_shows_the_token() -> None:
    answer = Answer(
        service="Example",
        status=400,
        headers={"content-type": "application/json"},
        body=f'{{"error": "invalid_request", "error_description": "bad {JWT}"}}'.encode(),
    )
    with pytest.raises(ProviderError) as caught:
        json_answer(answer)
    assert caught.value.message == (
        "Example refused the request (HTTP 400): invalid_request: bad [redacted]"
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-01-02T03:04:05Z", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2026-01-02T03:04:05.123456789Z", datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)),
        ("2026-01-02T04:04:05+01:00", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
    ],
)
def test_timestamps_from_answers(raw: str, expected: datetime) -> None:
    assert parse_timestamp(raw, service="S") == expected


@pytest.mark.parametrize("raw", ["2026-01-02T03:04:05", "tomorrow", 1767322245, None])
def test_timestamps_without_a_zone_are_refused(raw: Any) -> None:
    with pytest.raises(ProviderError, match="S's answer has no valid expiry time"):
        parse_timestamp(raw, service="S")


def test_formatting_helpers() -> None:
    assert [show_duration(timedelta(seconds=s)) for s in (7200, 900, 90)] == ["2h", "15m", "90s"]
    assert rfc3339(datetime(2026, 1, 2, 4, 4, 5, tzinfo=UTC)) == "2026-01-02T04:04:05Z"


def test_a_malformed_value_is_not_repeated_in_the_message() -> None:
    """Arguments may come from `fn::secret`, and refusal messages are recorded."""
    args = Arguments.read("p", {"role": "hunter2 is my password"}, allowed=("role",))
    with pytest.raises(ProviderError) as caught:
        args.string("role", pattern=re.compile(r"\w+"), hint="a role name")
    assert caught.value.message == "p.role must be a role name"


class Minted(Exception):
    """Raised by the test minter: the arguments were accepted."""


def _refusing_context() -> OpenContext:
    def mint(request: IdTokenRequest) -> str:
        raise Minted

    def post(url: str, **kwargs: Any) -> tuple[int, dict[str, str], bytes]:
        raise AssertionError("nothing is posted before minting")

    return OpenContext(
        organization="acme",
        project="app",
        environment="dev",
        root_project="app",
        root_environment="dev",
        actor="alice",
        exchange_event_id=None,
        id_token=mint,
        post=post,
        now=lambda: datetime.now(UTC),
        endpoints=ProviderEndpoints(),
    )


_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
_KEYS = st.sampled_from(
    [
        "oidc",
        "jwt",
        "roleArn",
        "sessionName",
        "duration",
        "policyArns",
        "region",
        "endpoint",
        "project",
        "workloadPoolId",
        "providerId",
        "serviceAccount",
        "tokenLifetime",
        "clientId",
        "tenantId",
        "subscriptionId",
        "authorityHost",
        "scope",
        "address",
        "namespace",
        "role",
        "mount",
        "subjectAttributes",
        "static",
    ]
) | st.text(max_size=10)
_VALUES = st.recursive(
    _SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_KEYS, children, max_size=6),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(provider=st.sampled_from(sorted(PROVIDERS)), arguments=_VALUES)
def test_any_arguments_are_refused_cleanly_or_accepted(provider: str, arguments: Any) -> None:
    """Whatever a definition holds, a provider answers with a ProviderError or mints."""
    with contextlib.suppress(ProviderError, Minted):
        PROVIDERS[provider](_refusing_context(), arguments)


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_parse_xml_only_raises_value_error(body: bytes) -> None:
    with contextlib.suppress(ValueError):
        parse_xml(b"<r>" + body + b"</r>")


@settings(max_examples=300, deadline=None)
@given(status=st.integers(100, 599), body=_VALUES.map(lambda v: json.dumps(v).encode()))
def test_any_json_answer_is_data_or_a_provider_error(status: int, body: bytes) -> None:
    answer = Answer("S", status, {"content-type": "application/json"}, body)
    storable = True
    try:
        check_text(json.loads(body))  # NUL and lone surrogates are refused (JSON columns)
    except ValueError:
        storable = False
    if 200 <= status < 300 and body.startswith(b"{") and storable:
        assert isinstance(json_answer(answer), dict)
        return
    with pytest.raises(ProviderError, match=r"^S "):
        json_answer(answer)


@pytest.mark.parametrize("text", ["a\x00b", "\ud800"])
def test_an_answer_with_unstorable_text_is_refused(text: str) -> None:
    body = json.dumps({"token": text}).encode()
    with pytest.raises(ProviderError, match="not JSON"):
        json_answer(Answer("S", 200, {"content-type": "application/json"}, body))


class _Clock:
    @staticmethod
    def now() -> datetime:
        return datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "value", ["\u00b2", "\uff11\uff12", "-1", 10**20, -5, True, 1.5, None, "soon"]
)
def test_an_unusable_expires_in_is_a_bad_answer_not_a_crash(value: Any) -> None:
    context: Any = _Clock()
    with pytest.raises(ProviderError) as raised:
        expires_in(context, value, service="STS")
    assert raised.value.reason == BAD_ANSWER


def test_expires_in_as_digits_is_seconds_from_now() -> None:
    context: Any = _Clock()
    assert expires_in(context, "3600", service="STS") == datetime(2026, 1, 1, 1, tzinfo=UTC)
