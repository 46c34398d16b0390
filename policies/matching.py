"""Trust-policy matching: compile policy definitions once, evaluate them against verified claims.

Pure module (no Django): it knows the `AuthPolicyDefinition` JSON shape, the pattern and claim-path
syntax of product spec §5 and the deny-wins / first-allow-grants evaluation order. It does not
verify tokens, look up teams/users/runners, or decide whether a definition is *wise* (that is
`policies.validation`); it only answers "which definition decides this request, and why".
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, NewType

from policies.patterns import (
    ClaimPathError,
    Pattern,
    PatternError,
    PolicyError,
    claim_values,
    compile_pattern,
    parse_claim_path,
)

__all__ = [
    "DECISIONS",
    "MAX_DEFINITIONS",
    "ORGANIZATION_PERMISSIONS",
    "SUBJECT_FIELDS",
    "TOKEN_TYPES",
    "CompiledDefinition",
    "CompiledPolicy",
    "CompiledRule",
    "DefinitionTrace",
    "Evaluation",
    "Grant",
    "RuleTrace",
    "TokenRequest",
    "VerifiedClaims",
    "compile_policy",
    "json_quote",
]

VerifiedClaims = NewType("VerifiedClaims", Mapping[str, Any])
"""Claims of a subject token whose signature, issuer, audience and lifetime were verified.

Evaluation accepts only this type so that a raw, unverified payload cannot reach it by accident;
only the verifier (and the simulator, for pasted claims it labels as such) should construct it.
"""

Decision = Literal["allow", "deny"]
Reason = Literal["allowed", "denied_by_policy", "no_matching_policy"]

DECISIONS: Final = frozenset({"allow", "deny"})
TOKEN_TYPES: Final = frozenset({"organization", "team", "personal", "runner"})
ORGANIZATION_PERMISSIONS: Final = frozenset({"admin", "standard"})
MAX_DEFINITIONS: Final = 1000
# The definition field that names what a team/personal/runner token acts as, by token type.
SUBJECT_FIELDS: Final[Mapping[str, str]] = {
    "team": "teamName",
    "personal": "userLogin",
    "runner": "runnerID",
}
ADMIN: Final = "admin"
STANDARD: Final = "standard"


# --------------------------------------------------------------------------------------------
# Requests, results and traces


@dataclass(frozen=True)
class TokenRequest:
    """What the caller asks for: token type plus scope.

    `scope` is None or "admin" for organization tokens, and the team name, user login or runner
    name for team, personal and runner tokens. An empty string is treated like None.
    """

    token_type: str
    scope: str | None


@dataclass(frozen=True)
class Grant:
    """What an allow grants: the identity the minted token acts as and, for org tokens, its role."""

    definition_index: int
    token_type: str
    team: str | None
    user: str | None
    runner: str | None
    permission: str | None  # organization: "admin", "standard" or a roleID


@dataclass(frozen=True)
class RuleTrace:
    """How one rule fared: the values the claim held and the first pattern that matched one."""

    claim: str  # the path as written in the definition
    patterns: tuple[str, ...]
    values: tuple[str, ...] | None  # None: claim missing, null or an object
    matched: bool
    matched_pattern: str | None
    matched_value: str | None


@dataclass(frozen=True)
class DefinitionTrace:
    """How one definition fared against the request and the claims (every rule is evaluated)."""

    index: int
    decision: Decision
    token_type: str
    fits_request: bool
    fit_failure: str | None  # why the token type / team / user / runner / scope does not fit
    applies: bool
    rules: tuple[RuleTrace, ...]

    @property
    def failure(self) -> str | None:
        """One line saying why the definition does not apply, or None when it does."""
        if self.applies:
            return None
        if not self.rules:
            return "no rules (a definition without rules never applies)"
        if self.fit_failure is not None:
            return self.fit_failure
        failed = ", ".join(json_quote(r.claim) for r in self.rules if not r.matched)
        return f"rules not matched: {failed}"


def json_quote(text: str) -> str:
    """Quote `text` like a JSON string, as error paths and messages show claim names."""
    return json.dumps(text, ensure_ascii=False)


@dataclass(frozen=True)
class Evaluation:
    """The outcome of evaluating a policy for one request, with the trace that explains it."""

    decision: Decision
    reason: Reason
    deciding_index: int | None
    grant: Grant | None
    trace: tuple[DefinitionTrace, ...] = ()

    def trace_json(self) -> list[dict[str, Any]]:
        """Return the trace as JSON-serialisable dicts (for the simulator and exchange events)."""
        return [
            {
                "index": d.index,
                "decision": d.decision,
                "token_type": d.token_type,
                "fits_request": d.fits_request,
                "fit_failure": d.fit_failure,
                "applies": d.applies,
                "failure": d.failure,
                "rules": [
                    {
                        "claim": r.claim,
                        "patterns": list(r.patterns),
                        "values": None if r.values is None else list(r.values),
                        "matched": r.matched,
                        "matched_pattern": r.matched_pattern,
                        "matched_value": r.matched_value,
                    }
                    for r in d.rules
                ],
            }
            for d in self.trace
        ]


# --------------------------------------------------------------------------------------------
# Compiled policy


@dataclass(frozen=True)
class CompiledRule:
    """One rule: a parsed claim path and its compiled patterns (any of them may match)."""

    claim: str
    path: tuple[str, ...]
    patterns: tuple[Pattern, ...]

    def first_match(self, values: tuple[str, ...] | None) -> tuple[Pattern, str] | None:
        """Return the first (pattern, value) pair that matches, in pattern order, or None."""
        for pattern in self.patterns:
            for value in values or ():
                if pattern.matches(value):
                    return pattern, value
        return None

    def matches(self, claims: Mapping[str, Any]) -> bool:
        """Whether any pattern matches any of the claim's values."""
        return self.first_match(claim_values(claims, self.path)) is not None

    def trace(self, claims: Mapping[str, Any]) -> RuleTrace:
        """Evaluate the rule and keep every detail an operator needs to see why it failed."""
        values = claim_values(claims, self.path)
        hit = self.first_match(values)
        return RuleTrace(
            claim=self.claim,
            patterns=tuple(p.source for p in self.patterns),
            values=values,
            matched=hit is not None,
            matched_pattern=None if hit is None else hit[0].source,
            matched_value=None if hit is None else hit[1],
        )


