"""Reads: policies, their versions, and the compiled form the exchange evaluates."""

from __future__ import annotations

import threading
import uuid
from typing import Any

from django.db.models import QuerySet

from policies.matching import CompiledPolicy, compile_policy
from policies.models import AuthPolicy, AuthPolicyVersion
from trustportal.models import Organization

_compiled: dict[tuple[Any, int], CompiledPolicy] = {}
_lock = threading.Lock()
MAX_CACHED = 5000


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
    with _lock:
        if len(_compiled) >= MAX_CACHED:
            _compiled.clear()
        _compiled[key] = found
    return found
