"""Differences between two lists of definitions, as the version history and the draft show them."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Final

from portal.policies.forms import pretty_json

DIFF_CONTEXT_LINES: Final = 3


@dataclass(frozen=True)
class DiffLine:
    kind: str  # "added", "removed", "context" or "hunk"
    text: str

    @property
    def sign(self) -> str:
        return {"added": "+", "removed": "-", "hunk": ""}.get(self.kind, " ")


def definitions_diff(before: Any, after: Any) -> list[DiffLine]:
    """A unified diff of two versions' definitions as pretty-printed JSON, line by line."""
    lines = difflib.unified_diff(
        pretty_json(before).splitlines(),
        pretty_json(after).splitlines(),
        lineterm="",
        n=DIFF_CONTEXT_LINES,
    )
    result = []
    for line in lines:
        if line.startswith(("---", "+++")):
            continue
        if line.startswith("@@"):
            result.append(DiffLine("hunk", line))
        elif line.startswith("+"):
            result.append(DiffLine("added", line[1:]))
        elif line.startswith("-"):
            result.append(DiffLine("removed", line[1:]))
        else:
            result.append(DiffLine("context", line[1:]))
    return result
