"""Signed transactions: the envelope, its canonical bytes, its id and signatures.

A transaction's *body* is the RFC 8785 canonical JSON of an object with exactly the
fields ``chain``, ``created``, ``nonce``, ``payload``, ``signers`` and ``type``.
``id = sha256(body)`` in lowercase hex, and each signer signs ``body`` with Ed25519.
The body is kept as the bytes received and never re-serialised: decoding checks
that the bytes *are* canonical instead of canonicalising them.

On the wire (REST, files, etcd) a transaction is::

    {"body": "<standard base64 of the body bytes>", "signatures": ["<hex>", ...]}

with ``signatures[i]`` made by ``signers[i]``. ``docs/transaction-format.md`` is the
language-neutral description; ``docs/vectors/`` has test vectors.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from carledger.crypto.keys import (
    SigningKey,
    is_public_key_hex,
    parse_signature_hex,
    verify_signature,
)
from carledger.encoding import canonical
from carledger.encoding.timefmt import is_utc_time
from carledger.errors import InvalidInput, VerificationFailure

__all__ = [
    "ENVELOPE_FIELDS",
    "MAX_BODY_BYTES",
    "MAX_SIGNERS",
    "Transaction",
    "build_body",
    "sign",
]

ENVELOPE_FIELDS = frozenset({"chain", "created", "nonce", "payload", "signers", "type"})
MAX_BODY_BYTES = 64 * 1024
MAX_SIGNERS = 8

CHAIN_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
TYPE_RE = re.compile(r"[a-z][a-z_]{0,31}(\.[a-z][a-z_]{0,31}){1,3}")
NONCE_RE = re.compile(r"[\x21-\x7e]{1,64}")


@dataclass(frozen=True, slots=True, eq=False)
class Transaction:
    """A decoded, structurally valid transaction. Build with :meth:`from_body`.

    Structural validity (fields, canonical bytes, signature count) is guaranteed by
    construction; whether the signatures verify is :meth:`verify_signatures`, and
    whether the signers may write this record is the executor's business.
    """

    body: bytes
    signatures: tuple[bytes, ...]
    id: str
    chain: str
    type: str
    payload: dict[str, Any]
    signers: tuple[str, ...]
    nonce: str
    created: str
    _envelope: dict[str, Any] = field(repr=False)

    @classmethod
    def from_body(cls, body: bytes, signatures: Sequence[bytes]) -> Transaction:
        """Validate ``body`` and pair it with ``signatures``.

        Raises :class:`InvalidInput` with a specific code for every way the body
        can be malformed (see ``docs/errors.md``).
        """
        if len(body) > MAX_BODY_BYTES:
            raise InvalidInput(
                "body_too_large", f"A transaction body is at most {MAX_BODY_BYTES} bytes."
            )
        # A canonical body (every valid one) parses on the fast path; anything else
        # takes the strict decoder, which says what is wrong with it.
        envelope = canonical.decode_canonical(body)
        canonical_body = envelope is not None
        if not canonical_body:
            envelope = canonical.decode(body)
        if not isinstance(envelope, dict):
            raise InvalidInput("invalid_envelope", "A transaction body is a JSON object.")
        missing = ENVELOPE_FIELDS - envelope.keys()
        if missing:
            raise InvalidInput(
                "missing_field",
                f"The envelope lacks {', '.join(sorted(missing))}.",
                fields=sorted(missing),
            )
        extra = envelope.keys() - ENVELOPE_FIELDS
        if extra:
            raise InvalidInput(
                "unknown_field",
                f"The envelope has unknown fields: {', '.join(sorted(extra))}.",
                fields=sorted(extra),
            )
        chain, type_, payload = envelope["chain"], envelope["type"], envelope["payload"]
        signers, nonce, created = envelope["signers"], envelope["nonce"], envelope["created"]
        if not isinstance(chain, str) or not CHAIN_RE.fullmatch(chain):
            raise InvalidInput("invalid_chain", "chain is 1-64 of a-z, 0-9 and '-'.")
        if not isinstance(type_, str) or not TYPE_RE.fullmatch(type_):
            raise InvalidInput(
                "invalid_type", "type is a dotted lower-case name such as trade.sale."
            )
        if not isinstance(payload, dict):
            raise InvalidInput("invalid_payload", "payload is a JSON object.")
        if not isinstance(nonce, str) or not NONCE_RE.fullmatch(nonce):
            raise InvalidInput("invalid_nonce", "nonce is 1-64 printable ASCII characters.")
        if not is_utc_time(created):
            raise InvalidInput(
                "invalid_timestamp", "created is a UTC time such as 2026-11-22T09:30:00Z."
            )
        if not isinstance(signers, list) or not 1 <= len(signers) <= MAX_SIGNERS:
            raise InvalidInput(
                "invalid_signers", f"signers is a list of 1 to {MAX_SIGNERS} public keys."
            )
        if not all(is_public_key_hex(s) for s in signers):
            raise InvalidInput(
                "invalid_public_key", "Each signer is 64 lowercase hexadecimal characters."
            )
        if len(set(signers)) != len(signers):
            raise InvalidInput("duplicate_signer", "A key appears twice in signers.")
        if not canonical_body and canonical.encode(envelope) != body:
            raise InvalidInput(
                "not_canonical",
                "The body is not in RFC 8785 canonical form (key order, spacing, escapes).",
            )
        if len(signatures) != len(signers):
            raise InvalidInput(
                "signature_count_mismatch",
                f"{len(signers)} signers but {len(signatures)} signatures.",
            )
        return cls(
            body=bytes(body),
            signatures=tuple(bytes(s) for s in signatures),
            id=hashlib.sha256(body).hexdigest(),
            chain=chain,
            type=type_,
            payload=payload,
            signers=tuple(signers),
            nonce=nonce,
            created=created,
            _envelope=envelope,
        )

    @classmethod
    def from_checked(cls, body: bytes, signatures: Sequence[bytes], tx_id: str) -> Transaction:
        """A transaction :meth:`from_body` accepted in a submission check worker
        (:mod:`carledger.node.prechecks`), rebuilt here from what the worker sent back:
        the body is parsed again, not validated again, and ``tx_id`` is the worker's
        sha256 of it. Only for bytes that came through :meth:`from_body`.
        """
        envelope = canonical.parse_checked(body)
        return cls(
            body=body,
            signatures=tuple(signatures),
            id=tx_id,
            chain=envelope["chain"],
            type=envelope["type"],
            payload=envelope["payload"],
            signers=tuple(envelope["signers"]),
            nonce=envelope["nonce"],
            created=envelope["created"],
            _envelope=envelope,
        )

    @classmethod
    def from_wire(cls, wire: object) -> Transaction:
        """Decode the wire form ``{"body": base64, "signatures": [hex, ...]}``."""
        if not isinstance(wire, Mapping):
            raise InvalidInput("invalid_envelope", "A transaction is a JSON object.")
        extra = set(wire) - {"body", "signatures"}
        if extra:
            raise InvalidInput(
                "unknown_field",
                f"Unknown transaction fields: {', '.join(sorted(map(str, extra)))}.",
            )
        body_b64, sigs = wire.get("body"), wire.get("signatures")
        if not isinstance(body_b64, str):
            raise InvalidInput("missing_field", "The transaction lacks body (base64).")
        if len(body_b64) > (MAX_BODY_BYTES * 4) // 3 + 4:
            raise InvalidInput(
                "body_too_large", f"A transaction body is at most {MAX_BODY_BYTES} bytes."
            )
        try:
            body = base64.b64decode(body_b64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidInput("invalid_base64", "body is not standard base64.") from exc
        if not isinstance(sigs, list) or len(sigs) > MAX_SIGNERS:
            raise InvalidInput(
                "invalid_signers", f"signatures is a list of at most {MAX_SIGNERS} hex strings."
            )
        return cls.from_body(body, [parse_signature_hex(s) for s in sigs])

    def to_wire(self) -> dict[str, Any]:
        return {
            "body": base64.b64encode(self.body).decode("ascii"),
            "signatures": [s.hex() for s in self.signatures],
        }

    def bad_signers(self) -> list[str]:
        """The signers whose signature does not verify (empty when all do)."""
        return [
            key
            for key, sig in zip(self.signers, self.signatures, strict=True)
            if not verify_signature(bytes.fromhex(key), self.body, sig)
        ]

    def verify_signatures(self) -> None:
        """Raise :class:`VerificationFailure` (``bad_signature``) unless all signatures verify."""
        bad = self.bad_signers()
        if bad:
            raise VerificationFailure(
                "bad_signature",
                f"The signature of {bad[0][:16]}... does not verify over this body.",
                signer=bad[0],
            )

    @property
    def envelope(self) -> dict[str, Any]:
        return self._envelope


def build_body(
    *,
    chain: str,
    type: str,
    payload: Mapping[str, Any],
    signers: Sequence[str],
    created: str,
    nonce: str | None = None,
) -> bytes:
    """Canonical body bytes for an unsigned envelope (what every signer signs)."""
    envelope = {
        "chain": chain,
        "created": created,
        "nonce": nonce if nonce is not None else os.urandom(12).hex(),
        "payload": dict(payload),
        "signers": list(signers),
        "type": type,
    }
    canonical.check_plain(envelope)
    body = canonical.encode(envelope)
    Transaction.from_body(body, [b"\0" * 64] * len(signers))  # structural check only
    return body


def sign(body: bytes, keys: Sequence[SigningKey]) -> Transaction:
    """Sign ``body`` with ``keys`` (in the order of its ``signers``)."""
    tx = Transaction.from_body(body, [k.sign(body) for k in keys])
    for key, signer in zip(keys, tx.signers, strict=True):
        if key.public_hex != signer:
            raise VerificationFailure(
                "signer_key_mismatch", "A signing key does not match the signer at its position."
            )
    return tx
