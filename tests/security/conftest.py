"""The security suites print their counts (vectors, cases, forms) at the end of the run."""

from __future__ import annotations

import pytest

from tests.security.reporting import write_summaries


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    write_summaries(terminalreporter)
