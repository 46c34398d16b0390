"""Property-based fuzzing of the untrusted-input parsers, bounded so it runs in `make test`.

- The exchange request parser (`read_body` + `parse_request`) over arbitrary bytes, JSON and
  form bodies and content types: it returns an `ExchangeRequest` or raises one of the token
  endpoint's own `OAuthError`s, never anything else; what it returns is well-formed and
  storable.
- Subject-token decoding (`decode_unverified` + `check_header`): an `UnverifiedToken` or an
  `InvalidRequest`.
- The environment evaluator (`parse` + `evaluate`) over arbitrary text and over structured YAML
  (imports, interpolations, secrets, provider calls, anchors): diagnostics, never an exception,
  and an evaluated value within the evaluator's limits.
"""

from __future__ import annotations

import base64
import functools
import json
import string
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urlencode

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from environments.evaluator import Evaluation, OpenCall, OpenFailed, Source, evaluate
from environments.parser import parse
from environments.syntax import MAX_VALUE_DEPTH, MAX_WEIGHT, Diagnostic, Value
from exchange.request import (
    GRANT_TYPE,
    MAX_FIELD_CHARS,
    REQUESTED_PREFIX,
    SUBJECT_TOKEN_TYPES,
    TOKEN_TYPES,
    ExchangeRequest,
    parse_request,
    read_body,
)
from exchange.verification import UnverifiedToken, check_header, decode_unverified
from kernel.secretbox import DecryptFailed
from kernel.strictjson import check_text
from tests.security.reporting import record_summary
from tokens.errors import InvalidRequest, OAuthError

EXAMPLES = 200
BOMB_EXAMPLES = 40  # each one parses up to the 10,000-node limit
# Text PostgreSQL cannot store (NUL, lone surrogates) drawn often, not left to chance: every
# string the parsers return must be storable (`check_text`) however hostile the input.
UNSTORABLE = st.sampled_from(["\x00", "a\x00b", "\ud800", "x\udfff", "\udc80\ud800"])


def texts(max_size: int) -> st.SearchStrategy[str]:
    """Any text, including NUL and lone surrogates (hypothesis leaves surrogates out)."""
    return st.one_of(
        st.text(max_size=max_size),
        st.text(st.characters(exclude_categories=()), max_size=max_size),
        st.tuples(st.text(max_size=max_size), UNSTORABLE).map("".join),
    )


FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PREFIX = "urn:pulumi:org:"
EXAMPLES_RUN: Counter[str] = Counter()  # per property, every example hypothesis ran


def counted(test: Callable[..., None]) -> Callable[..., None]:
    """Count the examples a property runs (for the run's summary)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        EXAMPLES_RUN[test.__name__] += 1
        test(*args, **kwargs)

    return run


@pytest.fixture(scope="module", autouse=True)
def _count() -> Iterator[None]:
    yield
    record_summary(
        "Hypothesis fuzzing",
        [
            f"{len(EXAMPLES_RUN)} properties, {sum(EXAMPLES_RUN.values())} examples run "
            f"(max_examples {EXAMPLES}; alias bombs {BOMB_EXAMPLES})",
            *(f"{name}: {n}" for name, n in sorted(EXAMPLES_RUN.items())),
        ],
    )


# --- the exchange request -----------------------------------------------------------------------

CONTENT_TYPES = st.one_of(
    st.sampled_from(
        [
            "application/json",
            "application/json; charset=utf-8",
            "APPLICATION/JSON",
            "application/x-www-form-urlencoded",
            "application/x-www-form-urlencoded; charset=latin-1",
            "",
            "text/plain",
            "multipart/form-data; boundary=x",
            ";",
        ]
    ),
    texts(max_size=40),
)

FIELDS = [
    "grant_type",
    "audience",
    "subject_token",
    "subject_token_type",
    "requested_token_type",
    "scope",
    "expiration",
]

# Plausible values per field, so the parser's deeper branches are reached too.
PLAUSIBLE = {
    "grant_type": st.sampled_from([GRANT_TYPE, GRANT_TYPE, GRANT_TYPE, "client_credentials", ""]),
    "audience": st.one_of(
        st.sampled_from([PREFIX + "acme"] * 4 + [PREFIX, PREFIX + "a/b", "acme"]),
        texts(max_size=30).map(lambda s: PREFIX + s),
    ),
    "subject_token": st.sampled_from(["a.b.c", "", "eyJ.eyJ.sig"]),
    "subject_token_type": st.sampled_from([*sorted(SUBJECT_TOKEN_TYPES), "urn:x"]),
    "requested_token_type": st.sampled_from(
        [REQUESTED_PREFIX + t for t in (*TOKEN_TYPES, "organization")]
        + [REQUESTED_PREFIX, "", "urn:x"]
    ),
    "scope": st.sampled_from(
        ["", "", "admin", " admin ", "team:", "team:platform", "user:octocat", "runner:r1", "x"]
    ),
    "expiration": st.one_of(
        st.sampled_from(["", "7200", "1e3", "-1", "0", "NaN", "inf", "1.5", " 60 ", "9" * 400]),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
    ),
}

JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), texts(max_size=50)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(texts(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def exchange_objects(draw: st.DrawFn) -> dict[str, Any]:
    """A plausible exchange body with a few fields replaced by anything, dropped, or added."""
    document: dict[str, Any] = {name: draw(PLAUSIBLE[name]) for name in FIELDS}
    mutation = draw(st.sampled_from(["none", "none", "replace", "drop", "add"]))
    name = draw(st.sampled_from(FIELDS))
    if mutation == "replace":
        document[name] = draw(JSON_VALUES)
    elif mutation == "drop":
        document.pop(name)
    elif mutation == "add":
        document[draw(texts(max_size=10))] = draw(JSON_VALUES)
    return document


def assert_well_formed(request: ExchangeRequest) -> None:
    """What a returned request guarantees to the rest of the exchange."""
    assert request.audience == PREFIX + request.organization
    assert request.organization and "/" not in request.organization
    assert request.subject_token
    assert request.subject_token_type in SUBJECT_TOKEN_TYPES
    assert request.token_type in TOKEN_TYPES
    assert request.requested_token_type == REQUESTED_PREFIX + request.token_type
    assert request.expiration is None or 0 < request.expiration <= 10**9
    assert len(request.scope) <= MAX_FIELD_CHARS
    check_text([request.audience, request.subject_token, request.scope])  # storable text


def parse_exchange(body: bytes, content_type: str) -> ExchangeRequest | OAuthError:
    """The parser's two steps as the exchange runs them; anything but OAuthError escapes."""
    try:
        raw = read_body(body, content_type)
        request = parse_request(raw, audience_prefix=PREFIX)
    except OAuthError as error:
        refusal = error
    else:
        assert_well_formed(request)
        return request
    assert refusal.reason and refusal.status in (400, 429), refusal
    return refusal


