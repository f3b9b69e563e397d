"""Ed25519 keys (RFC 8032) for members, org admins and validator nodes.

Public keys travel as 64 lowercase hex characters, signatures as 128. PyNaCl
(libsodium) does the arithmetic: on this machine it verifies about twice as many
signatures per second as ``cryptography`` (see ``docs/adr/0002-signatures.md``).
Key files are PKCS#8 PEM, encrypted with a passphrase (``cryptography``'s best
available scheme) unless the caller explicitly asks for an unencrypted file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import nacl.bindings
import nacl.exceptions
import nacl.signing
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from carledger.errors import InvalidInput, VerificationFailure

__all__ = ["PublicKey", "SigningKey", "is_public_key_hex", "verify_signature"]

_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX128 = re.compile(r"[0-9a-f]{128}")


def is_public_key_hex(text: object) -> bool:
    return isinstance(text, str) and _HEX64.fullmatch(text) is not None


@dataclass(frozen=True, slots=True)
class PublicKey:
    """An Ed25519 public key; construct with :meth:`from_hex` to validate."""

    raw: bytes

    def __post_init__(self) -> None:
        if len(self.raw) != 32:
            raise InvalidInput("invalid_public_key", "An Ed25519 public key is 32 bytes.")

    @classmethod
    def from_hex(cls, text: str) -> PublicKey:
        if not is_public_key_hex(text):
            raise InvalidInput(
                "invalid_public_key",
                "A public key is 64 lowercase hexadecimal characters.",
            )
        return cls(bytes.fromhex(text))

    @property
    def hex(self) -> str:
        return self.raw.hex()

    def verify(self, data: bytes, signature: bytes) -> None:
        """Raise :class:`VerificationFailure` (``bad_signature``) unless valid."""
        if not verify_signature(self.raw, data, signature):
            raise VerificationFailure(
                "bad_signature", f"The signature by {self.hex[:16]}... does not verify."
            )


def verify_signature(public_key: bytes, data: bytes, signature: bytes) -> bool:
    """True when ``signature`` is a valid Ed25519 signature of ``data`` by ``public_key``."""
    if len(signature) != 64 or len(public_key) != 32:
        return False
    try:
        nacl.bindings.crypto_sign_open(signature + data, public_key)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError):
        return False
    return True


def parse_signature_hex(text: object) -> bytes:
    if not isinstance(text, str) or _HEX128.fullmatch(text) is None:
        raise InvalidInput(
            "invalid_signature_encoding", "A signature is 128 lowercase hexadecimal characters."
        )
    return bytes.fromhex(text)


class SigningKey:
    """An Ed25519 private key. The seed never leaves this object except to a key file."""

    __slots__ = ("_key",)

    def __init__(self, seed: bytes) -> None:
        if len(seed) != 32:
            raise InvalidInput("invalid_private_key", "An Ed25519 seed is 32 bytes.")
        self._key = nacl.signing.SigningKey(seed)

    @classmethod
    def generate(cls, random_bytes: bytes | None = None) -> SigningKey:
        """A new key from ``random_bytes`` (32 bytes) or the OS's random source."""
        return cls(random_bytes if random_bytes is not None else os.urandom(32))

    @property
    def public_key(self) -> PublicKey:
        return PublicKey(bytes(self._key.verify_key))

    @property
    def public_hex(self) -> str:
        return bytes(self._key.verify_key).hex()

    def sign(self, data: bytes) -> bytes:
        return bytes(self._key.sign(data).signature)

    def seed(self) -> bytes:
        return bytes(self._key)

    def to_pem(self, passphrase: bytes | None) -> bytes:
        """PKCS#8 PEM; encrypted unless ``passphrase`` is None (an explicit choice)."""
        key = Ed25519PrivateKey.from_private_bytes(self.seed())
        algorithm: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase)
            if passphrase
            else serialization.NoEncryption()
        )
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, algorithm
        )

    @classmethod
    def from_pem(cls, data: bytes, passphrase: bytes | None) -> SigningKey:
        try:
            key = serialization.load_pem_private_key(data, password=passphrase or None)
        except TypeError as exc:
            raise InvalidInput(
                "key_passphrase_required",
                "This key file is encrypted; give its passphrase (CARLEDGER_PASSPHRASE).",
            ) from exc
        except ValueError as exc:
            raise InvalidInput(
                "invalid_key_file",
                "The key file cannot be read: wrong passphrase or not an Ed25519 PKCS#8 key.",
            ) from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise InvalidInput("invalid_key_file", "The key file does not hold an Ed25519 key.")
        return cls(
            key.private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )
        )

    def __repr__(self) -> str:
        return f"SigningKey(public={self.public_hex[:16]}...)"
