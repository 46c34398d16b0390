"""Check policy definitions before they are saved: errors that block the save, warnings that don't.

Pure module (no Django). `validate_definitions` reports every structural problem at once, with a
JSON-path-like location and a sentence an operator can act on; `lint_definitions` flags valid but
risky definitions. Neither checks that a named team, user or runner exists (that needs the
database; the service layer does it), and neither changes the definitions.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple
from urllib.parse import urlsplit

from policies.matching import (
    DECISIONS,
    MAX_DEFINITIONS,
    ORGANIZATION_PERMISSIONS,
    SUBJECT_FIELDS,
    TOKEN_TYPES,
    CompiledDefinition,
    CompiledRule,
    compile_policy,
    json_quote,
)
from policies.patterns import Pattern, PolicyError, Wildcard, compile_pattern, parse_claim_path

__all__ = [
    "FieldError",
    "LintWarning",
    "is_github_issuer",
    "lint_definitions",
    "validate_definitions",
]

ORGANIZATION_FIELDS: Final = ("authorizedPermissions", "roleID")
# The fields that only one token type may carry.
_FIELD_TOKEN_TYPES: Final[Mapping[str, str]] = {
    **{name: token_type for token_type, name in SUBJECT_FIELDS.items()},
    **dict.fromkeys(ORGANIZATION_FIELDS, "organization"),
}
KNOWN_FIELDS: Final = (
    "decision",
    "tokenType",
    *SUBJECT_FIELDS.values(),
    *ORGANIZATION_FIELDS,
    "rules",
)


@dataclass(frozen=True)
class FieldError:
    """A problem that makes a policy unsavable, located like `policies[1].teamName`."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass(frozen=True)
class LintWarning:
    """A valid but risky (or useless) definition, with a stable `code` the editor can key on."""

    path: str
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


# --------------------------------------------------------------------------------------------
# Validation


def validate_definitions(raw: Any) -> list[FieldError]:
    """Return every structural error in a policy (a JSON list of definitions); [] when valid.

    It deliberately does not check that teams, users or runners exist, nor stop at the first
    error: an operator fixing a policy wants to see all of them at once. A null optional field is
    treated as absent, like `compile_policy` does.
    """
    if not isinstance(raw, list):
        return [FieldError("policies", "must be a list of policy definitions")]
    if len(raw) > MAX_DEFINITIONS:
        # Listing the errors of thousands of definitions would only bury this one.
        return [
            FieldError(
                "policies",
                f"at most {MAX_DEFINITIONS:,} definitions are allowed, not {len(raw):,}",
            )
        ]
    errors: list[FieldError] = []
    for index, definition in enumerate(raw):
        where = f"policies[{index}]"
        if _has_unencodable_text(definition):
            # A lone surrogate ("\ud800") survives JSON parsing but not storage or display.
            errors.append(FieldError(where, "contains text that is not valid Unicode"))
            continue
        errors.extend(_definition_errors(where, definition))
    return errors


def _has_unencodable_text(value: Any, depth: int = 0) -> bool:
    """Whether any key or string inside `value` cannot be encoded as UTF-8."""
    if depth > 20:
        return False  # deeper nesting is refused by the structural checks anyway
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, Mapping):
        return any(
            _has_unencodable_text(k, depth + 1) or _has_unencodable_text(v, depth + 1)
            for k, v in value.items()
        )
    if isinstance(value, list):
        return any(_has_unencodable_text(v, depth + 1) for v in value)
    return False


def _definition_errors(where: str, definition: Any) -> list[FieldError]:
    if not isinstance(definition, Mapping):
        return [FieldError(where, "must be an object")]
    errors = [_unknown_field(where, name) for name in definition if name not in KNOWN_FIELDS]

    decision = definition.get("decision")
    if decision not in DECISIONS:
        errors.append(_choice_error(f"{where}.decision", decision, sorted(DECISIONS)))
    token_type = definition.get("tokenType")
    if token_type not in TOKEN_TYPES:
        errors.append(_choice_error(f"{where}.tokenType", token_type, sorted(TOKEN_TYPES)))
    else:
        errors.extend(_token_type_field_errors(where, token_type, definition))

    rules = definition.get("rules")
    if rules is not None:
        errors.extend(_rules_errors(f"{where}.rules", rules))
    return errors


