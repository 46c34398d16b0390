"""One delivery attempt: the payload, its signature, the guarded POST, what came back.

Webhook URLs are chosen by organization admins, so every delivery goes through the guarded
outbound client (`outbound/client.py`): https, public addresses only (or
`TRUSTPORTAL_WEBHOOK_ALLOWED_NETWORKS`), the checked address connected to, no redirects, 5 s, a
capped answer. It never includes a secret: payloads carry the audit record, which has none.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from outbound.client import post
from outbound.errors import FetchError
from outbound.policy import OutboundPolicy

USER_AGENT = "TrustPortal-Webhook/1"
MAX_RESPONSE_KEPT = 1024


def signature(secret: str, body: bytes) -> str:
    """`Pulumi-Webhook-Signature`: the hex HMAC-SHA256 of the exact body under the secret."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def payload(*, kind: str, organization: str, event: Mapping[str, Any] | None) -> bytes:
    body = {"kind": kind, "organization": organization, "event": event or {}}
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


@dataclass(frozen=True)
class Attempt:
    ok: bool
    response_code: int | None
    response_body: str
    error: str
    duration_ms: int


Poster = Callable[..., tuple[int, Mapping[str, str], bytes]]


def attempt(
    url: str,
    body: bytes,
    *,
    kind: str,
    delivery_id: str,
    secret: str,
    policy: OutboundPolicy,
    send: Poster = post,
) -> Attempt:
    """POST `body` once; a 2xx answer is delivered, anything else (or no answer) is not."""
    headers = {
        "User-Agent": USER_AGENT,
        "Pulumi-Webhook-ID": delivery_id,
        "Pulumi-Webhook-Kind": kind,
    }
    if secret:
        headers["Pulumi-Webhook-Signature"] = signature(secret, body)
    started = time.monotonic()
    try:
        status, _, answer = send(
            url, body=body, content_type="application/json", policy=policy, headers=headers
        )
    except FetchError as exc:
        return Attempt(
            ok=False,
            response_code=None,
            response_body="",
            error=exc.message[:500],
            duration_ms=int((time.monotonic() - started) * 1000),
        )
    return Attempt(
        ok=200 <= status < 300,
        response_code=status,
        response_body=answer[:MAX_RESPONSE_KEPT].decode("utf-8", "replace"),
        error="" if 200 <= status < 300 else f"the receiver answered {status}",
        duration_ms=int((time.monotonic() - started) * 1000),
    )
