"""Tests for policies.matching: patterns, claim paths, claim values and policy evaluation."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.matching import Evaluation, Grant, TokenRequest, VerifiedClaims, compile_policy
from policies.patterns import (
    ClaimPathError,
    PatternError,
    PolicyError,
    Wildcard,
    claim_values,
    compile_pattern,
    parse_claim_path,
)
from policies.samples import SAMPLES_DIR


def _claims_dir() -> Path:
    # The platforms' claim sets ship with the package (the simulator offers them as samples).
    return SAMPLES_DIR


def load_claims(name: str) -> VerifiedClaims:
    return VerifiedClaims(json.loads((_claims_dir() / f"{name}.json").read_text()))


ORG = TokenRequest("organization", None)
ORG_ADMIN = TokenRequest("organization", "admin")


def allow(rules: Mapping[str, Any], **fields: Any) -> dict[str, Any]:
    """An allow definition; organization/admin unless fields say otherwise."""
    definition: dict[str, Any] = {
        "decision": "allow",
        "tokenType": "organization",
        "authorizedPermissions": ["admin"],
        "rules": dict(rules),
    }
    definition.update(fields)
    return {k: v for k, v in definition.items() if v is not None}


def deny(rules: Mapping[str, Any], **fields: Any) -> dict[str, Any]:
    return allow(rules, decision="deny", **fields)


def team(rules: Mapping[str, Any], name: str, decision: str = "allow") -> dict[str, Any]:
    return allow(
        rules, decision=decision, tokenType="team", teamName=name, authorizedPermissions=None
    )


def personal(rules: Mapping[str, Any], login: str) -> dict[str, Any]:
    return allow(rules, tokenType="personal", userLogin=login, authorizedPermissions=None)


def runner(rules: Mapping[str, Any], name: str) -> dict[str, Any]:
    return allow(rules, tokenType="runner", runnerID=name, authorizedPermissions=None)


def both(policy: list[dict[str, Any]], claims: VerifiedClaims, request: TokenRequest) -> Evaluation:
    """Evaluate with the traced and the fast path, check they agree, return the traced result."""
    compiled = compile_policy(policy)
    full = compiled.evaluate(claims, request)
    fast = compiled.decide(claims, request)
    assert (fast.decision, fast.reason, fast.deciding_index, fast.grant) == (
        full.decision,
        full.reason,
        full.deciding_index,
        full.grant,
    )
    assert fast.trace == ()
    assert len(full.trace) == len(policy)
    return full


# --------------------------------------------------------------------------------------------
# Patterns


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        # `*` spans any run, including none and across '/' and ':'
        ("repo:acme/infra:*", "repo:acme/infra:ref:refs/heads/main", True),
        ("repo:acme/infra:*", "repo:acme/infra:", True),
        ("repo:acme/infra:*", "repo:acme/infra", False),
        ("repo:acme/infra:*", "repo:acme/infrastructure:ref:refs/heads/main", False),
        ("repo:acme/*", "repo:acme/infra:pull_request", True),
        ("*", "", True),
        ("*", "anything/at:all", True),
        ("**", "x", True),
        ("a*b", "ab", True),
        ("a*b", "a/x:yb", True),
        ("a*b", "a/x:yba", False),
        ("*main", "refs/heads/main", True),
        ("*main", "refs/heads/main2", False),
        # full-string: no implicit prefix or substring match
        ("acme", "acme-evil", False),
        ("acme", "xacme", False),
        ("main", "main", True),
        # `.` is a literal
        ("acme.corp", "acme.corp", True),
        ("acme.corp", "acmeXcorp", False),
        ("acme.corp", "acme-corp", False),
        ("a.*", "a.b", True),
        ("a.*", "ab", False),
        # `?` is exactly one character (Pulumi documents zero-or-one; we do not)
        ("v?", "v1", True),
        ("v?", "v", False),
        ("v?", "v12", False),
        ("??", "ab", True),
        ("a?c", "a/c", True),
        ("a?c", "a\nc", True),
        # escapes
        (r"a\*b", "a*b", True),
        (r"a\*b", "axb", False),
        (r"a\?", "a?", True),
        (r"a\?", "ab", False),
        ("a\\\\b", "a\\b", True),
        ("a\\\\*", "a\\anything", True),
        (r"\**", "*star", True),
        (r"\**", "star", False),
        # case-sensitive
        ("Acme", "acme", False),
        ("repo:Acme/*", "repo:acme/infra", False),
        # regex metacharacters are literals
        ("a+b", "a+b", True),
        ("a+b", "aab", False),
        ("(x|y)[z]^$", "(x|y)[z]^$", True),
        ("a{2}", "aa", False),
        # spaces (Terraform Cloud) and non-ASCII
        (
            "organization:acme:project:Default Project:*",
            "organization:acme:project:Default Project:workspace:w",
            True,
        ),
        ("café*", "café-au-lait", True),
        ("caf?", "café", True),
    ],
)
def test_pattern_matches(pattern: str, value: str, expected: bool) -> None:
    assert compile_pattern(pattern).matches(value) is expected


@pytest.mark.parametrize(
    ("pattern", "fragment"),
    [
        ("", "empty pattern"),
        ("abc\\", "lone backslash"),
        ("\\", "lone backslash"),
        (r"a\.b", r"unknown escape \."),
        (r"\a", r"unknown escape \a"),
        (r"\n", r"unknown escape \n"),
        ("a\\\\\\", "lone backslash"),
    ],
)
def test_pattern_errors(pattern: str, fragment: str) -> None:
    with pytest.raises(PatternError) as caught:
        compile_pattern(pattern)
    assert fragment in caught.value.message
    assert isinstance(caught.value, PolicyError)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("pattern", "elements", "literal_prefix", "is_literal"),
    [
        ("abc", ("abc",), "abc", True),
        ("a***b", ("a", Wildcard.ANY, "b"), "a", False),
        (r"a\*\?\\", ("a*?\\",), "a*?\\", True),
        ("?x", (Wildcard.ONE, "x"), "", False),
        (r"\**?", ("*", Wildcard.ANY, Wildcard.ONE), "*", False),
    ],
)
def test_pattern_parse(
    pattern: str, elements: tuple[object, ...], literal_prefix: str, is_literal: bool
) -> None:
    compiled = compile_pattern(pattern)
    assert compiled.source == pattern
    assert compiled.elements == elements
    assert compiled.literal_prefix == literal_prefix
    assert compiled.is_literal is is_literal


def test_pattern_is_frozen() -> None:
    compiled = compile_pattern("a*")
    with pytest.raises(AttributeError):
        compiled.source = "b"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("pattern", "value"),
    [
        ("*a*a*a*a*a*a*b", "a" * 50_000),
        ("*a*a*a*a*a*a*", "b" * 50_000),
        ("*?a*?a*?a*?a*b", "a" * 50_000),
        ("a*a*a*a*a*a*ac", "a" * 50_000 + "b"),
        ("*aaaaaaaaaaaaaaaaaaaab*aaaaaaaaaaaaaaaaab", "a" * 50_000),
    ],
)
def test_pattern_matching_does_not_backtrack_catastrophically(pattern: str, value: str) -> None:
    compiled = compile_pattern(pattern)
    started = time.perf_counter()
    assert compiled.matches(value) is False
    # A naive `.*a.*a…` regex takes minutes to hours here; the compiled form is linear-ish.
    assert time.perf_counter() - started < 1.0


# Reference implementation for the property tests: parse escapes, then a plain DP over positions.
def _reference_tokens(pattern: str) -> list[str] | None:
    """Tokens ('*', '?', or 'L<char>') or None when the pattern is invalid."""
    if not pattern:
        return None
    tokens: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            if i + 1 == len(pattern) or pattern[i + 1] not in "*?\\":
                return None
            tokens.append("L" + pattern[i + 1])
            i += 2
        else:
            tokens.append(char if char in "*?" else "L" + char)
            i += 1
    return tokens


def _reference_match(tokens: list[str], value: str) -> bool:
    # ok[j] after processing k tokens: can tokens[:k] match value[:j]?
    ok = [True] + [False] * len(value)
    for token in tokens:
        if token == "*":
            nxt = ok[:]
            for j in range(1, len(value) + 1):
                nxt[j] = nxt[j] or nxt[j - 1]
        else:
            nxt = [False] * (len(value) + 1)
            for j in range(1, len(value) + 1):
                nxt[j] = ok[j - 1] and (token == "?" or token[1] == value[j - 1])
        ok = nxt
    return ok[len(value)]


PATTERN_ALPHABET = "*?\\.:/ab"
patterns = st.text(alphabet=PATTERN_ALPHABET, max_size=12)
values = st.text(alphabet=".:/ab*?\\", max_size=16)


@given(pattern=patterns, value=values)
@settings(max_examples=3000, deadline=None)
def test_pattern_agrees_with_reference(pattern: str, value: str) -> None:
    tokens = _reference_tokens(pattern)
    if tokens is None:
        with pytest.raises(PatternError):
            compile_pattern(pattern)
        return
    assert compile_pattern(pattern).matches(value) is _reference_match(tokens, value)


@given(data=st.data(), pattern=patterns)
@settings(max_examples=1000, deadline=None)
def test_pattern_matches_its_own_instances(data: st.DataObject, pattern: str) -> None:
    # Random values rarely match; instantiate the pattern to exercise the positive side too.
    tokens = _reference_tokens(pattern)
    if tokens is None:
        return
    fill = st.text(alphabet=".:/ab*?\\", max_size=4)
    value = "".join(
        data.draw(fill)
        if token == "*"
        else data.draw(st.sampled_from(".:/ab"))
        if token == "?"
        else token[1]
        for token in tokens
    )
    assert compile_pattern(pattern).matches(value)


# --------------------------------------------------------------------------------------------
# Claim paths and values


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("sub", ("sub",)),
        ("a.b.c", ("a", "b", "c")),
        ('"kubernetes.io".serviceaccount.name', ("kubernetes.io", "serviceaccount", "name")),
        ('"oidc.circleci.com/project-id"', ("oidc.circleci.com/project-id",)),
        ('a."b.c".d', ("a", "b.c", "d")),
        ('"a"', ("a",)),
        ("with space", ("with space",)),
        ("x-y/z:w", ("x-y/z:w",)),
    ],
)
def test_parse_claim_path(path: str, expected: tuple[str, ...]) -> None:
    assert parse_claim_path(path) == expected


@pytest.mark.parametrize(
    "path",
    ["", ".", "a..b", ".a", "a.", '"a', 'a"', '"a.b', 'a"b"', '"a"b', '""', '"a".', '"a"."', "a.."],
)
def test_parse_claim_path_errors(path: str) -> None:
    with pytest.raises(ClaimPathError):
        parse_claim_path(path)


@pytest.mark.parametrize(
    ("fixture", "path", "expected"),
    [
        ("github-actions", ("sub",), ("repo:acme/infra:ref:refs/heads/main",)),
        ("github-actions", ("head_ref",), ("",)),
        ("github-actions", ("no_such_claim",), None),
        ("kubernetes-eks", ("aud",), ("sts.amazonaws.com",)),
        ("kubernetes-eks", ("kubernetes.io", "serviceaccount", "name"), ("pulumi-runner",)),
        ("kubernetes-eks", ("kubernetes.io",), None),  # an object never matches
        ("kubernetes-eks", ("kubernetes.io", "pod"), None),
        ("kubernetes-eks", ("kubernetes.io", "namespace", "deeper"), None),
        ("kubernetes-eks", ("sub", "x"), None),  # walking into a string
        ("kubernetes-eks", ("kubernetes", "io"), None),  # the dotted key is one segment
        ("circleci", ("oidc.circleci.com/project-id",), ("9c1d2e3f-4a5b-6c7d-8e9f-0a1b2c3d4e5f",)),
        ("circleci", ("oidc.circleci.com/ssh-rerun",), ("false",)),
        ("circleci", ("oidc.circleci.com/context-ids",), ("0d1e2f3a-4b5c-6d7e-8f90-a1b2c3d4e5f6",)),
        ("buildkite", ("build_number",), ("1047",)),
        ("buildkite", ("build_tag",), None),  # null
        ("gitlab-ci", ("runner_id",), ("1",)),
        ("gitlab-ci", ("groups_direct",), ("acme-group/platform-team", "acme-group/sre")),
    ],
)
def test_claim_values_from_fixtures(
    fixture: str, path: tuple[str, ...], expected: tuple[str, ...] | None
) -> None:
    assert claim_values(load_claims(fixture), path) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, ("true",)),
        (False, ("false",)),
        (0, ("0",)),
        (-12, ("-12",)),
        (10**20, ("100000000000000000000",)),
        (1047.0, ("1047",)),
        (1.5, ("1.5",)),
        (math.nan, None),
        (math.inf, None),
        (None, None),
        ({"a": "b"}, None),
        ([], ()),
        (["a", 1, True, None, {"x": "y"}, ["nested"]], ("a", "1", "true")),
        ([None], ()),
    ],
)
def test_claim_values_rendering(value: object, expected: tuple[str, ...] | None) -> None:
    assert claim_values({"c": value}, ("c",)) == expected


# --------------------------------------------------------------------------------------------
# Rules against realistic claims

GITHUB_PUSH = "repo:acme/infra:ref:refs/heads/main"


@pytest.mark.parametrize(
    ("fixture", "rules", "applies"),
    [
        ("github-actions", {"sub": "repo:acme/infra:*"}, True),
        ("github-actions", {"sub": "repo:acme/infra:ref:refs/heads/*"}, True),
        ("github-actions", {"sub": "repo:acme/infra:pull_request"}, False),
        ("github-actions", {"sub": "repo:ACME/infra:*"}, False),
        ("github-actions", {"sub": ["repo:other/x:*", "repo:acme/*"]}, True),
        ("github-actions", {"sub": ["repo:other/x:*", "repo:acme/y:*"]}, False),
        ("github-actions", {"sub": "repo:acme/infra:*", "repository_owner_id": "88310"}, True),
        ("github-actions", {"sub": "repo:acme/infra:*", "repository_owner_id": "88311"}, False),
        ("github-actions", {"ref_protected": "true"}, True),
        ("github-actions", {"missing_claim": "*"}, False),  # missing never matches, even `*`
        ("github-actions", {"head_ref": "*"}, True),  # empty string is present
        ("github-actions-environment", {"sub": "repo:acme/infra:environment:production"}, True),
        ("github-actions-environment", {"environment": "prod?ction"}, True),
        ("github-actions-pull-request", {"sub": "repo:acme/infra:*"}, True),
        ("github-actions-pull-request", {"event_name": "pull_request*"}, True),
        ("gitlab-ci", {"sub": "project_path:acme-group/platform:ref_type:branch:ref:main"}, True),
        ("gitlab-ci", {"groups_direct": "acme-group/sre"}, True),
        ("gitlab-ci", {"groups_direct": "acme-group/nope"}, False),
        ("gitlab-ci", {"runner_id": "1"}, True),
        ("kubernetes-eks", {"aud": "sts.amazonaws.com"}, True),
        ("kubernetes-eks", {"aud": "sts.amazonaws.com.evil"}, False),
        ("kubernetes-eks", {'"kubernetes.io".serviceaccount.name': "pulumi-runner"}, True),
        ("kubernetes-eks", {'"kubernetes.io".namespace': "deploy"}, True),
        ("kubernetes-eks", {"kubernetes.io.namespace": "deploy"}, False),
        ("kubernetes-eks", {'"kubernetes.io"': "*"}, False),  # object never matches
        ("kubernetes-eks", {'"kubernetes.io".pod': "*"}, False),
        ("circleci", {'"oidc.circleci.com/project-id"': "9c1d2e3f-*"}, True),
        ("circleci", {'"oidc.circleci.com/vcs-origin"': "github.com/acme/infra"}, True),
        ("circleci", {'"oidc.circleci.com/ssh-rerun"': "false"}, True),
        ("circleci", {'"oidc.circleci.com/ssh-rerun"': "False"}, False),
        ("circleci", {"oidc.circleci.com/project-id": "*"}, False),  # unquoted: a nested path
        ("buildkite", {"build_number": "1047"}, True),
        ("buildkite", {"build_number": "10?7"}, True),
        ("buildkite", {"build_number": "1047.0"}, False),
        ("buildkite", {"build_tag": "*"}, False),  # null never matches
        ("buildkite", {"build_tag": "null"}, False),
        ("buildkite", {"sub": "organization:acme-inc:pipeline:infra-deploy:*"}, True),
        (
            "terraform-cloud",
            {"sub": "organization:acme:project:Default Project:workspace:networking:*"},
            True,
        ),
        ("terraform-cloud", {"terraform_project_name": "Default Project"}, True),
        ("terraform-cloud", {"terraform_project_name": "Default*Project"}, True),
        ("terraform-cloud", {"terraform_project_name": "default project"}, False),
    ],
)
def test_rules_against_fixture_claims(fixture: str, rules: dict[str, Any], applies: bool) -> None:
    result = both([allow(rules)], load_claims(fixture), ORG)
    assert (result.decision == "allow") is applies
    assert result.trace[0].applies is applies


# --------------------------------------------------------------------------------------------
# Evaluation order and token-type fit


def test_deny_wins_even_when_an_allow_comes_first() -> None:
    claims = load_claims("github-actions-pull-request")
    policy = [allow({"sub": "repo:acme/infra:*"}), deny({"sub": "repo:acme/infra:pull_request"})]
    result = both(policy, claims, ORG)
    assert (result.decision, result.reason, result.deciding_index, result.grant) == (
        "deny",
        "denied_by_policy",
        1,
        None,
    )
    # The same policy still allows a push to main.
    pushed = both(policy, load_claims("github-actions"), ORG)
    assert (pushed.decision, pushed.deciding_index) == ("allow", 0)


def test_first_applicable_allow_grants() -> None:
    claims = load_claims("github-actions")
    policy = [
        allow({"sub": "repo:other/*"}),
        allow({"sub": "repo:acme/infra:*"}, authorizedPermissions=["standard"]),
        allow({"sub": "*"}, authorizedPermissions=["admin"]),
    ]
    result = both(policy, claims, ORG)
    assert result.reason == "allowed"
    assert result.grant == Grant(1, "organization", None, None, None, "standard")
    assert [t.applies for t in result.trace] == [False, True, True]


def test_first_applicable_deny_is_the_deciding_index() -> None:
    policy = [deny({"sub": "nope"}), deny({"sub": "*"}), deny({"aud": "*"})]
    result = both(policy, load_claims("github-actions"), ORG)
    assert (result.reason, result.deciding_index) == ("denied_by_policy", 1)


@pytest.mark.parametrize(
    "policy",
    [
        [],
        [allow({})],
        [allow({}), deny({})],
        [allow({"sub": "repo:other/*"})],
        [team({"sub": "*"}, "*")],
    ],
    ids=["empty", "no-rules", "no-rules-deny", "no-match", "other-type"],
)
def test_no_applicable_definition_denies(policy: list[dict[str, Any]]) -> None:
    result = both(policy, load_claims("github-actions"), ORG)
    assert (result.decision, result.reason, result.deciding_index, result.grant) == (
        "deny",
        "no_matching_policy",
        None,
        None,
    )


def test_a_deny_without_rules_blocks_nothing() -> None:
    result = both([deny({}), allow({"sub": "*"})], load_claims("github-actions"), ORG)
    assert (result.decision, result.deciding_index) == ("allow", 1)
    assert result.trace[0].failure == "no rules (a definition without rules never applies)"


ANY_SUB = {"sub": "*"}


@pytest.mark.parametrize(
    ("policy", "request_", "expected"),
    [
        # organization: admin scope needs an admin grant; without it the grant is standard
        ([allow(ANY_SUB)], ORG_ADMIN, Grant(0, "organization", None, None, None, "admin")),
        ([allow(ANY_SUB)], ORG, Grant(0, "organization", None, None, None, "standard")),
        (
            [allow(ANY_SUB, authorizedPermissions=["standard", "admin"])],
            ORG_ADMIN,
            Grant(0, "organization", None, None, None, "admin"),
        ),
        ([allow(ANY_SUB, authorizedPermissions=["standard"])], ORG_ADMIN, None),
        (
            [allow(ANY_SUB, authorizedPermissions=["standard"])],
            ORG,
            Grant(0, "organization", None, None, None, "standard"),
        ),
        (
            [allow(ANY_SUB, authorizedPermissions=["standard"]), allow(ANY_SUB)],
            ORG_ADMIN,
            Grant(1, "organization", None, None, None, "admin"),
        ),
        (
            [allow(ANY_SUB, authorizedPermissions=None, roleID="admin")],
            ORG_ADMIN,
            Grant(0, "organization", None, None, None, "admin"),
        ),
        (
            [allow(ANY_SUB, authorizedPermissions=None, roleID="role-123")],
            ORG,
            Grant(0, "organization", None, None, None, "role-123"),
        ),
        ([allow(ANY_SUB, authorizedPermissions=None, roleID="role-123")], ORG_ADMIN, None),
        # admin is opt-in: without the admin scope an admin definition grants standard
        (
            [allow(ANY_SUB)],
            TokenRequest("organization", ""),
            Grant(0, "organization", None, None, None, "standard"),
        ),
        ([allow(ANY_SUB)], TokenRequest("organization", "write"), None),
        # a deny for organization tokens blocks both scopes
        ([deny(ANY_SUB, authorizedPermissions=["standard"]), allow(ANY_SUB)], ORG_ADMIN, None),
        ([deny(ANY_SUB), allow(ANY_SUB, authorizedPermissions=["standard"])], ORG, None),
        # a deny for another token type does not block
        (
            [team(ANY_SUB, "*", decision="deny"), allow(ANY_SUB)],
            ORG,
            Grant(1, "organization", None, None, None, "standard"),
        ),
        # team
        (
            [team(ANY_SUB, "platform")],
            TokenRequest("team", "platform"),
            Grant(0, "team", "platform", None, None, None),
        ),
        ([team(ANY_SUB, "platform")], TokenRequest("team", "Platform"), None),
        (
            [team(ANY_SUB, "platform-*")],
            TokenRequest("team", "platform-sre"),
            Grant(0, "team", "platform-sre", None, None, None),
        ),
        ([team(ANY_SUB, "*")], TokenRequest("team", None), None),
        ([team(ANY_SUB, "*")], TokenRequest("team", ""), None),
        ([team(ANY_SUB, "platform")], ORG, None),
        ([allow(ANY_SUB)], TokenRequest("team", "platform"), None),
        (
            [team(ANY_SUB, "plat*", decision="deny"), team(ANY_SUB, "*")],
            TokenRequest("team", "platform"),
            None,
        ),
        (
            [team(ANY_SUB, "sre", decision="deny"), team(ANY_SUB, "*")],
            TokenRequest("team", "platform"),
            Grant(1, "team", "platform", None, None, None),
        ),
        # personal
        (
            [personal(ANY_SUB, "alice")],
            TokenRequest("personal", "alice"),
            Grant(0, "personal", None, "alice", None, None),
        ),
        ([personal(ANY_SUB, "alice")], TokenRequest("personal", "bob"), None),
        ([personal(ANY_SUB, "*")], TokenRequest("personal", None), None),
        # runner
        (
            [runner(ANY_SUB, "deploy-?")],
            TokenRequest("runner", "deploy-1"),
            Grant(0, "runner", None, None, "deploy-1", None),
        ),
        ([runner(ANY_SUB, "deploy-?")], TokenRequest("runner", "deploy-12"), None),
        ([runner(ANY_SUB, "*")], TokenRequest("team", "deploy"), None),
        # an unknown token type fits nothing
        ([allow(ANY_SUB)], TokenRequest("bogus", None), None),
    ],
)
def test_token_type_fit(
    policy: list[dict[str, Any]], request_: TokenRequest, expected: Grant | None
) -> None:
    result = both(policy, load_claims("github-actions"), request_)
    assert result.grant == expected
    assert result.decision == ("allow" if expected else "deny")


def test_trace_shows_which_rule_failed_for_which_value() -> None:
    claims = load_claims("gitlab-ci")
    policy = [
        team({"sub": "project_path:acme-group/*", "groups_direct": "acme-group/admins"}, "sre"),
        allow({"sub": "project_path:acme-group/*", "aud": ["x", "urn:pulumi:org:*"]}),
    ]
    result = both(policy, claims, ORG)
    first, second = result.trace
    assert first.fits_request is False
    assert first.fit_failure is not None and "team" in first.fit_failure
    assert first.applies is False
    # Rules are evaluated even when the definition does not fit: the simulator shows them all.
    assert [r.matched for r in first.rules] == [True, False]
    failed = first.rules[1]
    assert failed.claim == "groups_direct"
    assert failed.values == ("acme-group/platform-team", "acme-group/sre")
    assert failed.patterns == ("acme-group/admins",)
    assert failed.matched_pattern is None and failed.matched_value is None
    assert second.applies is True
    assert second.rules[1].matched_pattern == "urn:pulumi:org:*"
    assert second.rules[1].matched_value == "urn:pulumi:org:acme"

    as_json = result.trace_json()
    assert json.loads(json.dumps(as_json)) == as_json
    assert as_json[0]["rules"][1] == {
        "claim": "groups_direct",
        "patterns": ["acme-group/admins"],
        "values": ["acme-group/platform-team", "acme-group/sre"],
        "matched": False,
        "matched_pattern": None,
        "matched_value": None,
    }
    assert as_json[0]["failure"] == first.fit_failure
    assert as_json[1]["failure"] is None


def test_trace_records_missing_and_object_claims_as_none() -> None:
    result = both(
        [allow({"nope": "*", '"kubernetes.io"': "*"})], load_claims("kubernetes-eks"), ORG
    )
    rules = result.trace[0].rules
    assert [(r.values, r.matched) for r in rules] == [(None, False), (None, False)]
    assert result.trace[0].failure == 'rules not matched: "nope", "\\"kubernetes.io\\""'


class RecordingClaims(Mapping[str, Any]):
    """Claims that remember which top-level claims were read."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = dict(data)
        self.read: list[str] = []

    def __getitem__(self, key: str) -> Any:
        self.read.append(key)
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