def _unknown_field(where: str, name: Any) -> FieldError:
    # A wrong case ("runnerId", "teamname") is the usual cause; say which field was meant.
    meant = [known for known in KNOWN_FIELDS if known.lower() == str(name).lower()]
    hint = (
        f'; did you mean "{meant[0]}"?' if meant else f" (known fields: {', '.join(KNOWN_FIELDS)})"
    )
    return FieldError(f"{where}.{name}", f"unknown field{hint}")


def _choice_error(where: str, value: Any, choices: list[str]) -> FieldError:
    allowed = " or ".join(json_quote(choice) for choice in choices)
    if value is None:
        return FieldError(where, f"required: {allowed}")
    return FieldError(where, f"must be {allowed}, not {_show(value)}")


def _show(value: Any) -> str:
    """Render an offending value for a message, briefly."""
    text = json_quote(value) if isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _token_type_field_errors(
    where: str, token_type: str, definition: Mapping[str, Any]
) -> list[FieldError]:
    """Fields the token type requires, and fields that belong to another token type."""
    errors = [
        FieldError(
            f"{where}.{name}",
            f"only allowed when tokenType is {json_quote(owner)} "
            f"(this definition's is {json_quote(token_type)})",
        )
        for name, owner in _FIELD_TOKEN_TYPES.items()
        if owner != token_type and definition.get(name) is not None
    ]
    if token_type == "organization":
        errors.extend(_organization_errors(where, definition))
    else:
        name = SUBJECT_FIELDS[token_type]
        errors.extend(_subject_errors(f"{where}.{name}", token_type, definition.get(name)))
    return errors


def _subject_errors(where: str, token_type: str, value: Any) -> list[FieldError]:
    if value is None:
        return [FieldError(where, f"required when tokenType is {json_quote(token_type)}")]
    if not isinstance(value, str):
        return [FieldError(where, f"must be a string (a {token_type} name or pattern)")]
    return _pattern_errors(where, value)


def _organization_errors(where: str, definition: Mapping[str, Any]) -> list[FieldError]:
    permissions = definition.get("authorizedPermissions")
    role_id = definition.get("roleID")
    if permissions is None and role_id is None:
        return [
            FieldError(
                f"{where}.authorizedPermissions",
                'required when tokenType is "organization" '
                '(["admin"] or ["standard"]), unless roleID is given',
            )
        ]
    if permissions is not None and role_id is not None:
        return [
            FieldError(f"{where}.roleID", "give either roleID or authorizedPermissions, not both")
        ]
    if role_id is not None:
        if not isinstance(role_id, str) or not role_id:
            return [FieldError(f"{where}.roleID", "must be a non-empty string")]
        return []
    if not isinstance(permissions, list) or not permissions:
        return [
            FieldError(
                f"{where}.authorizedPermissions",
                'must be a non-empty list: ["admin"] or ["standard"]',
            )
        ]
    allowed = " or ".join(json_quote(p) for p in sorted(ORGANIZATION_PERMISSIONS))
    return [
        FieldError(f"{where}.authorizedPermissions[{i}]", f"must be {allowed}, not {_show(value)}")
        for i, value in enumerate(permissions)
        if value not in ORGANIZATION_PERMISSIONS
    ]


