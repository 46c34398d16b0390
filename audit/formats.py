"""Audit records as Pulumi's JSON, CSV and CEF (ArcSight Common Event Format) for SIEMs."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from audit.models import AuditEvent
from kernel.csvsafe import csv_rows
from kernel.wire import iso_time

VENDOR, PRODUCT, VERSION = "TrustPortal", "TrustPortal", "1"
CSV_COLUMNS = (
    "id",
    "timestamp",
    "time",
    "event",
    "description",
    "user",
    "tokenID",
    "tokenName",
    "tokenLineage",
    "objectType",
    "objectId",
    "object",
    "changes",
    "sourceIP",
    "userAgent",
    "requestId",
)
# Change events that widen or narrow trust are medium; others low (CEF severity 0-10).
_SEVERITY = {"issuer": 6, "policy": 6, "token": 5, "membership": 5, "team": 4}


def event_json(record: AuditEvent) -> dict[str, Any]:
    """One record in Pulumi's `AuditLogEvent` shape, with our fields after it."""
    return {
        "timestamp": int(record.created.timestamp()),
        "sourceIP": record.client_ip or "",
        "event": record.event,
        "description": record.description,
        "user": {
            "name": record.actor_username or record.actor_kind,
            "githubLogin": record.actor_username,
            "avatarUrl": "",
        },
        "tokenID": str(record.actor_token_id) if record.actor_token_id else "",
        "tokenName": record.actor_token_name,
        "reqOrgAdmin": record.actor_kind != "system",
        "authFailure": False,
        "id": str(record.pk),
        "time": iso_time(record.created),
        "actorKind": record.actor_kind,
        "tokenLineage": [str(i) for i in record.actor_token_lineage],
        "objectType": record.object_type,
        "objectId": record.object_id,
        "object": record.object_repr,
        "changes": record.changes,
        "userAgent": record.user_agent,
        "requestId": record.request_id,
    }


def csv_lines(records: Iterable[AuditEvent]) -> Iterator[str]:
    rows = (event_json(r) for r in records)
    return csv_rows(
        CSV_COLUMNS,
        (
            [
                r["user"]["githubLogin"] if c == "user" else r.get(c)
                for c in CSV_COLUMNS
            ]
            for r in rows
        ),
    )


def _cef_header(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _cef_value(text: str) -> str:
    return (
        text.replace("\\", "\\\\")
        .replace("=", "\\=")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
        .replace("\r", "\\n")
    )


def cef_line(record: AuditEvent) -> str:
    """`CEF:0|Vendor|Product|Version|event|description|severity|extension` for one record."""
    severity = _SEVERITY.get(record.event.split("-", 1)[0], 3)
    extension = {
        "rt": str(int(record.created.timestamp() * 1000)),
        "src": record.client_ip or "",
        "suser": record.actor_username,
        "act": record.event,
        "requestClientApplication": record.user_agent,
        "externalId": str(record.pk),
        "cs1Label": "organization",
        "cs1": record.organization_login,
        "cs2Label": "object",
        "cs2": f"{record.object_type}:{record.object_id} {record.object_repr}".strip(),
        "cs3Label": "changes",
        "cs3": json.dumps(record.changes, separators=(",", ":"), sort_keys=True),
        "cs4Label": "requestId",
        "cs4": record.request_id,
        "cs5Label": "token",
        "cs5": (
            f"{record.actor_token_id} {record.actor_token_name}" if record.actor_token_id else ""
        ),
    }
    fields = " ".join(f"{key}={_cef_value(value)}" for key, value in extension.items() if value)
    head = "|".join(
        _cef_header(part)
        for part in (
            "CEF:0",
            VENDOR,
            PRODUCT,
            VERSION,
            record.event,
            record.description,
            str(severity),
        )
    )
    return f"{head}|{fields}\n"


def cef_lines(records: Iterable[AuditEvent]) -> Iterator[str]:
    return (cef_line(r) for r in records)