def test_decide_skips_other_token_types_and_stops_at_the_first_failing_rule() -> None:
    claims = RecordingClaims(load_claims("github-actions"))
    policy = compile_policy(
        [
            allow({"org_only": "*"}),
            # "*nope" has no literal prefix, so only short-circuiting keeps "after_failure" unread
            team({"sub": "*nope", "after_failure": "*"}, "*"),
            team({"sub": "*", "ref": "refs/heads/main"}, "*"),
            deny({"org_deny_only": "*"}),
        ]
    )
    result = policy.decide(VerifiedClaims(claims), TokenRequest("team", "platform"))
    assert (result.decision, result.deciding_index) == ("allow", 2)
    assert "org_only" not in claims.read
    assert "org_deny_only" not in claims.read
    assert "after_failure" not in claims.read
    claims.read.clear()
    policy.evaluate(VerifiedClaims(claims), TokenRequest("team", "platform"))
    assert {"org_only", "org_deny_only", "after_failure"} <= set(claims.read)


def test_decide_only_tries_definitions_whose_literal_prefix_fits() -> None:
    claims = RecordingClaims(load_claims("github-actions"))
    per_repository = [
        allow({"sub": [f"repo:acme/r{i}:*", f"repo:acme/x{i}"], "ref": "*"}) for i in range(998)
    ]
    policy = compile_policy(
        [
            *per_repository,
            allow({"sub": "repo:acme/infra:ref:*", "ref": "refs/heads/main"}),
            deny({"repository_id": ["1", "704117"], "ref": "refs/heads/other"}),
        ]
    )
    result = policy.decide(VerifiedClaims(claims), ORG)
    assert (result.decision, result.deciding_index) == ("allow", 998)
    # One read of "sub" and of "repository_id" to probe the index, then the two candidates' rules.
    assert sorted(claims.read) == ["ref", "ref", "repository_id", "repository_id", "sub", "sub"]


