"""Forms of the policy pages: one definition with its rule rows, raw JSON, simulator, replay.

The forms only turn what the browser sends into the `AuthPolicyDefinition` JSON shape (and back)
and place the service's errors next to the inputs they concern. Whether a definition is valid is
decided by `policies.services.policy_check`, never here: a form accepts anything the service may
refuse, so there is one set of rules and one set of messages.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from django import forms
from django.http import QueryDict

from policies.matching import ORGANIZATION_PERMISSIONS, SUBJECT_FIELDS
from policies.samples import samples
from policies.validation import FieldError

EXTRA_RULE_ROWS: Final = 3
MAX_RULE_ROWS: Final = 500
MAX_TOKEN_CHARS: Final = 32 * 1024

TOKEN_TYPE_CHOICES: Final = [
    ("organization", "Organization token"),
    ("team", "Team token"),
    ("personal", "Personal token"),
    ("runner", "Runner token"),
]
DECISION_CHOICES: Final = [
    ("allow", "Allow: grant the token when every rule matches"),
    ("deny", "Deny: refuse, whatever any allow says"),
]
PERMISSION_CHOICES: Final = [(p, p) for p in sorted(ORGANIZATION_PERMISSIONS)]
# The form field that edits each definition field.
FORM_FIELDS: Final[Mapping[str, str]] = {
    "decision": "decision",
    "tokenType": "token_type",
    "teamName": "team_name",
    "userLogin": "user_login",
    "runnerID": "runner_id",
    "authorizedPermissions": "permissions",
    "roleID": "role_id",
}
_SUBJECT_FORM_FIELDS: Final = {
    token_type: FORM_FIELDS[name] for token_type, name in SUBJECT_FIELDS.items()
}
_PATH: Final = re.compile(r"policies\[(\d+)\](?:\.([A-Za-z_]+))?(.*)", re.DOTALL)


@dataclass(frozen=True)
class Location:
    """Where an error or warning path (`policies[2].rules["sub"][0]`) points inside a policy."""

    index: int | None  # None: the policy as a whole
    name: str | None  # the definition field, None: the definition as a whole
    claim: str | None  # for rules: the claim path of the rule


def locate(path: str) -> Location:
    """Split a validation or lint path into definition index, field name and rule claim."""
    found = _PATH.fullmatch(path)
    if found is None:
        return Location(None, None, None)
    index, name, rest = int(found[1]), found[2], found[3]
    claim = None
    if name == "rules" and rest.startswith("["):
        try:
            claim, _ = json.JSONDecoder().raw_decode(rest, 1)
        except ValueError:
            claim = None
    return Location(index, name, claim if isinstance(claim, str) else None)


def pretty_json(value: Any) -> str:
    """JSON as the editor shows and diffs it: indented, keys in their saved order."""
    try:
        # \u escapes only for what is not text (a lone surrogate), so the page can show it.
        return json.dumps(value, indent=2, ensure_ascii=not is_text(value))
    except (RecursionError, ValueError):
        return "(too deeply nested to show)"


def is_text(value: Any) -> bool:
    """Whether a JSON value's strings are all real text (no lone surrogate such as \\ud800).

    JSON may escape half a surrogate pair; such a string cannot be encoded, stored as text or
    shown on a page, so it is refused as input rather than failing later.
    """
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, RecursionError, ValueError):
        return False
    return True


def _parse_json(text: str, what: str) -> Any:
    try:
        value = json.loads(text)
        readable = is_text(value)
    except json.JSONDecodeError as exc:
        raise forms.ValidationError(
            f"{what} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
        ) from exc
    except RecursionError as exc:
        raise forms.ValidationError(f"{what} is nested too deeply.") from exc
    if not readable:
        raise forms.ValidationError(
            f"{what} contains an unpaired surrogate escape (like \\ud800), which is not text."
        )
    return value


def _definitions_json(text: str) -> Any:
    """Parse pasted definitions; the API's `{"policies": [...]}` body is accepted as well."""
    value = _parse_json(text, "This")
    if isinstance(value, dict) and "policies" in value:
        return value["policies"]
    return value


