"""Reads: policies, their versions, and the compiled form the exchange evaluates."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet

from kernel.ttlcache import TTLCache
from policies.matching import CompiledPolicy, compile_policy
from policies.models import AuthPolicy, AuthPolicyVersion, PolicyDraft
from trustportal.models import Organization

MAX_CACHED = 5000
# (policy id, version) -> compiled policy. A version never changes, so entries never expire.
_compiled: TTLCache[tuple[Any, int], CompiledPolicy] = TTLCache(ttl=None, max_entries=MAX_CACHED)


def policy_of(organization: Organization, policy_id: object) -> AuthPolicy | None:
    """The organization's policy with that id; None for another org's or a malformed id."""
    try:
        key = uuid.UUID(str(policy_id))
    except ValueError:
        return None
    return (
        AuthPolicy.objects.select_related("issuer", "organization")
        .filter(organization=organization, pk=key)
        .first()
    )


def policy_for_issuer(organization: Organization, issuer_id: object) -> AuthPolicy | None:
    try:
        key = uuid.UUID(str(issuer_id))
    except ValueError:
        return None
    return (
        AuthPolicy.objects.select_related("issuer", "organization")
        .filter(organization=organization, issuer_id=key)
        .first()
    )


def policy_versions(policy: AuthPolicy) -> QuerySet[AuthPolicyVersion]:
    return AuthPolicyVersion.objects.filter(policy=policy).select_related("created_by")


def compiled_policy(policy_id: Any, version: int, definitions: Any = None) -> CompiledPolicy:
    """The compiled policy for (id, version), compiled once per process and version.

    Every save bumps the version, so a stale entry is never used: a process that sees a new
    version in the policy row compiles it; the definitions are loaded only then.
    """
    key = (policy_id, version)
    found = _compiled.get(key)
    if found is not None:
        return found
    if definitions is None:
        definitions = (
            AuthPolicyVersion.objects.filter(policy_id=policy_id, version=version)
            .values_list("definitions", flat=True)
            .get()
        )
    found = compile_policy(definitions)
    _compiled.set(key, found)
    return found


@dataclass(frozen=True)
class WorkingCopy:
    """What the editor shows and edits: the open draft, or the live definitions if none is open.

    `revision` is the draft's edit counter (0 before the issuer ever had a draft): every editor
    form carries it back, so an edit made on a page that shows an older state is refused.
    """

    definitions: list[Any]
    revision: int
    draft: PolicyDraft | None

    @property
    def is_draft(self) -> bool:
        return self.draft is not None


def working_copy(policy: AuthPolicy) -> WorkingCopy:
    draft = (
        PolicyDraft.objects.select_related("started_by", "modified_by")
        .filter(policy=policy)
        .first()
    )
    if draft is None or draft.base_version is None:
        return WorkingCopy(list(policy.definitions), draft.revision if draft else 0, None)
    return WorkingCopy(list(draft.definitions), draft.revision, draft)


def policy_summary(definitions: Any) -> str:
    """What a policy does in a few words: "1 allow, 1 deny", or "denies everything"."""
    decisions = (
        [d.get("decision") for d in definitions if isinstance(d, dict)] if definitions else []
    )
    allows, denies = decisions.count("allow"), decisions.count("deny")
    if not allows:
        return "denies everything"
    parts = [f"{allows} allow{'s' if allows != 1 else ''}"]
    if denies:
        parts.append(f"{denies} {'deny' if denies == 1 else 'denies'}")
    return ", ".join(parts)


def issuer_policy_summary(issuer: Any) -> str:
    """`policy_summary` of an issuer's policy (an issuer without one denies everything)."""
    policy = getattr(issuer, "policy", None)  # the reverse one-to-one raises when missing
    return policy_summary(policy.definitions if policy is not None else [])