@pytest.mark.parametrize(
    ("fixture", "policy", "decision", "index"),
    [
        # the prefix index must keep policy order across index buckets and unindexed definitions
        (
            "github-actions",
            [allow({"sub": "repo:acme/infra:*"}), allow({"sub": "repo:acme/*"})],
            "allow",
            0,
        ),
        (
            "github-actions",
            [allow({"sub": "repo:acme/*"}), allow({"sub": "repo:acme/infra:*"})],
            "allow",
            0,
        ),
        ("github-actions", [allow({"sub": "repo:acme/*"}), allow({"sub": "*"})], "allow", 0),
        ("github-actions", [allow({"sub": "*"}), allow({"sub": "repo:acme/*"})], "allow", 0),
        ("github-actions", [allow({"sub": "*"}), allow({"repository_id": "704117"})], "allow", 0),
        ("github-actions", [allow({"repository_id": "704117"}), allow({"sub": "*"})], "allow", 0),
        # a rule is only indexed when every pattern has a literal prefix
        ("github-actions", [allow({"sub": ["repo:other/*", "*infra*"]})], "allow", 0),
        ("github-actions", [allow({"sub": ["repo:other/*", "repo:acme/infra:*"]})], "allow", 0),
        # a deny found through another claim's index still wins
        (
            "github-actions",
            [allow({"repository_id": "704117"}), deny({"sub": GITHUB_PUSH})],
            "deny",
            1,
        ),
        # literal equal to the whole value, and a prefix longer than the value
        ("github-actions", [allow({"ref": "refs/heads/main"})], "allow", 0),
        ("github-actions", [allow({"ref": "refs/heads/main-and-more*"})], "deny", None),
        # list values and rendered scalars are probed too
        ("gitlab-ci", [allow({"groups_direct": "acme-group/sre"})], "allow", 0),
        ("buildkite", [allow({"build_number": "10*"})], "allow", 0),
        ("circleci", [allow({'"oidc.circleci.com/ssh-rerun"': "fal*"})], "allow", 0),
        ("buildkite", [allow({"build_tag": "v*"})], "deny", None),
    ],
)
def test_decide_prefix_index_keeps_semantics(
    fixture: str, policy: list[dict[str, Any]], decision: str, index: int | None
) -> None:
    result = both(policy, load_claims(fixture), ORG)
    assert (result.decision, result.deciding_index) == (decision, index)