# --------------------------------------------------------------------------------------------
# One definition


@dataclass
class RuleRow:
    """One claim → patterns row of the definition form (patterns one per line)."""

    claim: str = ""
    patterns: str = ""
    errors: list[str] = field(default_factory=list)

    @property
    def pattern_list(self) -> list[str]:
        return [line.strip() for line in self.patterns.splitlines() if line.strip()]

    @property
    def is_blank(self) -> bool:
        return not self.claim.strip() and not self.pattern_list


def _rows_from_rules(rules: Any) -> list[RuleRow]:
    if not isinstance(rules, Mapping):
        return []
    rows = []
    for claim, patterns in rules.items():
        listed = patterns if isinstance(patterns, list) else [patterns]
        rows.append(RuleRow(str(claim), "\n".join(str(p) for p in listed)))
    return rows


def _rows_from_data(data: QueryDict | Mapping[str, Any]) -> list[RuleRow]:
    try:
        count = min(int(data.get("rule_rows", "0")), MAX_RULE_ROWS)
    except (TypeError, ValueError):
        count = 0
    rows = [
        RuleRow(str(data.get(f"rule-{n}-claim", "")), str(data.get(f"rule-{n}-patterns", "")))
        for n in range(count)
    ]
    return [row for row in rows if not row.is_blank]