def _rules_errors(where: str, rules: Any) -> list[FieldError]:
    if not isinstance(rules, Mapping):
        return [
            FieldError(
                where, 'must be an object mapping claim paths to patterns, e.g. {"sub": "…"}'
            )
        ]
    errors: list[FieldError] = []
    for claim, patterns in rules.items():
        rule_where = f"{where}[{json_quote(str(claim))}]"
        if isinstance(claim, str):
            errors.extend(_checked(rule_where, parse_claim_path, claim))
        else:
            errors.append(FieldError(rule_where, "claim path must be a string"))
        if isinstance(patterns, str):
            errors.extend(_pattern_errors(rule_where, patterns))
        elif isinstance(patterns, list) and patterns:
            for i, pattern in enumerate(patterns):
                if isinstance(pattern, str):
                    errors.extend(_pattern_errors(f"{rule_where}[{i}]", pattern))
                else:
                    errors.append(FieldError(f"{rule_where}[{i}]", _NOT_A_PATTERN))
        elif isinstance(patterns, list):
            errors.append(FieldError(rule_where, "must list at least one pattern"))
        else:
            errors.append(FieldError(rule_where, _NOT_A_PATTERN))
    return errors


# Numbers and booleans are the usual mistake: claims are compared as text, so say how to write them.
_NOT_A_PATTERN: Final = (
    "must be a pattern string or a list of them "
    '(write numbers and booleans as strings, e.g. "1047" or "true")'
)


def _pattern_errors(where: str, pattern: str) -> list[FieldError]:
    return _checked(where, compile_pattern, pattern)


def _checked(where: str, compile_: Callable[[str], object], text: str) -> list[FieldError]:
    """Run a compiler from `policies.matching` and turn its PolicyError into a FieldError."""
    try:
        compile_(text)
    except PolicyError as error:
        return [FieldError(where, error.message)]
    return []


# --------------------------------------------------------------------------------------------
# Lint

_GITHUB_ISSUER_HOST: Final = "token.actions.githubusercontent.com"
_GITHUB_PIN_CLAIMS: Final = frozenset({("repository_owner_id",), ("repository_id",)})
# Claims that name who owns a repository or project on common issuers; a rule that pins one of
# them stands in for a pinned `sub`.
_IDENTITY_CLAIMS: Final = frozenset(
    {
        ("repository_owner_id",),
        ("repository_id",),
        ("repository_owner",),
        ("repository",),
        ("namespace_id",),
        ("namespace_path",),
        ("project_id",),
        ("project_path",),
        ("oidc.circleci.com/project-id",),
        ("organization_slug",),
        ("terraform_organization_id",),
        ("terraform_organization_name",),
        ("terraform_workspace_id",),
        ("kubernetes.io", "namespace"),
        ("kubernetes.io", "serviceaccount", "name"),
    }
)
_PULL_REQUEST_EVENTS: Final = ("pull_request", "pull_request_target")
_SEPARATORS: Final = frozenset("/:")


def is_github_issuer(issuer_url: str) -> bool:
    """Whether `issuer_url` is GitHub Actions' issuer, optionally with an enterprise slug path."""
    parts = urlsplit(issuer_url.strip())
    return (
        parts.scheme.lower() == "https"
        and parts.hostname == _GITHUB_ISSUER_HOST
        and not parts.query
        and not parts.fragment
        and re.fullmatch(r"(/[^/]+)?/?", parts.path) is not None
    )


def lint_definitions(
    raw: Sequence[Mapping[str, Any]], *, issuer_url: str, has_fixed_audience: bool
) -> list[LintWarning]:
    """Warn about valid definitions that are risky or useless; call only on validated input.

    Only allow definitions are linted for risk (a broad deny is harmless); any definition without
    rules is flagged because it never applies. It deliberately does not weigh one definition
    against another (e.g. an allow already shadowed by a deny).
    """
    github = is_github_issuer(issuer_url)
    warnings: list[LintWarning] = []
    for definition in compile_policy(raw).definitions:
        where = f"policies[{definition.index}]"
        if not definition.rules:
            warnings.append(
                LintWarning(
                    f"{where}.rules",
                    "no_rules",
                    f"this {definition.decision} has no rules, so it never applies",
                )
            )
        elif definition.decision == "allow":
            warnings.extend(_allow_warnings(where, definition, github, has_fixed_audience))
    return warnings


