"""Counts of the security suites, printed once in the terminal summary of the run."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

_SUMMARIES: dict[str, list[str]] = {}


def record_summary(title: str, lines: Sequence[str]) -> None:
    """Keep a suite's counts (the latest call wins) for the end of the run."""
    _SUMMARIES[title] = list(lines)


def write_summaries(terminal: pytest.TerminalReporter) -> None:
    """Print every recorded summary in a section of its own."""
    if not _SUMMARIES:
        return
    terminal.section("security suites: counts")
    for title, lines in _SUMMARIES.items():
        terminal.write_line(title)
        for line in lines:
            terminal.write_line(f"  {line}")