@FUZZ
@given(body=st.binary(max_size=2048), content_type=CONTENT_TYPES)
@counted
def test_request_parser_on_arbitrary_bytes(body: bytes, content_type: str) -> None:
    parse_exchange(body, content_type)


VALID = {
    "grant_type": GRANT_TYPE,
    "audience": PREFIX + "acme",
    "subject_token": "a.b.c",
    "subject_token_type": sorted(SUBJECT_TOKEN_TYPES)[0],
    "requested_token_type": REQUESTED_PREFIX + "team",
    "scope": "team:platform",
    "expiration": 600,
}


@FUZZ
@example(document=VALID, ensure_ascii=False, content_type="application/json")
@given(
    document=st.one_of(exchange_objects(), JSON_VALUES),
    ensure_ascii=st.booleans(),
    content_type=st.sampled_from(["application/json", "application/json; charset=utf-8"]),
)
@counted
def test_request_parser_on_json_bodies(
    document: Any, ensure_ascii: bool, content_type: str
) -> None:
    body = json.dumps(document, ensure_ascii=ensure_ascii).encode("utf-8", "surrogatepass")
    result = parse_exchange(body, content_type)
    if document == VALID:
        assert result == ExchangeRequest(
            audience=PREFIX + "acme",
            organization="acme",
            subject_token="a.b.c",
            subject_token_type=VALID["subject_token_type"],
            requested_token_type=REQUESTED_PREFIX + "team",
            token_type="team",
            scope="team:platform",
            scope_name="platform",
            expiration=600,
        )
    if isinstance(result, ExchangeRequest):
        assert isinstance(document, dict)
        assert result.subject_token == document["subject_token"]


FORM_PAIRS = st.lists(
    st.one_of(
        st.sampled_from(FIELDS).flatmap(
            lambda name: st.tuples(st.just(name), PLAUSIBLE[name].map(str))
        ),
        st.tuples(texts(max_size=10), texts(max_size=30)),
    ),
    max_size=10,
)


@FUZZ
@given(
    pairs=FORM_PAIRS,
    content_type=st.sampled_from(["application/x-www-form-urlencoded", ""]),
    raw_suffix=st.sampled_from(["", "&", "&&=", "%", "%zz", "&a", "=x"]),
)
@counted
def test_request_parser_on_form_bodies(
    pairs: list[tuple[str, str]], content_type: str, raw_suffix: str
) -> None:
    body = (urlencode(pairs, encoding="utf-8", errors="surrogatepass") + raw_suffix).encode()
    result = parse_exchange(body, content_type)
    if isinstance(result, ExchangeRequest):
        assert len({name for name, _ in pairs}) == len([name for name, _ in pairs])