class DefinitionForm(forms.Form):
    """Add or edit one definition; `key` keeps the HTML ids of two forms on one page apart."""

    revision = forms.IntegerField(
        widget=forms.HiddenInput,
        min_value=0,
        error_messages={"required": "The form lost the draft revision: reload the page."},
    )
    decision = forms.ChoiceField(choices=DECISION_CHOICES, widget=forms.RadioSelect)
    token_type = forms.ChoiceField(
        label="Token type",
        choices=TOKEN_TYPE_CHOICES,
        help_text="What the exchange mints when this allow applies.",
    )
    team_name = forms.CharField(
        label="Team name (team tokens)",
        required=False,
        max_length=200,
        help_text="The team the token acts as; a pattern like platform-* matches several.",
    )
    user_login = forms.CharField(
        label="User login (personal tokens)",
        required=False,
        max_length=200,
        help_text="The member whose personal token is minted.",
    )
    runner_id = forms.CharField(
        label="Runner (runner tokens)",
        required=False,
        max_length=200,
        help_text="The runner name, or a pattern like deploy-*.",
    )
    permissions = forms.MultipleChoiceField(
        label="Permissions (organization tokens)",
        choices=PERMISSION_CHOICES,
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="admin can change everything in the organization; standard is a member's access.",
    )
    role_id = forms.CharField(
        label="Or a custom role id (organization tokens)",
        required=False,
        max_length=200,
        help_text="Instead of the permissions above.",
    )
    note = forms.CharField(
        label="Note for the version history (optional)", required=False, max_length=300
    )

    def __init__(
        self,
        data: QueryDict | Mapping[str, Any] | None = None,
        *,
        key: str,
        definition: Mapping[str, Any] | None = None,
        revision: int | None = None,
    ) -> None:
        initial: dict[str, Any] = {"revision": revision, "decision": "allow"}
        if definition is not None:
            initial.update(
                decision=definition.get("decision"),
                token_type=definition.get("tokenType"),
                team_name=definition.get("teamName", ""),
                user_login=definition.get("userLogin", ""),
                runner_id=definition.get("runnerID", ""),
                permissions=definition.get("authorizedPermissions") or [],
                role_id=definition.get("roleID", ""),
            )
        super().__init__(data, initial=initial, auto_id=f"{key}-%s")
        self.key = key
        self.rows = (
            _rows_from_data(data)
            if data is not None
            else _rows_from_rules(definition.get("rules") if definition else None)
        )

    @property
    def display_rows(self) -> list[RuleRow]:
        """The filled rows, then empty ones to add rules without JavaScript."""
        return self.rows + [RuleRow() for _ in range(EXTRA_RULE_ROWS)]

    def subject_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in _SUBJECT_FORM_FIELDS.values()]

    def clean(self) -> dict[str, Any] | None:
        cleaned = super().clean()
        seen: set[str] = set()
        for row in self.rows:
            claim = row.claim.strip()
            if not claim:
                row.errors.append("Give the claim path these patterns apply to, e.g. sub.")
            elif not row.pattern_list:
                row.errors.append("Give at least one pattern, one per line.")
            elif claim in seen:
                row.errors.append(
                    "This claim already has a row above: put all its patterns in that row "
                    "(any one of them may match)."
                )
            seen.add(claim)
        if any(row.errors for row in self.rows):
            raise forms.ValidationError("Some rule rows are incomplete: see the rules below.")
        return cleaned

    def definition(self) -> dict[str, Any]:
        """The definition to save (after `is_valid()`); empty inputs and bad rows are left out."""
        data = self.cleaned_data
        result: dict[str, Any] = {"decision": data["decision"], "tokenType": data["token_type"]}
        for token_type, name in SUBJECT_FIELDS.items():
            value = data[_SUBJECT_FORM_FIELDS[token_type]].strip()
            if value:
                result[name] = value
        if data["permissions"]:
            result["authorizedPermissions"] = list(data["permissions"])
        if data["role_id"].strip():
            result["roleID"] = data["role_id"].strip()
        rules: dict[str, Any] = {}
        for row in self.rows:
            if row.errors:
                continue
            patterns = row.pattern_list
            rules[row.claim.strip()] = patterns[0] if len(patterns) == 1 else patterns
        result["rules"] = rules
        return result

    def partial_definition(self) -> dict[str, Any] | None:
        """When only rule rows are incomplete: the definition without them, to check the rest."""
        if self.is_bound and not any(name in self.errors for name in self.fields):
            return self.definition()
        return None

    def add_policy_errors(self, errors: Iterable[FieldError], index: int) -> None:
        """Show the service's errors: this definition's next to their inputs, others on top."""
        for error in errors:
            where = locate(error.path)
            if where.index != index:
                self.add_error(None, _elsewhere(error, where))
                continue
            if where.name is not None and where.name in FORM_FIELDS:
                self.add_error(FORM_FIELDS[where.name], error.message)
                continue
            row = next((r for r in self.rows if r.claim.strip() == where.claim), None)
            if row is not None:
                row.errors.append(error.message)
            elif where.name == "rules":
                self.add_error(None, f"Rules: {error.message}")
            else:
                self.add_error(None, error.message)


def _elsewhere(error: FieldError, where: Location) -> str:
    if where.index is None:
        return error.message
    return f"Definition {where.index + 1} ({error.path}): {error.message}"


# --------------------------------------------------------------------------------------------
# Whole policy, small actions


class VersionForm(forms.Form):
    """The version a button's page showed, so a stale click is refused rather than applied."""

    version = forms.IntegerField(widget=forms.HiddenInput, min_value=1)


class RevisionForm(forms.Form):
    """The draft revision a button's page showed, so a stale click is refused, not applied."""

    revision = forms.IntegerField(widget=forms.HiddenInput, min_value=0)


class PublishForm(RevisionForm):
    confirm = forms.BooleanField(required=False)