def test_decide_cost_does_not_grow_with_other_token_types() -> None:
    claims = load_claims("github-actions")
    others = [team({"sub": f"repo:acme/r{i}:*"}, "*") for i in range(999)]
    policy = compile_policy([*others, allow({"sub": "repo:acme/infra:*"})])
    small = compile_policy([allow({"sub": "repo:acme/infra:*"})])

    def best_of(p: Any) -> float:
        timings = []
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(200):
                p.decide(claims, ORG)
            timings.append(time.perf_counter() - started)
        return min(timings)

    assert best_of(policy) < best_of(small) * 3 + 0.005


# --------------------------------------------------------------------------------------------
# compile_policy errors


@pytest.mark.parametrize(
    ("policy", "error", "path"),
    [
        ("not a list", PolicyError, "policies"),
        ([allow(ANY_SUB)] * 1001, PolicyError, "policies"),
        (["x"], PolicyError, "policies[0]"),
        ([allow(ANY_SUB, decision="maybe")], PolicyError, "policies[0].decision"),
        ([allow(ANY_SUB, tokenType="robot")], PolicyError, "policies[0].tokenType"),
        (
            [allow(ANY_SUB), team(ANY_SUB, "x", decision="allow") | {"teamName": None}],
            PolicyError,
            "policies[1].teamName",
        ),
        ([team(ANY_SUB, "bad\\")], PatternError, "policies[0].teamName"),
        ([allow(ANY_SUB, authorizedPermissions=None)], PolicyError, "policies[0]"),
        (
            [allow(ANY_SUB, authorizedPermissions=["owner"])],
            PolicyError,
            "policies[0].authorizedPermissions",
        ),
        ([allow({"sub": "a\\b"})], PatternError, 'policies[0].rules["sub"]'),
        ([allow({"sub": ["ok", "a\\b"]})], PatternError, 'policies[0].rules["sub"][1]'),
        ([allow({"sub": []})], PatternError, 'policies[0].rules["sub"]'),
        ([allow({"sub": 5})], PatternError, 'policies[0].rules["sub"]'),
        ([allow({"sub": [5]})], PatternError, 'policies[0].rules["sub"][0]'),
        ([allow({"a..b": "x"})], ClaimPathError, 'policies[0].rules["a..b"]'),
        ([allow(ANY_SUB) | {"rules": ["sub"]}], PolicyError, "policies[0].rules"),
    ],
)
def test_compile_policy_errors(policy: Any, error: type[PolicyError], path: str) -> None:
    with pytest.raises(error) as caught:
        compile_policy(policy)
    assert caught.value.path == path
    assert str(caught.value).startswith(f"{path}: ")