# --- the subject token --------------------------------------------------------------------------

B64_SEGMENT = st.text(alphabet=string.ascii_letters + string.digits + "-_=+/.", max_size=60)
HEADERS = st.dictionaries(
    st.sampled_from(["alg", "kid", "crit", "b64", "cty", "typ", "jku", "x"]),
    st.one_of(
        st.sampled_from(["RS256", "ES256", "none", "HS256", "test-key-1", "JWT"]), JSON_VALUES
    ),
    max_size=6,
)


HEADER_REASONS = {
    "alg_not_allowed",
    "crit_not_supported",
    "b64_not_supported",
    "nested_jwt",
    "missing_kid",
    "bad_kid",
}


def segment_of(document: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")


@FUZZ
@given(
    token=st.one_of(
        texts(max_size=200),
        st.lists(B64_SEGMENT, min_size=1, max_size=6).map(".".join),
        st.tuples(HEADERS, JSON_VALUES).map(
            lambda parts: f"{segment_of(parts[0])}.{segment_of(parts[1])}.c2ln"
        ),
    )
)
@counted
def test_subject_token_decoding(token: str) -> None:
    try:
        unverified = decode_unverified(token)
    except InvalidRequest as error:
        refusal: InvalidRequest | None = error
    else:
        refusal = None
    if refusal is not None:
        assert refusal.reason in {"token_too_large", "jwe_not_supported", "malformed_token"}
        return
    assert isinstance(unverified, UnverifiedToken)
    assert isinstance(unverified.header, dict) and isinstance(unverified.claims, dict)
    try:
        alg, kid = check_header(unverified.header)
    except InvalidRequest as error:
        refusal = error
    if refusal is not None:
        assert refusal.reason in HEADER_REASONS
        return
    assert alg != "none" and not alg.startswith("HS")
    assert isinstance(kid, str) and 0 < len(kid) <= 128


# --- the environment evaluator ------------------------------------------------------------------

SECRET = "hunter2-secret-plaintext"
NAME = "p/env"
OTHERS = ("p/base", "p/other")


def decrypt(ciphertext: str) -> str:
    if not ciphertext.startswith("enc:"):
        raise DecryptFailed("not a ciphertext of this environment")
    return ciphertext[4:]


def opener(call: OpenCall) -> Mapping[str, Any]:
    if call.provider == "fail":
        raise OpenFailed("the provider refused")
    return {"token": SECRET, "provider": call.provider, "nested": {"list": [1, 2.5, None]}}


PATHS = st.sampled_from(
    ["a", "a.b", "b[0]", 'c["x.y"]', "app.name", "values", "a[99]", "", "a..b", "x[", "a.b.c"]
)
KEYS = st.one_of(
    st.sampled_from(
        [
            "a",
            "b",
            "c",
            "app",
            "name",
            "x.y",
            "fn::secret",
            "fn::open::aws",
            "fn::open::fail",
            "fn::open::BAD",
            "fn::other",
            "imports",
            "<<",
            "${a}",
            "ciphertext",
        ]
    ),
    texts(max_size=6),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    texts(max_size=20),
    PATHS.map(lambda path: "${" + path + "}"),
    st.tuples(st.text(max_size=5), PATHS).map(lambda p: f"{p[0]}${{{p[1]}}}-$${{{p[1]}}}"),
    st.sampled_from(["${", "$${", "${a", "}", "${${a}}", "2001-01-01", "0x1F", "0o17", "1_000"]),
)
SECRETS = st.sampled_from(
    [
        {"fn::secret": SECRET},
        {"fn::secret": {"ciphertext": "enc:" + SECRET}},
        {"fn::secret": {"ciphertext": "garbage"}},
        {"fn::secret": [SECRET]},
    ]
)
OPENS = st.tuples(st.sampled_from(["aws", "fail", "Bad_Name", ""]), SCALARS).map(
    lambda p: {"fn::open::" + p[0]: {"login": p[1], "secret": {"fn::secret": SECRET}}}
)
TREES = st.recursive(
    st.one_of(SCALARS, SECRETS, OPENS),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=25,
)
IMPORTS = st.lists(
    st.one_of(st.sampled_from([*OTHERS, NAME, "base", "missing", "bad name!", ""]), SCALARS),
    max_size=4,
)


@st.composite
def definitions(draw: st.DrawFn) -> str:
    """A definition as YAML text: imports, values (sharing subtrees, so anchors and aliases)."""
    values = draw(st.dictionaries(KEYS, TREES, max_size=5))
    shared = draw(TREES)
    if draw(st.booleans()):
        values["shared"] = shared
        values["again"] = [shared, {"twice": shared}]  # dumped as an anchor and two aliases
    document: dict[str, Any] = {"values": values}
    if draw(st.booleans()):
        document["imports"] = draw(IMPORTS)
    if draw(st.booleans()):
        document[draw(KEYS)] = draw(TREES)
    return yaml.safe_dump(document, allow_unicode=draw(st.booleans()), sort_keys=False)


@st.composite
def alias_bombs(draw: st.DrawFn) -> str:
    """Nested aliases that expand exponentially ("billion laughs"), sized by the strategy."""
    fan_out = draw(st.integers(min_value=1, max_value=12))
    levels = draw(st.integers(min_value=1, max_value=9))
    lines = ["values:", "  l0: &l0 " + json.dumps(["lol"] * fan_out)]
    for level in range(1, levels + 1):
        refs = ", ".join([f"*l{level - 1}"] * fan_out)
        lines.append(f"  l{level}: &l{level} [{refs}]")
    lines.append(f'  top: "${{l{levels}}}"')  # a whole reference: the list itself
    lines.append(f'  text: "x-${{l{levels}{"[0]" * (levels + 1)}}}"')  # down to one "lol"
    return "\n".join(lines) + "\n"


def leaves(value: Value) -> list[Any]:
    inner = value.value
    if isinstance(inner, dict):
        return [leaf for child in inner.values() for leaf in leaves(child)]
    if isinstance(inner, list):
        return [leaf for child in inner for leaf in leaves(child)]
    return [inner]


def assert_evaluates_within_limits(
    text: str, others: Mapping[str, str] | None = None, *, with_open: bool = True
) -> Evaluation:
    """parse and evaluate never raise; a result respects every limit and hides its secrets."""
    sources = dict(others or {})
    definition = parse(text, NAME)
    assert all(isinstance(d, Diagnostic) and d.summary for d in definition.diagnostics)

    def load(name: str) -> Source | str:
        if name not in sources:
            return "environment not found"
        return Source(name, sources[name], decrypt, opener if with_open else None)

    result = evaluate(
        Source(NAME, text, decrypt, opener if with_open else None),
        load,
        providers={"aws", "fail"} if with_open else None,
    )
    assert isinstance(result, Evaluation)
    assert all(isinstance(d, Diagnostic) and d.summary for d in result.diagnostics)
    for diagnostic in result.diagnostics:
        json.dumps(diagnostic.to_wire(), allow_nan=False)
        assert SECRET not in json.dumps(diagnostic.to_wire())
    if result.value is None:
        return result
    value = result.value
    assert value.weight <= MAX_WEIGHT and value.depth <= MAX_VALUE_DEPTH
    longest_input = max([len(text), *(len(t) for t in sources.values())])
    for leaf in leaves(value):
        assert not isinstance(leaf, str) or len(leaf) <= max(64 * 1024, longest_input)
    shown = json.dumps(value.to_wire(reveal=False), allow_nan=False)
    plain = json.dumps(value.plain(reveal=False), allow_nan=False)
    assert SECRET not in shown and SECRET not in plain
    return result


@FUZZ
@given(text=texts(max_size=400))
@counted
def test_evaluator_on_arbitrary_text(text: str) -> None:
    assert_evaluates_within_limits(text)


YAMLISH = st.lists(
    st.sampled_from(
        [
            "values:",
            "imports:",
            "  - ",
            "  a: ",
            "&x ",
            "*x",
            "<<: ",
            "{",
            "}",
            "[",
            "]",
            ", ",
            "${a}",
            "fn::secret: ",
            "fn::open::aws: ",
            "!!python/object:os.system ",
            "!!binary ",
            "? ",
            ": ",
            "- ",
            "\n",
            "\t",
            "'",
            '"',
            "#",
            "---\n",
            "...\n",
            "%YAML 1.1\n",
            "!custom ",
            "2001-01-01",
            ".inf",
            ".nan",
            "0x",
            "~",
            "\ud7ff",
            "\ufeff",
        ]
    ),
    max_size=40,
).map("".join)


@FUZZ
@given(text=YAMLISH)
@counted
def test_evaluator_on_yaml_shaped_text(text: str) -> None:
    assert_evaluates_within_limits(text)


@FUZZ
@given(
    text=definitions(),
    others=st.fixed_dictionaries({}, optional={name: definitions() for name in OTHERS}),
    with_open=st.booleans(),
)
@counted
def test_evaluator_on_structured_definitions(
    text: str, others: dict[str, str], with_open: bool
) -> None:
    assert_evaluates_within_limits(text, others, with_open=with_open)


@settings(max_examples=BOMB_EXAMPLES, deadline=None)
@given(text=alias_bombs())
@counted
def test_evaluator_on_alias_bombs(text: str) -> None:
    result = assert_evaluates_within_limits(text)
    if result.value is not None:
        assert result.value.weight <= MAX_WEIGHT
