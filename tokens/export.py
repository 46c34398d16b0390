"""Exchange events as JSON (API and JSON lines) and CSV lines, one event at a time.

The HTTP response that streams them is `portal.tokens.export.streaming_export`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from kernel.csvsafe import csv_rows
from kernel.wire import iso_time
from tokens.models import ExchangeEvent
from tokens.trace import event_trace

CSV_COLUMNS = (
    "id",
    "created",
    "requestId",
    "decision",
    "reason",
    "error",
    "detail",
    "organization",
    "issuerId",
    "iss",
    "sub",
    "aud",
    "jti",
    "kid",
    "alg",
    "repository",
    "requestedTokenType",
    "requestedScope",
    "requestedExpiration",
    "policyId",
    "policyVersion",
    "tokenId",
    "grantedScope",
    "grantedExpires",
    "clientIp",
    "userAgent",
    "subjectTokenSha256",
    "claims",
)


def event_json(event: ExchangeEvent, *, trace: bool = True) -> dict[str, Any]:
    """One event for the API and JSON lines, with its claims and (unless `trace` is False) trace."""
    body: dict[str, Any] = {
        "id": str(event.pk),
        "created": iso_time(event.created),
        "requestId": event.request_id,
        "decision": event.decision,
        "reason": event.reason,
        "error": event.error or None,
        "detail": event.detail or None,
        "organization": event.organization_login,
        "issuerId": str(event.issuer_id) if event.issuer_id else None,
        "iss": event.iss,
        "sub": event.sub,
        "aud": event.aud,
        "jti": event.jti,
        "kid": event.kid,
        "alg": event.alg,
        "requestedTokenType": event.requested_token_type or None,
        "requestedScope": event.requested_scope,
        "requestedExpiration": event.requested_expiration,
        "policyId": str(event.policy_id) if event.policy_id else None,
        "policyVersion": event.policy_version,
        "tokenId": str(event.token_id) if event.token_id else None,
        "grantedScope": event.granted_scope if event.token_id else None,
        "grantedExpires": iso_time(event.granted_expires),
        "clientIp": event.client_ip,
        "userAgent": event.user_agent,
        "subjectTokenSha256": event.subject_token_sha256,
        "repository": repository_of(event) or None,
        "claims": event.claims,
    }
    if trace:
        body["trace"] = event_trace(event)
    return body


def repository_of(event: ExchangeEvent) -> str:
    """The `repository` claim as the history shows it ("" when absent or not text)."""
    value = event.claims.get("repository") if isinstance(event.claims, dict) else None
    return value if isinstance(value, str) else ""


def csv_lines(events: Iterable[ExchangeEvent]) -> Iterator[str]:
    """The header and one CSV line per event (cells that look like formulas get a `'`)."""
    records = (event_json(event, trace=False) for event in events)
    return csv_rows(CSV_COLUMNS, ([r.get(c) for c in CSV_COLUMNS] for r in records))


def jsonl_lines(events: Iterable[ExchangeEvent]) -> Iterator[str]:
    """One JSON object per line per event, with claims and trace."""
    for event in events:
        yield json.dumps(event_json(event), separators=(",", ":"), ensure_ascii=False) + "\n"

