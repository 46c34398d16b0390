"""Example policies the editor offers for well-known CI issuers, with placeholders to fill in.

Each example is a pinned allow for one repository's (project's) main branch plus a deny for pull
(merge) requests, as `AuthPolicyDefinition` dicts. Placeholders look like `<OWNER_ID>`; the editor
refuses to save a definition that still contains one, so an example is never trusted as is. This
module only builds data: it never saves anything.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

from policies.matching import json_quote
from policies.validation import FieldError, is_github_issuer

PLACEHOLDER: Final = re.compile(r"<[A-Z][A-Z0-9_]*>")
_CIRCLECI_ISSUER: Final = re.compile(r"https://oidc\.circleci\.com/org/([0-9A-Za-z-]+)/?")


@dataclass(frozen=True)
class Example:
    """An example policy for one CI platform and what each of its placeholders stands for."""

    provider: str
    definitions: list[dict[str, Any]]
    placeholders: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


def _github() -> Example:
    return Example(
        provider="GitHub Actions",
        definitions=[
            {
                "decision": "allow",
                "tokenType": "organization",
                "authorizedPermissions": ["admin"],
                "rules": {
                    "sub": "repo:<OWNER>/<REPOSITORY>:ref:refs/heads/main",
                    "repository_owner_id": "<OWNER_ID>",
                    "repository_id": "<REPOSITORY_ID>",
                },
            },
            {
                "decision": "deny",
                "tokenType": "organization",
                "authorizedPermissions": ["admin"],
                "rules": {"event_name": ["pull_request", "pull_request_target"]},
            },
        ],
        placeholders={
            "<OWNER>": "your GitHub organization (or user) name, e.g. acme",
            "<REPOSITORY>": "the repository name, e.g. infra",
            "<OWNER_ID>": "the organization's numeric id (the repository_owner_id claim; "
            "https://api.github.com/orgs/NAME shows it as id)",
            "<REPOSITORY_ID>": "the repository's numeric id (the repository_id claim; "
            "https://api.github.com/repos/OWNER/NAME shows it as id)",
        },
        notes=(
            "The ids pin the owner and repository: a repository deleted and re-created under "
            "the same name gets a new id, so it would not match.",
            "The deny refuses every organization token to pull_request runs, whose workflow "
            "code anyone who opens a pull request controls. Deny wins over any allow.",
        ),
    )


def _gitlab() -> Example:
    return Example(
        provider="GitLab CI/CD",
        definitions=[
            {
                "decision": "allow",
                "tokenType": "organization",
                "authorizedPermissions": ["admin"],
                "rules": {
                    "sub": "project_path:<GROUP>/<PROJECT>:ref_type:branch:ref:main",
                    "namespace_id": "<GROUP_ID>",
                    "project_id": "<PROJECT_ID>",
                    "ref_protected": "true",
                },
            },
            {
                "decision": "deny",
                "tokenType": "organization",
                "authorizedPermissions": ["admin"],
                "rules": {
                    "pipeline_source": ["merge_request_event", "external_pull_request_event"]
                },
            },
        ],
        placeholders={
            "<GROUP>": "the group path, e.g. acme-group",
            "<PROJECT>": "the project name, e.g. platform",
            "<GROUP_ID>": "the group's numeric id (the namespace_id claim)",
            "<PROJECT_ID>": "the project's numeric id (the project_id claim)",
        },
        notes=(
            "ref_protected pins the allow to a protected branch, so only maintainers' changes "
            "reach it.",
            "The deny refuses organization tokens to merge request pipelines. Deny wins over "
            "any allow.",
        ),
    )


def _circleci(org_id: str) -> Example:
    return Example(
        provider="CircleCI",
        definitions=[
            {
                "decision": "allow",
                "tokenType": "organization",
                "authorizedPermissions": ["admin"],
                "rules": {
                    "sub": f"org/{org_id}/project/<PROJECT_ID>/user/*",
                    '"oidc.circleci.com/project-id"': "<PROJECT_ID>",
                    '"oidc.circleci.com/vcs-ref"': "refs/heads/main",
                    '"oidc.circleci.com/ssh-rerun"': "false",
                },
            },
            {
                "decision": "deny",
                "tokenType": "organization",
                "authorizedPermissions": ["admin"],
                "rules": {'"oidc.circleci.com/vcs-ref"': "refs/pull/*"},
            },
        ],
        placeholders={
            "<PROJECT_ID>": "the project's id (Project Settings → Overview in CircleCI)",
        },
        notes=(
            "Claim names containing dots are written in double quotes, as in "
            '"oidc.circleci.com/project-id".',
            "ssh-rerun is pinned to false: a job re-run with SSH lets a person run any command "
            "with the job's token.",
            "The deny refuses organization tokens to builds of pull request refs. Deny wins over "
            "any allow.",
        ),
    )


def example_for(issuer_url: str) -> Example | None:
    """The example policy for an issuer URL (its exact `iss`), or None for an unknown platform."""
    url = issuer_url.strip()
    if is_github_issuer(url):
        return _github()
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.netloc == "gitlab.com" and parts.path in ("", "/"):
        return _gitlab()
    circleci = _CIRCLECI_ISSUER.fullmatch(url)
    if circleci is not None:
        return _circleci(circleci.group(1))
    return None


def _texts(value: Any) -> Iterator[str]:
    """The strings of a field value: itself, or the strings directly in a list."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        yield from (item for item in value if isinstance(item, str))


def _located_texts(name: str, value: Any, where: str) -> Iterator[tuple[str, str]]:
    """Every string of one definition field, with the error path of what holds it."""
    if name == "rules" and isinstance(value, Mapping):
        for claim, patterns in value.items():
            rule_where = f"{where}[{json_quote(str(claim))}]"
            yield rule_where, str(claim)
            yield from ((rule_where, text) for text in _texts(patterns))
    else:
        yield from ((where, text) for text in _texts(value))


def placeholder_errors(definitions: Any, indexes: Any = None) -> list[FieldError]:
    """Errors for every `<PLACEHOLDER>` left in the definitions (all, or only those at `indexes`).

    The API does not refuse these; the editor does, because an example saved unedited would
    trust nobody useful and look as if it did.
    """
    if not isinstance(definitions, list):
        return []
    errors: list[FieldError] = []
    for index, definition in enumerate(definitions):
        if (indexes is not None and index not in indexes) or not isinstance(definition, Mapping):
            continue
        for name, value in definition.items():
            where = f"policies[{index}].{name}"
            for path, text in _located_texts(str(name), value, where):
                found = PLACEHOLDER.search(text)
                if found is not None and all(e.path != path for e in errors):
                    errors.append(
                        FieldError(path, f"replace the placeholder {found.group()} first")
                    )
    return errors
