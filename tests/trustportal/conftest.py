"""Fixtures of the portal shell's tests, shared with the tokens pages' tests."""

from tests.tokens.conftest import people  # noqa: F401  (fixture)