@dataclass(frozen=True)
class CompiledDefinition:
    """One definition, compiled: everything evaluation needs, with no parsing left to do."""

    index: int
    decision: Decision
    token_type: str
    subject: Pattern | None  # teamName / userLogin / runnerID pattern
    permission: str | None  # organization only: "admin", "standard" or a roleID
    rules: tuple[CompiledRule, ...]

    @property
    def grants_admin(self) -> bool:
        """Whether this (organization) definition can grant an admin token."""
        return self.permission == ADMIN

    def fit_failure(self, request: TokenRequest) -> str | None:
        """Return why this definition does not fit the request's token type and scope, or None."""
        if self.token_type != request.token_type:
            return (
                f"tokenType is {json_quote(self.token_type)}, not {json_quote(request.token_type)}"
            )
        scope = request.scope or None
        if self.token_type == "organization":
            if scope not in (None, ADMIN):
                return f"organization tokens have no scope {json_quote(scope or '')}"
            # A deny blocks every organization request; only an allow must grant what is asked.
            if scope == ADMIN and self.decision == "allow" and not self.grants_admin:
                return "admin scope requested but this definition does not grant admin"
            return None
        field_name = SUBJECT_FIELDS[self.token_type]
        if scope is None:
            return f"the request names no {self.token_type} ({field_name} cannot match)"
        assert self.subject is not None  # compile_policy guarantees it for these token types
        if not self.subject.matches(scope):
            return (
                f"{field_name} {json_quote(self.subject.source)} does not match {json_quote(scope)}"
            )
        return None

    def applies_fast(self, claims: Mapping[str, Any], request: TokenRequest) -> bool:
        """Whether the definition applies, stopping at the first failure (the hot path)."""
        return (
            bool(self.rules)
            and self.fit_failure(request) is None
            and all(rule.matches(claims) for rule in self.rules)
        )

    def trace(self, claims: Mapping[str, Any], request: TokenRequest) -> DefinitionTrace:
        """Evaluate fit and every rule, for the trace."""
        fit_failure = self.fit_failure(request)
        rules = tuple(rule.trace(claims) for rule in self.rules)
        return DefinitionTrace(
            index=self.index,
            decision=self.decision,
            token_type=self.token_type,
            fits_request=fit_failure is None,
            fit_failure=fit_failure,
            applies=bool(rules) and fit_failure is None and all(r.matched for r in rules),
            rules=rules,
        )

    def grant(self, request: TokenRequest) -> Grant:
        """What this allow grants for a request it fits.

        Admin is opt-in: an organization request without the `admin` scope gets a standard
        token even from a definition that could grant admin (least privilege; the pulumi CLI
        always sends an empty scope).
        """
        scope = request.scope or None
        permission = self.permission
        if self.token_type == "organization" and permission == ADMIN and scope != ADMIN:
            permission = "standard"
        return Grant(
            definition_index=self.index,
            token_type=self.token_type,
            team=scope if self.token_type == "team" else None,
            user=scope if self.token_type == "personal" else None,
            runner=scope if self.token_type == "runner" else None,
            permission=permission,
        )


