"""An exchange event's evaluation trace, rendered on demand for allowed exchanges.

A refused exchange stores its full per-definition trace. An allowed one stores only which
definition granted (`[{"index", "decision", "applies"}]`): the rest is recomputed here from the
stored (verified) claims and the policy version's definitions, which never change.
"""

from __future__ import annotations

from typing import Any

from policies.matching import Evaluation, TokenRequest, VerifiedClaims
from policies.selectors import compiled_policy
from tokens.models import Decision, ExchangeEvent


def compact_trace(definition_index: int) -> list[dict[str, Any]]:
    """What an allowed exchange stores: the granting definition only."""
    return [{"index": definition_index, "decision": "allow", "applies": True}]


def _scope_name(event: ExchangeEvent) -> str | None:
    scope = event.requested_scope
    if event.requested_token_type == "organization":
        return scope or None
    return scope.split(":", 1)[1] if ":" in scope else None


def event_trace(event: ExchangeEvent) -> list[dict[str, Any]]:
    """The trace to show: stored in full, or recomputed for an allowed exchange's compact one."""
    stored = event.trace if isinstance(event.trace, list) else []
    compact = (
        event.decision == Decision.ALLOW
        and len(stored) == 1
        and isinstance(stored[0], dict)
        and "rules" not in stored[0]
        and event.policy_id is not None
        and event.policy_version is not None
    )
    if not compact or event.policy_version is None:
        return stored
    try:
        compiled = compiled_policy(event.policy_id, event.policy_version)
        definition = compiled.definitions[int(stored[0]["index"])]
    except Exception:  # the version or the definition is gone: show what is stored
        return stored
    request = TokenRequest(token_type=event.requested_token_type, scope=_scope_name(event))
    rendered = definition.trace(VerifiedClaims(event.claims), request)
    evaluation = Evaluation(
        decision="allow",
        reason="allowed",
        deciding_index=rendered.index,
        grant=None,
        trace=(rendered,),
    )
    return evaluation.trace_json()
