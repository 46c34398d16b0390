"""Sealing secrets in place: `fn::secret: <plaintext>` becomes `{ciphertext: …}` in the text."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from environments.parser import parse
from environments.syntax import (
    CallNode,
    Diagnostic,
    Interpolation,
    ListNode,
    Literal,
    MapNode,
    Node,
    OpenNode,
    SecretNode,
)


def seal(
    text: str, environment: str, encrypt: Callable[[str], str]
) -> tuple[str, tuple[Diagnostic, ...]]:
    """Replace every `fn::secret: <plaintext>` with `fn::secret: {ciphertext: …}` in the text.

    Edits only the secrets' own spans, so comments and formatting survive; then re-parses the
    result and refuses (with a diagnostic) if its shape changed. Does not check ciphertexts that
    are already there: evaluation does, with the environment's key and context.
    """
    definition = parse(text, environment)
    if definition.diagnostics:
        return text, definition.diagnostics
    edits = [
        (site.start, site.end, "{ciphertext: " + encrypt(site.plaintext) + "}")
        for site in definition.secrets
        if site.plaintext is not None
    ]
    if not edits:
        return text, ()
    sealed = _splice(text, edits)
    again = parse(sealed, environment)
    if (
        again.diagnostics
        or any(site.plaintext is not None for site in again.secrets)
        or _shape(again.values) != _shape(definition.values)
    ):
        return text, (
            Diagnostic(
                "the secrets of this definition could not be stored in place; write each "
                "fn::secret value on its own line as a plain or quoted string",
            ),
        )
    return sealed, ()


def unseal(text: str, environment: str, decrypt: Callable[[str], str]) -> str:
    """The definition with each `{ciphertext: …}` replaced by its plaintext as a quoted string.

    For the admin-only decrypt endpoint. `decrypt` raises on a ciphertext it cannot open; this
    function does not catch it, so a definition is never returned half-decrypted.
    """
    definition = parse(text, environment)
    edits = [
        (site.start, site.end, json.dumps(decrypt(site.ciphertext), ensure_ascii=False))
        for site in definition.secrets
        if site.ciphertext is not None
    ]
    return _splice(text, edits)


def _splice(text: str, edits: Sequence[tuple[int, int, str]]) -> str:
    """Apply non-overlapping replacements, keeping the line breaks that ended each span."""
    out = text
    for start, end, replacement in sorted(set(edits), reverse=True):
        span = out[start:end]
        trailing = span[len(span.rstrip()) :]
        out = out[:start] + replacement + trailing + out[end:]
    return out


def _shape(node: Node | None) -> Any:
    """A comparable summary of a tree, with every secret reduced to a marker."""
    if node is None:
        return None
    if isinstance(node, MapNode):
        return {key: _shape(child) for key, child in node.entries.items()}
    if isinstance(node, ListNode):
        return [_shape(item) for item in node.items]
    if isinstance(node, SecretNode):
        return ("secret",)
    if isinstance(node, OpenNode):
        return ("open", node.kind, node.provider, _shape(node.arguments))
    if isinstance(node, CallNode):
        return ("call", node.name, _shape(node.arguments))
    if isinstance(node, Interpolation):
        return tuple(p if isinstance(p, str) else ("ref", p.accessors) for p in node.parts)
    if isinstance(node, Literal):
        return (type(node.value).__name__, node.value)
    return repr(node)