def _conclude(
    first_deny: CompiledDefinition | None,
    first_allow: CompiledDefinition | None,
    request: TokenRequest,
    trace: tuple[DefinitionTrace, ...],
) -> Evaluation:
    """Turn the first applicable deny and allow into the decision (deny wins)."""
    if first_deny is not None:
        return Evaluation("deny", "denied_by_policy", first_deny.index, None, trace)
    if first_allow is not None:
        return Evaluation("allow", "allowed", first_allow.index, first_allow.grant(request), trace)
    return Evaluation("deny", "no_matching_policy", None, None, trace)


def _first(definitions: Iterable[CompiledDefinition]) -> CompiledDefinition | None:
    return next(iter(definitions), None)


@dataclass(frozen=True)
class _PrefixIndex:
    """Definitions keyed by the literal prefix their rule on `path` requires of the claim value."""

    path: tuple[str, ...]
    lengths: tuple[int, ...]  # the distinct prefix lengths, ascending
    by_prefix: Mapping[str, tuple[CompiledDefinition, ...]]

    def candidates(self, claims: Mapping[str, Any]) -> Iterator[CompiledDefinition]:
        """Every definition whose keyed rule could match one of the claim's values."""
        for value in claim_values(claims, self.path) or ():
            for length in self.lengths:
                if length > len(value):
                    break
                yield from self.by_prefix.get(value[:length], ())


@dataclass(frozen=True)
class _TypeGroup:
    """The definitions of one token type that can apply, indexed to skip the hopeless ones.

    A definition with a rule whose every pattern starts with literal text (`repo:acme/infra:*`,
    `704117`) can only apply when the claim's value starts with that text, so it is filed under
    that text and looked up with a few dictionary probes; only the others are always tried. This
    is what keeps `decide` cost flat for a policy of many per-repository definitions.
    """

    always: tuple[CompiledDefinition, ...]
    indexes: tuple[_PrefixIndex, ...]

    def candidates(self, claims: Mapping[str, Any]) -> list[CompiledDefinition]:
        """The definitions that might apply, in policy order."""
        found = {d.index: d for d in self.always}
        for index in self.indexes:
            found.update((d.index, d) for d in index.candidates(claims))
        return [found[i] for i in sorted(found)]


def _group(definitions: Iterable[CompiledDefinition]) -> _TypeGroup:
    always: list[CompiledDefinition] = []
    keyed: dict[tuple[str, ...], dict[str, list[CompiledDefinition]]] = {}
    for definition in definitions:
        if not definition.rules:
            continue  # never applies
        rule = next(
            (r for r in definition.rules if all(p.literal_prefix for p in r.patterns)), None
        )
        if rule is None:
            always.append(definition)
            continue
        by_prefix = keyed.setdefault(rule.path, {})
        for prefix in {p.literal_prefix for p in rule.patterns}:
            by_prefix.setdefault(prefix, []).append(definition)
    indexes = tuple(
        _PrefixIndex(
            path,
            tuple(sorted({len(prefix) for prefix in by_prefix})),
            {prefix: tuple(found) for prefix, found in by_prefix.items()},
        )
        for path, by_prefix in keyed.items()
    )
    return _TypeGroup(tuple(always), indexes)


_NO_DEFINITIONS: Final = _TypeGroup((), ())


@dataclass(frozen=True)
class CompiledPolicy:
    """An ordered list of compiled definitions, compiled once per policy version."""

    definitions: tuple[CompiledDefinition, ...]
    _groups: Mapping[str, _TypeGroup] = field(compare=False, repr=False)

    def evaluate(self, claims: VerifiedClaims, request: TokenRequest) -> Evaluation:
        """Decide the request and trace every definition and rule (simulator, exchange events)."""
        trace = tuple(d.trace(claims, request) for d in self.definitions)
        applicable = [d for d, t in zip(self.definitions, trace, strict=True) if t.applies]
        return _conclude(
            _first(d for d in applicable if d.decision == "deny"),
            _first(d for d in applicable if d.decision == "allow"),
            request,
            trace,
        )

    def decide(self, claims: VerifiedClaims, request: TokenRequest) -> Evaluation:
        """Decide the request like evaluate(), without a trace, touching only what it must.

        Only definitions of the requested token type that the prefix index cannot rule out are
        tried, each stopping at its first failing check; denies first, since any applicable deny
        wins, then allows until the first that applies.
        """
        candidates = self._groups.get(request.token_type, _NO_DEFINITIONS).candidates(claims)
        return _conclude(
            _first(
                d for d in candidates if d.decision == "deny" and d.applies_fast(claims, request)
            ),
            _first(
                d for d in candidates if d.decision == "allow" and d.applies_fast(claims, request)
            ),
            request,
            (),
        )