def test_compile_policy_accepts_nulls_for_absent_fields() -> None:
    definition = team({"sub": "*"}, "sre") | {"userLogin": None, "roleID": None, "runnerID": None}
    result = both(
        [definition, allow(ANY_SUB) | {"rules": None}],
        load_claims("github-actions"),
        TokenRequest("team", "sre"),
    )
    assert result.deciding_index == 0


# --------------------------------------------------------------------------------------------
# evaluate() and decide() always agree

# Small vocabularies on purpose: most generated definitions should fit the request and most rules
# should match, or the interesting cases (several applicable definitions, a prefix-indexed rule
# that matches through its one unprefixed pattern) would almost never be generated.
claim_scalars = st.one_of(
    st.sampled_from(["a", "b", "ab", "ba", "", "true", "1"]),
    st.booleans(),
    st.integers(min_value=0, max_value=2),
    st.none(),
)
claim_value = st.one_of(
    claim_scalars,
    st.lists(claim_scalars, max_size=3),
    st.dictionaries(st.sampled_from(["a", "b"]), claim_scalars, max_size=2),
)
claim_sets = st.fixed_dictionaries(
    {"sub": claim_value, "aud": claim_value},
    optional={"ref": claim_value, "x.y": claim_value, "n": claim_value},
)
rule_patterns = st.sampled_from(["a", "ab", "b", "*", "a*", "ab*", "a?", "?", "*b", "true", "1"])
rule_maps = st.dictionaries(
    st.sampled_from(["sub", "aud", "ref", '"x.y"', "n.a", "missing"]),
    st.one_of(rule_patterns, st.lists(rule_patterns, min_size=1, max_size=3)),
    max_size=2,
)
subject_patterns = st.sampled_from(["*", "t1", "t?", "u*", "r1"])
token_types = st.sampled_from(["organization", "team", "personal", "runner"])


