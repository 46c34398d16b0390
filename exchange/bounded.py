"""Caps on what an attempt that was refused may write into the exchange history.

A refused token's claims are whatever its sender chose (most refusals come before or without a
valid signature): they are stored only within a depth and a size, beyond which a marked, bounded
form is kept instead. Pure; does not touch the claims of allowed exchanges (verified, issuer's).
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 8
MAX_BYTES = 8 * 1024
TRUNCATED = "_truncated"
# Kept (each cut to KEPT_CHARS) over the size cap: enough for the admin to find the attempt.
KEPT_CLAIMS = ("iss", "sub", "aud", "jti", "kid", "exp", "iat", "nbf", "repository", "ref")
KEPT_CHARS = 200


def _depth_capped(value: Any, depth: int, max_depth: int) -> tuple[Any, bool]:
    if not isinstance(value, dict | list):
        return value, False
    if depth >= max_depth:
        return f"{TRUNCATED}: nested deeper than {max_depth} levels", True
    cut = False
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out[key], deeper = _depth_capped(item, depth + 1, max_depth)
            cut = cut or deeper
        return out, cut
    items = []
    for item in value:
        capped, deeper = _depth_capped(item, depth + 1, max_depth)
        items.append(capped)
        cut = cut or deeper
    return items, cut


def bound_claims(
    claims: dict[str, Any], *, max_depth: int = MAX_DEPTH, max_bytes: int = MAX_BYTES
) -> dict[str, Any]:
    """The claims to store for a refused attempt: as they are within the caps, else marked.

    Containers nested deeper than `max_depth` become a marker string; if the result is still
    over `max_bytes` of JSON, only the usual identifying claims (cut to 200 characters) are kept
    with `_truncated` saying how large the claims were. Does not validate anything.
    """
    capped, cut = _depth_capped(claims, 0, max_depth)
    size = len(json.dumps(capped, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    if size <= max_bytes:
        if cut:
            capped[TRUNCATED] = f"containers nested deeper than {max_depth} levels were replaced"
        return dict(capped)
    kept = {
        name: (value if isinstance(value, int | float | bool) else str(value)[:KEPT_CHARS])
        for name, value in claims.items()
        if name in KEPT_CLAIMS
    }
    kept[TRUNCATED] = f"claims of {size} bytes exceed the {max_bytes}-byte cap; only these kept"
    return kept