class RawForm(forms.Form):
    """Replace every definition at once with pasted JSON (a list of definitions)."""

    revision = forms.IntegerField(
        widget=forms.HiddenInput,
        min_value=0,
        error_messages={"required": "The form lost the draft revision: reload the page."},
    )
    definitions = forms.CharField(
        label="Definitions (JSON)",
        widget=forms.Textarea(attrs={"rows": 18, "spellcheck": "false", "class": "code"}),
        strip=False,
        help_text='A JSON list of definitions, in order (the API\'s {"policies": [...]} works '
        "too). Error locations count from zero: policies[0] is the first definition.",
    )
    note = forms.CharField(
        label="Note for the version history (optional)", required=False, max_length=300
    )

    def clean_definitions(self) -> Any:
        return _definitions_json(self.cleaned_data["definitions"])

    def add_policy_errors(self, errors: Sequence[FieldError]) -> None:
        for error in errors:
            self.add_error("definitions", str(error))


# --------------------------------------------------------------------------------------------
# Simulator and replay


class DraftField(forms.CharField):
    """A textarea of definitions JSON (a draft the simulator or replay evaluates)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault(
            "widget", forms.Textarea(attrs={"rows": 12, "spellcheck": "false", "class": "code"})
        )
        super().__init__(strip=False, **kwargs)


class SimulateForm(forms.Form):
    """Claims (pasted, from a sample, or from a token) plus a request, against current or draft."""

    source = forms.ChoiceField(
        label="Evaluate",
        choices=[
            ("sample", "a sample claim set"),
            ("claims", "claims I paste (JSON object)"),
            ("token", "a token I paste (JWT)"),
        ],
        widget=forms.RadioSelect,
        initial="sample",
    )
    sample = forms.ChoiceField(label="Sample claim set", required=False)
    claims = forms.CharField(
        label="Claims (JSON object)",
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false", "class": "code"}),
    )
    token = forms.CharField(
        label="Token (JWT)",
        required=False,
        max_length=MAX_TOKEN_CHARS,
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false", "class": "code"}),
        help_text="Pasted tokens are decoded here only; they are not stored or exchanged.",
    )
    check_signature = forms.BooleanField(
        label="Check the token's signature with this issuer's keys", required=False, initial=True
    )
    token_type = forms.ChoiceField(
        label="Requested token type", choices=TOKEN_TYPE_CHOICES, initial="organization"
    )
    scope = forms.CharField(
        label="Requested scope",
        required=False,
        max_length=300,
        help_text="Organization: empty or admin. Team: team:NAME. Personal: user:LOGIN. "
        "Runner: runner:NAME.",
    )
    policy_source = forms.ChoiceField(
        label="Policy",
        choices=[("current", "the current policy"), ("draft", "the draft below")],
        widget=forms.RadioSelect,
        initial="current",
    )
    draft = DraftField(label="Draft definitions (JSON)", required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["sample"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [(s.name, s.label) for s in samples()]

    def clean(self) -> dict[str, Any] | None:
        cleaned = super().clean() or {}
        source = cleaned.get("source")
        if source == "sample" and not cleaned.get("sample"):
            self.add_error("sample", "Choose a sample claim set.")
        elif source == "claims":
            text = cleaned.get("claims", "").strip()
            if not text:
                self.add_error("claims", "Paste the claims as a JSON object.")
            else:
                try:
                    claims = _parse_json(text, "The claims")
                except forms.ValidationError as exc:
                    self.add_error("claims", exc)
                else:
                    if isinstance(claims, dict):
                        cleaned["claims_value"] = claims
                    else:
                        self.add_error("claims", 'The claims must be a JSON object: {"sub": …}.')
        elif source == "token" and not cleaned.get("token", "").strip():
            self.add_error("token", "Paste the token (three base64url parts separated by dots).")
        if cleaned.get("policy_source") == "draft":
            text = cleaned.get("draft", "")
            if not text.strip():
                self.add_error(
                    "draft", "Paste the draft definitions, or choose the current policy."
                )
            else:
                try:
                    cleaned["draft_value"] = _definitions_json(text)
                except forms.ValidationError as exc:
                    self.add_error("draft", exc)
        return cleaned


class ReplayForm(forms.Form):
    draft = DraftField(label="Draft definitions (JSON)")

    def clean_draft(self) -> Any:
        return _definitions_json(self.cleaned_data["draft"])
