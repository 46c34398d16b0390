"""Secrets at rest (environments, webhooks, sign-in clients): AES-256-GCM, HKDF-SHA256 keys.

A ciphertext reads `v1.<key id>.<base64url(nonce ‖ ciphertext ‖ tag)>`. The key id (8 hex
characters, itself derived with HKDF so it reveals nothing about the key) says which key sealed
it, so a wrong key gives a clear message instead of a bare authentication failure. Every secret
is bound, as AES-GCM associated data, to the organization and the environment it belongs to: a
ciphertext copied into another environment does not decrypt there, so being able to *read* one
definition never lets you *open* its secrets through another.

Deliberately does not: log, store or return plaintext anywhere but to its caller; accept a key
shorter than 32 characters; fall back to an unauthenticated mode.
"""

from __future__ import annotations

import base64
import binascii
import secrets as random
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION = "v1"
NONCE_BYTES = 12
MIN_KEY_CHARS = 32
# HKDF `info` labels: one per purpose, so the same material never serves two.
ENCRYPTION_LABEL = b"trustportal/environments/secrets/v1"
KEY_ID_LABEL = b"trustportal/environments/secrets/v1/key-id"
# Outside production without TRUSTPORTAL_SECRETS_KEY, the key comes from SECRET_KEY under its
# own label, so it can never equal a key derived from a real TRUSTPORTAL_SECRETS_KEY.
FROM_SECRET_KEY_LABEL = b"trustportal/environments/secrets/v1/derived-from-SECRET_KEY"


class DecryptFailed(Exception):
    """Raised by a `decrypt` function; the message is safe to show (it never holds plaintext)."""


class SecretError(DecryptFailed):
    """A ciphertext that cannot be opened; the message never contains secret material."""


def _hkdf(material: bytes, info: bytes, length: int = 32) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(material)


@dataclass(frozen=True)
class SecretKey:
    """A 256-bit AES key and its public id."""

    key: bytes
    key_id: str

    def __repr__(self) -> str:  # never print key material
        return f"SecretKey(key_id={self.key_id!r})"

    @classmethod
    def derive(cls, material: str, *, label: bytes = ENCRYPTION_LABEL) -> SecretKey:
        """Derive the key from configured material (at least 32 characters) with HKDF-SHA256."""
        if len(material) < MIN_KEY_CHARS:
            raise ValueError(f"secret key material must be at least {MIN_KEY_CHARS} characters")
        raw = material.encode("utf-8")
        key = _hkdf(raw, label)
        return cls(key=key, key_id=_hkdf(key, KEY_ID_LABEL, 4).hex())


@dataclass(frozen=True)
class SecretBox:
    """Seals and opens secrets. The first key encrypts; every key can decrypt (rotation)."""

    keys: tuple[SecretKey, ...]

    def __post_init__(self) -> None:
        if not self.keys:
            raise ValueError("a SecretBox needs at least one key")

    def encrypt(self, plaintext: str, *, context: bytes, nonce: bytes | None = None) -> str:
        """Encrypt under the current key, bound to `context` (see `environment_context`)."""
        key = self.keys[0]
        nonce = nonce if nonce is not None else random.token_bytes(NONCE_BYTES)
        sealed = AESGCM(key.key).encrypt(nonce, plaintext.encode("utf-8"), context)
        blob = base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode("ascii")
        return f"{VERSION}.{key.key_id}.{blob}"

    def decrypt(self, ciphertext: str, *, context: bytes) -> str:
        """The plaintext, or SecretError saying why not (never which bytes differed)."""
        version, _, rest = ciphertext.strip().partition(".")
        key_id, _, blob = rest.partition(".")
        if version != VERSION or not key_id or not blob:
            raise SecretError("it is not a ciphertext this portal wrote")
        key = next((k for k in self.keys if k.key_id == key_id), None)
        if key is None:
            raise SecretError(
                f"it was encrypted with another key (id {key_id}); is TRUSTPORTAL_SECRETS_KEY "
                "the one that wrote it?"
            )
        try:
            raw = base64.urlsafe_b64decode(blob + "=" * (-len(blob) % 4))
        except (binascii.Error, ValueError) as exc:
            raise SecretError("it is not valid base64") from exc
        if len(raw) < NONCE_BYTES + 16:
            raise SecretError("it is too short")
        try:
            plain = AESGCM(key.key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context)
        except InvalidTag as exc:
            raise SecretError("it belongs to another environment or was altered") from exc
        return plain.decode("utf-8")


def box_for(secrets_key: str | None, *, secret_key: str) -> SecretBox:
    """The box for the configured TRUSTPORTAL_SECRETS_KEY, or one derived from SECRET_KEY.

    Production refuses to start without TRUSTPORTAL_SECRETS_KEY (system check E004); the
    SECRET_KEY fallback exists so development and tests need no extra setting.
    """
    if secrets_key:
        return SecretBox((SecretKey.derive(secrets_key),))
    return SecretBox((SecretKey.derive(secret_key, label=FROM_SECRET_KEY_LABEL),))


def default_box() -> SecretBox:
    """The box built from settings (read here, at the edge, and passed down from the callers)."""
    from django.conf import settings

    return box_for(settings.TRUSTPORTAL.secrets_key, secret_key=settings.SECRET_KEY)
