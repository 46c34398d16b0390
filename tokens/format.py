"""The access token format: a type prefix, 32 random bytes in base62, a base62 CRC32 checksum.

`tpo_` organization, `tpt_` team, `tpp_` personal, `tpr_` runner. The checksum lets secret
scanners (and our own authentication) reject mistyped or made-up tokens without a lookup; it is not
a secret and proves nothing about authenticity — only the SHA-256 lookup does that.
"""

from __future__ import annotations

import hashlib
import secrets
import zlib
from collections.abc import Callable
from dataclasses import dataclass

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BASE62_INDEX = {c: i for i, c in enumerate(BASE62)}
PREFIXES = {"organization": "tpo_", "team": "tpt_", "personal": "tpp_", "runner": "tpr_"}
TYPES_BY_PREFIX = {prefix: token_type for token_type, prefix in PREFIXES.items()}
RANDOM_BYTES = 32
SECRET_LENGTH = 43  # ceil(256 bits / log2(62))
CHECKSUM_LENGTH = 6  # 62**6 > 2**32
TOKEN_LENGTH = 4 + SECRET_LENGTH + CHECKSUM_LENGTH
DISPLAY_PREFIX_LENGTH = 10


def base62_encode(number: int, width: int) -> str:
    """Encode a non-negative integer as fixed-width base62 (left-padded with '0')."""
    digits = []
    while number:
        number, rest = divmod(number, 62)
        digits.append(BASE62[rest])
    encoded = "".join(reversed(digits)).rjust(width, "0")
    if len(encoded) != width:
        raise ValueError("number does not fit the width")
    return encoded


def checksum(body: str) -> str:
    """The 6-character base62 CRC32 of everything before the checksum."""
    return base62_encode(zlib.crc32(body.encode("ascii")), CHECKSUM_LENGTH)


def generate_token(token_type: str, *, rng: Callable[[int], bytes] = secrets.token_bytes) -> str:
    """Make a new random token of the given type."""
    prefix = PREFIXES[token_type]
    body = prefix + base62_encode(int.from_bytes(rng(RANDOM_BYTES), "big"), SECRET_LENGTH)
    return body + checksum(body)


@dataclass(frozen=True)
class ParsedToken:
    token_type: str
    value: str


def parse_token(value: str) -> ParsedToken | None:
    """Check a presented token's shape and checksum; None when it cannot be one of ours.

    Does not look anything up: a well-formed token may still be unknown, expired or revoked.
    """
    if len(value) != TOKEN_LENGTH:
        return None
    token_type = TYPES_BY_PREFIX.get(value[:4])
    if token_type is None:
        return None
    if any(c not in _BASE62_INDEX for c in value[4:]):
        return None
    body, check = value[:-CHECKSUM_LENGTH], value[-CHECKSUM_LENGTH:]
    if not secrets.compare_digest(checksum(body), check):
        return None
    return ParsedToken(token_type=token_type, value=value)


def hash_token(value: str) -> str:
    """SHA-256 of the token, hex: the only form in which a token is stored."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def display_prefix(value: str) -> str:
    """The first characters of a token, enough for a person to recognise it, never to use it."""
    return value[:DISPLAY_PREFIX_LENGTH]