@st.composite
def definitions(draw: st.DrawFn, token_type: st.SearchStrategy[str]) -> dict[str, Any]:
    kind = draw(token_type)
    definition: dict[str, Any] = {
        "decision": draw(st.sampled_from(["allow", "deny"])),
        "tokenType": kind,
        "rules": draw(rule_maps),
    }
    if kind == "organization":
        if draw(st.booleans()):
            definition["roleID"] = draw(st.sampled_from(["admin", "custom"]))
        else:
            definition["authorizedPermissions"] = draw(
                st.sampled_from([["admin"], ["standard"], ["standard", "admin"]])
            )
    else:
        field = {"team": "teamName", "personal": "userLogin", "runner": "runnerID"}[kind]
        definition[field] = draw(subject_patterns)
    return definition


@st.composite
def policies_and_requests(draw: st.DrawFn) -> tuple[list[dict[str, Any]], TokenRequest]:
    request_ = TokenRequest(
        draw(token_types), draw(st.sampled_from([None, "", "admin", "t1", "t2", "u1", "r1"]))
    )
    # Mostly the requested token type, sometimes another, so grouping is exercised too.
    kinds = st.one_of(st.just(request_.token_type), st.just(request_.token_type), token_types)
    return draw(st.lists(definitions(kinds), max_size=10)), request_


@given(case=policies_and_requests(), claims=claim_sets)
@settings(max_examples=800, deadline=None)
def test_evaluate_and_decide_agree(
    case: tuple[list[dict[str, Any]], TokenRequest], claims: dict[str, Any]
) -> None:
    policy, request_ = case
    result = both(policy, VerifiedClaims(claims), request_)
    # And both agree with the rule stated in the spec, recomputed from the trace.
    applicable = [t for t in result.trace if t.applies]
    denies = [t.index for t in applicable if t.decision == "deny"]
    allows = [t.index for t in applicable if t.decision == "allow"]
    if denies:
        assert (result.reason, result.deciding_index) == ("denied_by_policy", denies[0])
    elif allows:
        assert (result.reason, result.deciding_index) == ("allowed", allows[0])
        assert result.grant is not None and result.grant.definition_index == allows[0]
    else:
        assert (result.reason, result.deciding_index) == ("no_matching_policy", None)
    for definition, trace in zip(policy, result.trace, strict=True):
        if not definition["rules"]:
            assert not trace.applies
