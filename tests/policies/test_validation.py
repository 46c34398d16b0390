"""Tests for policies.validation: structural errors and lint warnings of policy definitions."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.matching import compile_policy
from policies.patterns import compile_pattern
from policies.validation import (
    FieldError,
    LintWarning,
    is_github_issuer,
    lint_definitions,
    validate_definitions,
)

GITHUB = "https://token.actions.githubusercontent.com"
GITLAB = "https://gitlab.com"
EKS = "https://oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"


def org(rules: Any = None, decision: Any = "allow", **fields: Any) -> dict[str, Any]:
    definition: dict[str, Any] = {
        "decision": decision,
        "tokenType": "organization",
        "authorizedPermissions": ["admin"],
    }
    if rules is not None:
        definition["rules"] = rules
    definition.update(fields)
    return {k: v for k, v in definition.items() if v is not ...}


def typed(token_type: str, **fields: Any) -> dict[str, Any]:
    return {"decision": "allow", "tokenType": token_type, "rules": {"sub": "x"}, **fields}


# --------------------------------------------------------------------------------------------
# validate_definitions


@pytest.mark.parametrize(
    "policy",
    [
        [],
        [
            org(
                {
                    "sub": "repo:acme/infra:ref:refs/heads/main",
                    "repository_owner_id": "88310",
                    "aud": ["urn:pulumi:org:acme"],
                }
            ),
            org({"sub": "repo:acme/infra:pull_request"}, decision="deny"),
            org({"sub": "repo:acme/*"}, authorizedPermissions=["standard"]),
            org({"sub": "*"}, authorizedPermissions=["standard", "admin"]),
            org({"sub": "*"}, authorizedPermissions=..., roleID="0b6c5a7e-role"),
            typed("team", teamName="platform-*"),
            typed("personal", userLogin="alice"),
            typed("runner", runnerID="deploy-?"),
            org({'"kubernetes.io".serviceaccount.name': "pulumi-runner"}),
            org({'"oidc.circleci.com/project-id"': r"9c1d\*"}),
            org({}),
            org(None),
            # null means absent (a read-modify-write round trip of Pulumi's API echoes nulls)
            typed("team", teamName="sre", userLogin=None, runnerID=None, roleID=None),
            {**org({"sub": "x"}, roleID=None, teamName=None), "rules": None},
        ],
        [org({"sub": "x"})] * 1000,
    ],
    ids=["empty", "realistic", "limit"],
)
def test_valid_policies_have_no_errors(policy: list[dict[str, Any]]) -> None:
    assert validate_definitions(policy) == []
    compile_policy(policy)  # what validates also compiles


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"policies": []}, [("policies", "must be a list of policy definitions")]),
        ("[]", [("policies", "must be a list of policy definitions")]),
        (None, [("policies", "must be a list of policy definitions")]),
        (
            [org({"sub": "x"})] * 1001,
            [("policies", "at most 1,000 definitions are allowed, not 1,001")],
        ),
        ([org({"sub": "x"}), "allow"], [("policies[1]", "must be an object")]),
        (
            [org({"sub": "x"}, team="x")],
            [("policies[0].team", "unknown field (known fields: decision, tokenType, teamName")],
        ),
        (
            [typed("runner", runnerId="r1")],
            [
                ("policies[0].runnerId", 'unknown field; did you mean "runnerID"?'),
                ("policies[0].runnerID", 'required when tokenType is "runner"'),
            ],
        ),
        (
            [org({"sub": "x"}, decision=...)],
            [("policies[0].decision", 'required: "allow" or "deny"')],
        ),
        (
            [org({"sub": "x"}, decision="Allow")],
            [("policies[0].decision", 'must be "allow" or "deny", not "Allow"')],
        ),
        (
            [{"decision": "allow", "rules": {"sub": "x"}}],
            [
                (
                    "policies[0].tokenType",
                    'required: "organization" or "personal" or "runner" or "team"',
                )
            ],
        ),
        (
            [typed("robot")],
            [
                (
                    "policies[0].tokenType",
                    'must be "organization" or "personal" or "runner" or "team", not "robot"',
                )
            ],
        ),
        ([typed("team")], [("policies[0].teamName", 'required when tokenType is "team"')]),
        ([typed("personal")], [("policies[0].userLogin", 'required when tokenType is "personal"')]),
        ([typed("runner")], [("policies[0].runnerID", 'required when tokenType is "runner"')]),
        (
            [typed("personal", userLogin="alice", teamName="sre")],
            [
                (
                    "policies[0].teamName",
                    'only allowed when tokenType is "team" (this definition\'s is "personal")',
                )
            ],
        ),
        (
            [typed("team", teamName="sre", authorizedPermissions=["admin"])],
            [
                (
                    "policies[0].authorizedPermissions",
                    'only allowed when tokenType is "organization"',
                )
            ],
        ),
        (
            [org({"sub": "x"}, runnerID="r1")],
            [("policies[0].runnerID", 'only allowed when tokenType is "runner"')],
        ),
        (
            [typed("team", teamName=5)],
            [("policies[0].teamName", "must be a string (a team name or pattern)")],
        ),
        ([typed("team", teamName="")], [("policies[0].teamName", "empty pattern")]),
        (
            [typed("personal", userLogin="al\\ice")],
            [("policies[0].userLogin", "unknown escape \\i")],
        ),
        ([typed("runner", runnerID="r1\\")], [("policies[0].runnerID", "lone backslash")]),
        (
            [org({"sub": "x"}, authorizedPermissions=...)],
            [("policies[0].authorizedPermissions", 'required when tokenType is "organization"')],
        ),
        (
            [org({"sub": "x"}, roleID="r")],
            [("policies[0].roleID", "give either roleID or authorizedPermissions, not both")],
        ),
        (
            [org({"sub": "x"}, authorizedPermissions=[])],
            [("policies[0].authorizedPermissions", "must be a non-empty list")],
        ),
        (
            [org({"sub": "x"}, authorizedPermissions="admin")],
            [("policies[0].authorizedPermissions", "must be a non-empty list")],
        ),
        (
            [org({"sub": "x"}, authorizedPermissions=["admin", "owner", 1])],
            [
                (
                    "policies[0].authorizedPermissions[1]",
                    'must be "admin" or "standard", not "owner"',
                ),
                ("policies[0].authorizedPermissions[2]", 'must be "admin" or "standard", not 1'),
            ],
        ),
        (
            [org({"sub": "x"}, authorizedPermissions=..., roleID="")],
            [("policies[0].roleID", "must be a non-empty string")],
        ),
        (
            [org({"sub": "x"}, authorizedPermissions=..., roleID=7)],
            [("policies[0].roleID", "must be a non-empty string")],
        ),
        ([org(["sub", "x"])], [("policies[0].rules", "must be an object mapping claim paths")]),
        ([org("sub")], [("policies[0].rules", "must be an object mapping claim paths")]),
        ([org({"a..b": "x"})], [('policies[0].rules["a..b"]', "'a..b' has an empty segment")]),
        (
            [org({'"kubernetes.io.namespace': "x"})],
            [('policies[0].rules["\\"kubernetes.io.namespace"]', "unbalanced double quote")],
        ),
        ([org({"": "x"})], [('policies[0].rules[""]', "empty claim path")]),
        ([org({"sub": ""})], [('policies[0].rules["sub"]', "empty pattern")]),
        ([org({"sub": []})], [('policies[0].rules["sub"]', "must list at least one pattern")]),
        ([org({"sub": ["ok", ""]})], [('policies[0].rules["sub"][1]', "empty pattern")]),
        ([org({"sub": ["ok", "a\\.b"]})], [('policies[0].rules["sub"][1]', "unknown escape \\.")]),
        ([org({"sub": "repo:acme/*\\"})], [('policies[0].rules["sub"]', "lone backslash")]),
        (
            [org({"build_number": 1047})],
            [
                (
                    'policies[0].rules["build_number"]',
                    'write numbers and booleans as strings, e.g. "1047"',
                )
            ],
        ),
        (
            [org({"ssh": True})],
            [('policies[0].rules["ssh"]', "must be a pattern string or a list of them")],
        ),
        (
            [org({"sub": ["x", None]})],
            [('policies[0].rules["sub"][1]', "must be a pattern string or a list of them")],
        ),
        (
            [org({"sub": {"x": "y"}})],
            [('policies[0].rules["sub"]', "must be a pattern string or a list of them")],
        ),
        (
            # every error of every definition is reported at once, in order
            [
                {"decision": "maybe", "tokenType": "team", "userLogin": "bob", "rules": {"a.": ""}},
                org({"sub": "x"}),
                typed("runner", runnerID="r\\x", extra=1),
            ],
            [
                ("policies[0].decision", 'must be "allow" or "deny", not "maybe"'),
                ("policies[0].userLogin", 'only allowed when tokenType is "personal"'),
                ("policies[0].teamName", 'required when tokenType is "team"'),
                ('policies[0].rules["a."]', "empty segment"),
                ('policies[0].rules["a."]', "empty pattern"),
                ("policies[2].extra", "unknown field"),
                ("policies[2].runnerID", "unknown escape \\x"),
            ],
        ),
    ],
)
def test_validation_errors(raw: Any, expected: list[tuple[str, str]]) -> None:
    errors = validate_definitions(raw)
    assert [e.path for e in errors] == [path for path, _ in expected]
    for error, (_, fragment) in zip(errors, expected, strict=True):
        assert fragment in error.message, error


def test_field_error_reads_as_a_sentence() -> None:
    [error] = validate_definitions([{}, typed("team")])[2:]
    assert str(error) == 'policies[1].teamName: required when tokenType is "team"'
    assert error == FieldError("policies[1].teamName", 'required when tokenType is "team"')


# --------------------------------------------------------------------------------------------
# lint_definitions

SAFE_GITHUB = {
    "sub": "repo:acme/infra:ref:refs/heads/main",
    "repository_owner_id": "88310",
    "aud": "urn:pulumi:org:acme",
}
PINNED = {"repository_id": "704117", "aud": "urn:pulumi:org:acme"}


def lint(
    policy: list[dict[str, Any]], issuer: str = GITHUB, fixed: bool = True
) -> list[tuple[str, str]]:
    assert validate_definitions(policy) == []
    return [
        (w.path, w.code)
        for w in lint_definitions(policy, issuer_url=issuer, has_fixed_audience=fixed)
    ]


def test_a_careful_policy_has_no_warnings() -> None:
    assert lint([org(SAFE_GITHUB), org({"sub": "*"}, decision="deny")], fixed=False) == []


@pytest.mark.parametrize(
    ("sub", "broad"),
    [
        ("*", True),
        ("?*", True),
        ("repo:*", True),
        ("repo:*:*", True),
        ("repo:*/infra:*", True),
        ("repo:acme*", True),  # "acme-evil" is someone else's owner
        ("repo:ac?e/infra:*", True),
        ("project_path:*", True),
        ("project_path:acme-*", True),
        ("org:*", True),
        ("org/*", True),
        ("organization:*:pipeline:deploy:*", True),
        ("system:serviceaccount:*", True),
        ("system:serviceaccount:dep*", True),
        (["repo:acme/infra:*", "repo:*"], True),
        ("repo:acme/*", False),
        ("repo:acme/infra:*", False),
        ("repo:acme/infra:ref:refs/heads/main", False),
        ("project_path:acme-group/*", False),
        ("organization:acme-inc:*", False),
        ("org/4b3e6c34-7d1a-4c0a-9a4e-2f3b5c6d7e8f/*", False),
        ("system:serviceaccount:deploy:*", False),
        (r"\*", False),  # a literal star is a single subject
        (["repo:acme/infra:*", "repo:acme/docs:*"], False),
    ],
)
def test_sub_matches_any_repository(sub: str | list[str], broad: bool) -> None:
    warnings = lint([org({**PINNED, "sub": sub}, authorizedPermissions=["standard"])])
    expected = [('policies[0].rules["sub"]', "sub_matches_any_repository")] if broad else []
    assert warnings == expected


def test_one_pinned_sub_rule_pins_the_definition() -> None:
    # Both spellings of the path are rules that must match, so the pinned one bounds the other.
    both_rules = {**PINNED, "sub": "repo:*", '"sub"': "repo:acme/infra:*"}
    assert lint([org(both_rules, authorizedPermissions=["standard"])]) == []
    both_broad = {**PINNED, "sub": "repo:*", '"sub"': "*"}
    assert lint([org(both_broad, authorizedPermissions=["standard"])]) == [
        ('policies[0].rules["sub"]', "sub_matches_any_repository")
    ]


@pytest.mark.parametrize(
    ("rules", "issuer", "broad"),
    [
        ({"aud": "urn:pulumi:org:acme"}, GITLAB, True),
        ({"aud": "urn:pulumi:org:acme", "ref": "main"}, GITLAB, True),
        ({"project_id": "20"}, GITLAB, False),
        ({"namespace_path": "acme-group"}, GITLAB, False),
        ({"project_path": "acme-group/*"}, GITLAB, False),
        ({"project_path": "acme-*"}, GITLAB, True),
        ({"repository_owner_id": "8*"}, GITLAB, True),
        ({'"kubernetes.io".namespace': "deploy"}, EKS, False),
        ({'"kubernetes.io".serviceaccount.name': "pulumi-*"}, EKS, True),
        ({'"oidc.circleci.com/project-id"': "9c1d2e3f-4a5b-6c7d-8e9f-0a1b2c3d4e5f"}, GITLAB, False),
    ],
)
def test_no_sub_rule_needs_another_pin(rules: dict[str, str], issuer: str, broad: bool) -> None:
    warnings = lint([org(rules, authorizedPermissions=["standard"])], issuer=issuer)
    assert warnings == ([("policies[0].rules", "sub_matches_any_repository")] if broad else [])


@pytest.mark.parametrize(
    ("aud", "fixed", "warned"),
    [
        (None, False, True),
        (None, True, False),
        ("*", False, True),
        (["sts.amazonaws.com", "*"], False, True),
        ("sts.amazonaws.com", False, False),
        ("urn:pulumi:org:*", False, False),
    ],
)
def test_no_audience_constraint(aud: str | list[str] | None, fixed: bool, warned: bool) -> None:
    rules: dict[str, Any] = {'"kubernetes.io".namespace': "deploy"}
    if aud is not None:
        rules["aud"] = aud
    warnings = lint([org(rules)], issuer=EKS, fixed=fixed)
    assert warnings == ([("policies[0].rules", "no_audience_constraint")] if warned else [])


@pytest.mark.parametrize(
    ("issuer", "pins", "warned"),
    [
        (GITHUB, {}, True),
        (GITHUB + "/", {}, True),
        (GITHUB + "/acme-enterprise", {}, True),
        ("HTTPS://Token.Actions.GitHubUserContent.com/acme", {}, True),
        (GITHUB, {"repository_owner_id": "88310"}, False),
        (GITHUB, {"repository_id": ["704117", "704118"]}, False),
        (GITHUB, {"repository_owner_id": "*"}, True),
        (GITHUB, {"repository_id": ["704117", "70411?"]}, True),
        (GITHUB, {"repository_owner": "acme"}, True),  # a name can be re-registered; an ID cannot
        (GITLAB, {}, False),
        ("https://ghes.example.com/_services/token", {}, False),
    ],
)
def test_github_not_pinned(issuer: str, pins: dict[str, Any], warned: bool) -> None:
    rules = {"sub": "repo:acme/infra:ref:refs/heads/main", "aud": "x", **pins}
    warnings = lint([org(rules, authorizedPermissions=["standard"])], issuer=issuer)
    assert warnings == ([("policies[0].rules", "github_not_pinned")] if warned else [])


@pytest.mark.parametrize(
    ("rules", "issuer", "warned"),
    [
        ({"sub": "repo:acme/infra:*"}, GITHUB, True),
        ({"sub": "repo:acme/infra:pull_request"}, GITHUB, True),
        ({"sub": "repo:acme/*:pull_*"}, GITHUB, True),
        ({"sub": "repo:acme/infra:?ull_request"}, GITHUB, True),
        ({"sub": ["repo:acme/infra:ref:refs/heads/main", "repo:acme/infra:*"]}, GITHUB, True),
        ({"sub": "repo:acme/infra:ref:refs/heads/main"}, GITHUB, False),
        ({"sub": "repo:acme/infra:ref:*"}, GITHUB, False),
        ({"sub": "repo:acme/infra:environment:production"}, GITHUB, False),
        ({"sub": "repo:acme/infra:pull_request:*"}, GITHUB, False),
        ({"sub": "repo:acme/infra/x:pull_request"}, GITHUB, False),  # no such repository name
        ({"sub": "repo:acme/infra:*", "event_name": "push"}, GITHUB, False),
        ({"sub": "repo:acme/infra:*", "event_name": ["push", "workflow_dispatch"]}, GITHUB, False),
        ({"sub": "repo:acme/infra:*", "event_name": "pull_request"}, GITHUB, True),
        # a pull request job that uses an environment has an environment subject
        ({"sub": "repo:acme/infra:environment:prod", "event_name": "pull_request*"}, GITHUB, True),
        ({"sub": "repo:acme/infra:ref:refs/heads/main", "event_name": "*_target"}, GITHUB, True),
        ({"event_name": "*"}, GITHUB, True),
        ({"environment": "production"}, GITHUB, True),  # neither sub nor event_name
        ({"environment": "production"}, GITLAB, False),
        ({"sub": "*"}, GITLAB, False),
        # GitHub Enterprise Server has its own URL: GitHub-shaped rules still count
        ({"sub": "repo:acme/infra:*"}, "https://ghes.example.com/_services/token", True),
        ({"event_name": "pull_request"}, "https://ghes.example.com/_services/token", True),
    ],
)
def test_pull_request_admin(rules: dict[str, Any], issuer: str, warned: bool) -> None:
    admin = lint_definitions([org(rules)], issuer_url=issuer, has_fixed_audience=True)
    assert ("pull_request_admin" in {w.code for w in admin}) is warned
    # Only an organization admin grant is flagged.
    for definition in (
        org(rules, authorizedPermissions=["standard"]),
        org(rules, authorizedPermissions=..., roleID="custom-role"),
        typed("team", teamName="sre", rules=rules),
        org(rules, decision="deny"),
    ):
        others = lint_definitions([definition], issuer_url=issuer, has_fixed_audience=True)
        assert "pull_request_admin" not in {w.code for w in others}


PR_SUBJECTS = [
    f"repo:{owner}/{name}:pull_request"
    for owner in ("a", "acme", "x-y", "pull_request")
    for name in ("a", "infra", "docs.site", "ref")
]


@given(
    chunks=st.lists(
        st.sampled_from(
            ["repo:", "acme", "a", "/", ":", "*", "?", "pull_", "request", "ref:", "infra", "x"]
        ),
        min_size=1,
        max_size=6,
    )
)
@settings(max_examples=500, deadline=None)
def test_pull_request_admin_never_misses_a_pull_request_subject(chunks: list[str]) -> None:
    # Soundness, the direction that matters: if a real pull request subject matches the sub
    # pattern, the admin allow is flagged (on an unrecognised issuer, when it looks like GitHub's).
    pattern = "".join(chunks)
    if not any(compile_pattern(pattern).matches(subject) for subject in PR_SUBJECTS):
        return
    policy = [org({"sub": pattern, "repository_owner_id": "1"})]
    issuers = [GITHUB, "https://ghes.example.com/_services/token"]
    for issuer in issuers if pattern.startswith("repo:") else issuers[:1]:
        warnings = lint_definitions(policy, issuer_url=issuer, has_fixed_audience=True)
        assert "pull_request_admin" in {w.code for w in warnings}


def test_pull_request_admin_via_role_id() -> None:
    policy = [
        org({**SAFE_GITHUB, "sub": "repo:acme/infra:*"}, authorizedPermissions=..., roleID="admin")
    ]
    assert lint(policy) == [("policies[0]", "pull_request_admin")]


def test_no_rules_is_flagged_for_allows_and_denies() -> None:
    policy = [org({}), org(None, decision="deny"), typed("team", teamName="*") | {"rules": {}}]
    assert lint(policy, fixed=False) == [
        ("policies[0].rules", "no_rules"),
        ("policies[1].rules", "no_rules"),
        ("policies[2].rules", "no_rules"),
    ]


def test_denies_are_not_linted_for_breadth() -> None:
    assert lint([org({"sub": "*"}, decision="deny")], fixed=False) == []


def test_warnings_accumulate_in_order_with_readable_messages() -> None:
    policy = [org(SAFE_GITHUB), org({"sub": "*"})]
    warnings = lint_definitions(policy, issuer_url=GITHUB, has_fixed_audience=False)
    assert [(w.path, w.code) for w in warnings] == [
        ('policies[1].rules["sub"]', "sub_matches_any_repository"),
        ("policies[1].rules", "no_audience_constraint"),
        ("policies[1].rules", "github_not_pinned"),
        ("policies[1]", "pull_request_admin"),
    ]
    assert str(warnings[0]).startswith('policies[1].rules["sub"]: sub pattern "*" can match any')
    assert all(isinstance(w, LintWarning) and w.message for w in warnings)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (GITHUB, True),
        (GITHUB + "/", True),
        (GITHUB + "/acme", True),
        (GITHUB + "/acme/", True),
        ("https://TOKEN.actions.githubusercontent.com", True),
        (" https://token.actions.githubusercontent.com ", True),
        ("http://token.actions.githubusercontent.com", False),
        (GITHUB + "/a/b", False),
        (GITHUB + "?x=1", False),
        ("https://token.actions.githubusercontent.com.evil.example", False),
        ("https://evil.example/token.actions.githubusercontent.com", False),
        (GITLAB, False),
    ],
)
def test_is_github_issuer(url: str, expected: bool) -> None:
    assert is_github_issuer(url) is expected


def test_lone_surrogates_are_refused() -> None:
    errors = validate_definitions(
        [
            {
                "decision": "allow",
                "tokenType": "organization",
                "authorizedPermissions": ["admin"],
                "rules": {"sub": "repo:\ud800"},
            }
        ]
    )
    assert [e.path for e in errors] == ["policies[0]"]
    assert "Unicode" in errors[0].message