def _allow_warnings(
    where: str, definition: CompiledDefinition, github: bool, has_fixed_audience: bool
) -> list[LintWarning]:
    warnings: list[LintWarning] = []
    sub_rules = _rules_for(definition, ("sub",))
    broad = [p for p in map(_broad_sub_pattern, sub_rules) if p is not None]
    # Two sub rules must both match, so one pinned rule is enough to pin the definition.
    if sub_rules and len(broad) == len(sub_rules):
        warnings.append(
            LintWarning(
                f"{where}.rules[{json_quote(sub_rules[0].claim)}]",
                "sub_matches_any_repository",
                f"sub pattern {json_quote(broad[0].source)} can match any repository or project; "
                'pin the owner and name, e.g. "repo:acme/infra:*"',
            )
        )
    elif not sub_rules and not any(
        _pins(rule, min_segments=1) for rule in definition.rules if rule.path in _IDENTITY_CLAIMS
    ):
        warnings.append(
            LintWarning(
                f"{where}.rules",
                "sub_matches_any_repository",
                "no sub rule and no rule pinning the repository or project (e.g. repository_id, "
                "project_id): tokens from any repository or project of this issuer can match",
            )
        )

    aud_constrained = any(not _matches_everything(r) for r in _rules_for(definition, ("aud",)))
    if not has_fixed_audience and not aud_constrained:
        warnings.append(
            LintWarning(
                f"{where}.rules",
                "no_audience_constraint",
                "no aud rule, and this issuer accepts audiences other than this organization's: "
                "a token minted for another service could be exchanged here",
            )
        )

    if github and not any(
        all(p.is_literal for p in rule.patterns)
        for rule in definition.rules
        if rule.path in _GITHUB_PIN_CLAIMS
    ):
        warnings.append(
            LintWarning(
                f"{where}.rules",
                "github_not_pinned",
                "not pinned to repository_owner_id or repository_id: a repository or owner that "
                "is deleted and re-created under the same name would match",
            )
        )

    if definition.grants_admin and _could_match_pull_request(definition, github):
        warnings.append(
            LintWarning(
                where,
                "pull_request_admin",
                "grants an organization admin token and could match a pull_request event, "
                "whose workflow code anyone who opens a pull request controls",
            )
        )
    return warnings


def _rules_for(definition: CompiledDefinition, path: tuple[str, ...]) -> list[CompiledRule]:
    # Two spellings of one path ("sub" and "\"sub\"") are two rules that must both match.
    return [rule for rule in definition.rules if rule.path == path]


def _pinned_segments(pattern: Pattern) -> float:
    """How many leading `/`- or `:`-terminated segments every value matching `pattern` shares."""
    if pattern.is_literal:
        return float("inf")
    return sum(1 for char in pattern.literal_prefix if char in _SEPARATORS)


def _pins(rule: CompiledRule, *, min_segments: int) -> bool:
    return all(_pinned_segments(p) >= min_segments for p in rule.patterns)


def _broad_sub_pattern(rule: CompiledRule) -> Pattern | None:
    """The first sub pattern whose first wildcard comes before the owner/project is pinned.

    Subjects start with a kind and then the owner (`repo:OWNER/`, `project_path:GROUP/`,
    `organization:ORG:`, `org/ID/`), so two leading segments must be literal; a Kubernetes
    subject (`system:serviceaccount:NAMESPACE:`) needs three.
    """
    for pattern in rule.patterns:
        needed = 3 if pattern.literal_prefix.startswith("system:serviceaccount:") else 2
        if _pinned_segments(pattern) < needed:
            return pattern
    return None


def _matches_everything(rule: CompiledRule) -> bool:
    return any(p.elements == (Wildcard.ANY,) for p in rule.patterns)