def _compile_definition(index: int, definition: Mapping[str, Any]) -> CompiledDefinition:
    where = f"policies[{index}]"
    if not isinstance(definition, Mapping):
        raise PolicyError("must be an object", where)
    decision = definition.get("decision")
    if decision not in DECISIONS:
        raise PolicyError('must be "allow" or "deny"', f"{where}.decision")
    token_type = definition.get("tokenType")
    if token_type not in TOKEN_TYPES:
        raise PolicyError(f"must be one of {sorted(TOKEN_TYPES)}", f"{where}.tokenType")

    # `.get` on purpose: Pulumi's API may echo absent optional fields as null, and validation
    # treats null as absent too, so that a read-modify-write round trip is accepted.
    subject: Pattern | None = None
    permission: str | None = None
    if token_type == "organization":
        permissions = definition.get("authorizedPermissions")
        role_id = definition.get("roleID")
        if isinstance(permissions, list) and permissions:
            if not set(permissions) <= ORGANIZATION_PERMISSIONS:
                raise PolicyError(
                    'values must be "admin" or "standard"', f"{where}.authorizedPermissions"
                )
            permission = ADMIN if ADMIN in permissions else STANDARD
        elif isinstance(role_id, str) and role_id:
            permission = role_id
        else:
            raise PolicyError("authorizedPermissions or roleID is required", where)
    else:
        subject_field = SUBJECT_FIELDS[token_type]
        raw_subject = definition.get(subject_field)
        if not isinstance(raw_subject, str):
            raise PolicyError(
                f"required when tokenType is {json_quote(token_type)}", f"{where}.{subject_field}"
            )
        try:
            subject = compile_pattern(raw_subject)
        except PolicyError as error:
            raise error.at(f"{where}.{subject_field}") from None

    raw_rules = definition.get("rules")
    if raw_rules is None:
        raw_rules = {}  # a definition without rules is valid; it just never applies
    if not isinstance(raw_rules, Mapping):
        raise PolicyError("must be an object of claim path to pattern(s)", f"{where}.rules")
    rules = tuple(
        _compile_rule(f"{where}.rules[{json_quote(str(claim))}]", claim, patterns)
        for claim, patterns in raw_rules.items()
    )
    return CompiledDefinition(index, decision, token_type, subject, permission, rules)


def _compile_rule(where: str, claim: Any, raw_patterns: Any) -> CompiledRule:
    if not isinstance(claim, str):
        raise ClaimPathError("claim path must be a string", where)
    sources = [raw_patterns] if isinstance(raw_patterns, str) else raw_patterns
    if not isinstance(sources, list) or not sources:
        raise PatternError("must be a pattern or a non-empty list of patterns", where)
    try:
        path = parse_claim_path(claim)
    except PolicyError as error:
        raise error.at(where) from None
    patterns: list[Pattern] = []
    for position, source in enumerate(sources):
        pattern_where = where if isinstance(raw_patterns, str) else f"{where}[{position}]"
        if not isinstance(source, str):
            raise PatternError("must be a string", pattern_where)
        try:
            patterns.append(compile_pattern(source))
        except PolicyError as error:
            raise error.at(pattern_where) from None
    return CompiledRule(claim, path, tuple(patterns))


def compile_policy(definitions: Sequence[Mapping[str, Any]]) -> CompiledPolicy:
    """Compile an ordered list of definitions; raises PolicyError on the first one it cannot read.

    It deliberately does not report every problem nor reject unknown fields: callers run
    `policies.validation.validate_definitions` first, which does, with operator-facing messages.
    """
    if isinstance(definitions, str | bytes) or not isinstance(definitions, Sequence):
        raise PolicyError("must be a list of policy definitions", "policies")
    if len(definitions) > MAX_DEFINITIONS:
        raise PolicyError(f"at most {MAX_DEFINITIONS:,} definitions are allowed", "policies")
    compiled = tuple(_compile_definition(i, d) for i, d in enumerate(definitions))

    groups = {t: _group(d for d in compiled if d.token_type == t) for t in TOKEN_TYPES}
    return CompiledPolicy(compiled, groups)
