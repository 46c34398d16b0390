"""An exchange event's stored claims and trace as bounded rows for the history page.

Claims of refused tokens are stored as received and a trace is stored JSON: the rows are
built defensively (any shape, any depth, any size) and every text is bounded.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tokens.claim_times import TIME_CLAIMS, claim_time
from trustportal.jsonview import ELLIPSIS, bounded_json, bounded_text

MAX_ROWS = 200  # claims, definitions
MAX_RULES = 50
MAX_ITEMS = 50  # patterns or values of one rule
MAX_CELL = 2_000


def _text(value: Any) -> str:
    if isinstance(value, str):
        return bounded_text(value, max_chars=MAX_CELL)
    return bounded_json(value, max_chars=MAX_CELL)


def _texts(value: Any) -> list[str] | None:
    if value is None:
        return None
    items = value if isinstance(value, list) else [value]
    shown = [_text(item) for item in items[:MAX_ITEMS]]
    return [*shown, ELLIPSIS] if len(items) > MAX_ITEMS else shown


def claim_rows(claims: Any) -> list[tuple[str, str, datetime | None]]:
    """Claims as (name, text, UTC time) rows: strings as they are, everything else as bounded
    JSON; the time claims (`exp`, `iat`, `nbf`, `auth_time`) also as a date when numbers."""
    if isinstance(claims, str):  # not decoded (nested too deep): the marker says so
        return [(ELLIPSIS, _text(claims), None)]
    if not isinstance(claims, dict):
        return []
    names = sorted(claims, key=str)
    rows = [
        (
            _text(str(name)),
            _text(claims[name]),
            claim_time(claims[name]) if name in TIME_CLAIMS else None,
        )
        for name in names[:MAX_ROWS]
    ]
    if len(names) > MAX_ROWS:
        rows.append((ELLIPSIS, f"{len(names) - MAX_ROWS} more claims not shown", None))
    return rows


def _rule(rule: Any) -> dict[str, Any]:
    rule = rule if isinstance(rule, dict) else {}
    return {
        "claim": _text(rule.get("claim", "")),
        "patterns": _texts(rule.get("patterns")) or [],
        "values": _texts(rule.get("values")),
        "matched": rule.get("matched") is True,
        "matched_pattern": _text(rule["matched_pattern"]) if rule.get("matched_pattern") else "",
    }


def trace_rows(trace: Any) -> list[dict[str, Any]]:
    """The evaluation trace as rows of plain, bounded texts (unknown shapes shown empty)."""
    if not isinstance(trace, list):
        return []
    rows = []
    for position, definition in enumerate(trace[:MAX_ROWS]):
        entry = definition if isinstance(definition, dict) else {}
        index = entry.get("index")
        rules = entry.get("rules")
        rules = rules if isinstance(rules, list) else []
        rows.append(
            {
                "number": index + 1 if isinstance(index, int) else position + 1,
                "decision": _text(entry.get("decision", "")),
                "token_type": _text(entry.get("token_type", "")),
                "applies": entry.get("applies") is True,
                "failure": _text(entry.get("failure") or ""),
                "rules": [_rule(rule) for rule in rules[:MAX_RULES]],
            }
        )
    return rows