def _could_match_pull_request(definition: CompiledDefinition, github: bool) -> bool:
    """Whether the claims of a GitHub pull_request(_target) run could satisfy the definition.

    An event_name rule decides on its own: a pull request job that uses an environment has an
    `environment:` subject, so a sub rule alone cannot exclude it, while `event_name` always
    names the event. Without one, the sub rules decide, through GitHub's pull request subject
    `repo:OWNER/NAME:pull_request`. An issuer not recognisable as GitHub's (GitHub Enterprise
    Server has its own URL) is only flagged on such a GitHub-shaped rule, never for lacking one.
    """
    event_rules = _rules_for(definition, ("event_name",))
    if event_rules:
        return all(
            any(p.matches(event) for p in rule.patterns for event in _PULL_REQUEST_EVENTS)
            for rule in event_rules
        )
    sub_rules = _rules_for(definition, ("sub",))
    if not sub_rules:
        return github
    github_shaped = github or any(
        p.literal_prefix.startswith("repo:") for rule in sub_rules for p in rule.patterns
    )
    return github_shaped and all(
        any(_intersects(p, _PULL_REQUEST_SUBJECT) for p in rule.patterns) for rule in sub_rules
    )


class _Atom(NamedTuple):
    """One step of a simple regular language: a character class, once or repeated (0..n)."""

    chars: frozenset[str]
    negated: bool  # the class is every character *except* `chars`
    repeated: bool


_ANY_CHAR: Final = _Atom(frozenset(), negated=True, repeated=False)


def _literal_atoms(text: str) -> list[_Atom]:
    return [_Atom(frozenset(char), negated=False, repeated=False) for char in text]


def _pattern_atoms(pattern: Pattern) -> list[_Atom]:
    atoms: list[_Atom] = []
    for element in pattern.elements:
        if element is Wildcard.ANY:
            atoms.append(_ANY_CHAR._replace(repeated=True))
        elif element is Wildcard.ONE:
            atoms.append(_ANY_CHAR)
        else:
            atoms.extend(_literal_atoms(str(element)))
    return atoms


def _name_atoms() -> list[_Atom]:
    # One or more characters of a GitHub owner or repository name (never '/' or ':').
    name_char = _Atom(_SEPARATORS, negated=True, repeated=False)
    return [name_char, name_char._replace(repeated=True)]


# `repo:OWNER/NAME:pull_request`, GitHub's subject for pull_request(_target) runs.
_PULL_REQUEST_SUBJECT: Final = (
    _literal_atoms("repo:")
    + _name_atoms()
    + _literal_atoms("/")
    + _name_atoms()
    + _literal_atoms(":pull_request")
)


def _chars_overlap(a: _Atom, b: _Atom) -> bool:
    if a.negated and b.negated:
        return True  # two co-finite classes always share a character
    if not a.negated and not b.negated:
        return bool(a.chars & b.chars)
    positive, negative = (b, a) if a.negated else (a, b)
    return bool(positive.chars - negative.chars)


def _intersects(pattern: Pattern, language: Sequence[_Atom]) -> bool:
    """Whether some string matches both `pattern` and `language` (product-automaton search)."""
    atoms = _pattern_atoms(pattern)
    end = (len(atoms), len(language))
    stack = [(0, 0)]
    seen: set[tuple[int, int]] = set()
    while stack:
        state = stack.pop()
        if state == end:
            return True
        if state in seen:
            continue
        seen.add(state)
        i, j = state
        a = atoms[i] if i < len(atoms) else None
        b = language[j] if j < len(language) else None
        # A repeated atom may match nothing: move past it without consuming a character.
        if a is not None and a.repeated:
            stack.append((i + 1, j))
        if b is not None and b.repeated:
            stack.append((i, j + 1))
        if a is not None and b is not None and _chars_overlap(a, b):
            stack.append((i if a.repeated else i + 1, j if b.repeated else j + 1))
    return False
