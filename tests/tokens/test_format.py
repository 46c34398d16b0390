"""The token format: prefix, base62 body, CRC32 checksum; hashing."""

from __future__ import annotations

import hashlib
import random
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokens.format import (
    BASE62,
    TOKEN_LENGTH,
    base62_encode,
    checksum,
    display_prefix,
    generate_token,
    hash_token,
    parse_token,
)


@pytest.mark.parametrize(
    ("token_type", "prefix"),
    [("organization", "tpo_"), ("team", "tpt_"), ("personal", "tpp_"), ("runner", "tpr_")],
)
def test_generated_tokens_have_the_type_prefix_and_parse_back(token_type: str, prefix: str) -> None:
    token = generate_token(token_type)
    assert token.startswith(prefix)
    assert len(token) == TOKEN_LENGTH == 53
    assert all(c in BASE62 for c in token[4:])
    parsed = parse_token(token)
    assert parsed is not None
    assert parsed.token_type == token_type


def test_checksum_is_base62_crc32_of_everything_before_it() -> None:
    token = generate_token("organization", rng=lambda n: bytes(range(n)))
    body, check = token[:-6], token[-6:]
    crc = zlib.crc32(body.encode())
    decoded = 0
    for c in check:
        decoded = decoded * 62 + BASE62.index(c)
    assert decoded == crc
    assert checksum(body) == check


def test_randomness_is_injectable_and_used() -> None:
    zero = generate_token("team", rng=lambda n: b"\0" * n)
    assert zero[4:47] == "0" * 43
    ones = generate_token("team", rng=lambda n: b"\xff" * n)
    assert ones != zero
    assert base62_encode(2**256 - 1, 43) == ones[4:47]


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # checksum digit changed
        lambda t: t[:10] + ("A" if t[10] != "A" else "B") + t[11:],  # body changed
        lambda t: "tpx_" + t[4:],  # unknown prefix
        lambda t: "tpt_" + t[4:],  # prefix swapped: checksum covers it
        lambda t: t[:-1],  # too short
        lambda t: t + "0",  # too long
        lambda t: t[:20] + "-" + t[21:],  # not base62
        lambda t: t.upper(),
        lambda t: "",
        lambda t: " " + t[1:],
    ],
)
def test_parse_refuses_altered_tokens(mangle) -> None:
    token = generate_token("organization")
    assert parse_token(mangle(token)) is None


@given(st.text(max_size=80))
def test_parse_never_raises(value: str) -> None:
    parse_token(value)


def test_a_random_typo_is_caught_by_the_checksum() -> None:
    rng = random.Random(7)
    caught = 0
    for _ in range(500):
        token = generate_token("personal")
        i = rng.randrange(4, len(token))
        replacement = rng.choice([c for c in BASE62 if c != token[i]])
        caught += parse_token(token[:i] + replacement + token[i + 1 :]) is None
    assert caught == 500


def test_hash_is_sha256_hex_and_prefix_is_short() -> None:
    token = generate_token("runner")
    assert hash_token(token) == hashlib.sha256(token.encode()).hexdigest()
    assert display_prefix(token) == token[:10]
    assert len(display_prefix(token)) < 16
