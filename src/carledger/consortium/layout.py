"""What a chain keeps in etcd: key names and the JSON stored under them.

Every key of a chain lives under one prefix (default ``/carledger/<chain_id>/``)::

    head                         {"height": N, "time": T}  the last appended block
    log/b/<height:020d>          a block proposal: {"height", "time", "proposer", "txs"}
    log/s/<height:020d>/<vid>    a validator's checkpoint signature for that height
    pending/<vid>/<seq>          accepted submissions waiting for a block: {"txs": [...]}
    election/<lease:016x>        a leadership candidate (under its lease)
    nodes/<vid>                  a live node (under its lease): {"height", "url"}

Heights are zero-padded so that key order is height order; watches and ranges on
``log/`` see blocks and signatures in one stream. Transactions are in their wire
form (``{"body": base64, "signatures": [hex]}``), exactly the bytes the client signed.

Size: etcd refuses requests over ``--max-request-bytes`` (1.5 MiB by default), so a
block value is kept under :data:`BLOCK_BYTES` and a pending batch under
:data:`BATCH_BYTES`; :func:`pack` splits a list of transactions accordingly.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from carledger.errors import InvalidInput
from carledger.ledger.block import Checkpoint, CheckpointSignature, Proposal, RawTx

__all__ = [
    "BATCH_BYTES",
    "BLOCK_BYTES",
    "ChainKeys",
    "SignedCheckpoint",
    "decode_proposal",
    "decode_txs",
    "encode_proposal",
    "pack",
    "raw_from_wire",
]

#: Largest block value written to etcd (its request limit is 1.5 MiB by default).
BLOCK_BYTES = 1_000_000
#: Largest pending batch; several go into one put, under the request limit.
BATCH_BYTES = 256 * 1024
#: etcd refuses transactions with more than 128 operations (``--max-txn-ops``).
MAX_TXN_OPS = 128


@dataclass(frozen=True, slots=True)
class ChainKeys:
    prefix: str

    @classmethod
    def for_chain(cls, chain_id: str, prefix: str | None = None) -> ChainKeys:
        base = prefix if prefix is not None else f"/carledger/{chain_id}/"
        return cls(base if base.endswith("/") else base + "/")

    def _k(self, rest: str) -> bytes:
        return (self.prefix + rest).encode()

    @property
    def head(self) -> bytes:
        return self._k("head")

    @property
    def log(self) -> bytes:
        return self._k("log/")

    @property
    def blocks(self) -> bytes:
        return self._k("log/b/")

    def block(self, height: int) -> bytes:
        return self._k(f"log/b/{height:020d}")

    @property
    def sigs(self) -> bytes:
        return self._k("log/s/")

    def sigs_at(self, height: int) -> bytes:
        return self._k(f"log/s/{height:020d}/")

    def sig(self, height: int, validator: str) -> bytes:
        return self._k(f"log/s/{height:020d}/{validator}")

    @property
    def pending(self) -> bytes:
        return self._k("pending/")

    def pending_key(self, validator: str, seq: str) -> bytes:
        return self._k(f"pending/{validator}/{seq}")

    @property
    def election(self) -> bytes:
        return self._k("election/")

    def candidate(self, lease: int) -> bytes:
        return self._k(f"election/{lease:016x}")

    @property
    def nodes(self) -> bytes:
        return self._k("nodes/")

    def node(self, validator: str) -> bytes:
        return self._k(f"nodes/{validator}")

    def parse_log_key(self, key: bytes) -> tuple[str, int, str]:
        """``("b", height, "")`` for a block key, ``("s", height, vid)`` for a signature."""
        rest = key.decode()[len(self.prefix) + len("log/") :]
        kind, _, tail = rest.partition("/")
        height, _, validator = tail.partition("/")
        if kind not in ("b", "s") or not height.isdigit():
            raise InvalidInput("invalid_etcd_key", f"Not a log key: {key!r}.")
        return kind, int(height), validator


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def raw_from_wire(wire: Any) -> RawTx:
    """A :class:`RawTx` from its wire form; :class:`InvalidInput` if malformed."""
    try:
        body = base64.b64decode(wire["body"], validate=True)
        sigs = tuple(bytes.fromhex(s) for s in wire["signatures"])
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise InvalidInput("invalid_transaction", f"Malformed wire transaction: {exc}.") from exc
    return RawTx(body, sigs)


def encode_proposal(proposal: Proposal) -> bytes:
    return _dumps(
        {
            "height": proposal.height,
            "time": proposal.time,
            "proposer": proposal.proposer,
            "txs": [t.to_wire() for t in proposal.txs],
        }
    )


def decode_proposal(data: bytes) -> Proposal:
    try:
        doc = json.loads(data)
        return Proposal(
            int(doc["height"]),
            str(doc["time"]),
            str(doc["proposer"]),
            tuple(raw_from_wire(w) for w in doc["txs"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput("invalid_block", f"Malformed block in etcd: {exc}.") from exc


def encode_txs(wires: Sequence[dict[str, Any]]) -> bytes:
    return _dumps({"txs": list(wires)})


def decode_txs(data: bytes) -> list[dict[str, Any]]:
    try:
        txs = json.loads(data)["txs"]
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput("invalid_batch", f"Malformed pending batch: {exc}.") from exc
    if not isinstance(txs, list):
        raise InvalidInput("invalid_batch", "A pending batch holds a list of transactions.")
    return txs


def wire_size(wire: dict[str, Any]) -> int:
    return len(_dumps(wire)) + 1


def pack(wires: Iterable[dict[str, Any]], limit: int) -> list[list[dict[str, Any]]]:
    """Split ``wires`` (in order) into groups whose encoded size stays under ``limit``."""
    groups: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    size = 64
    for wire in wires:
        n = wire_size(wire)
        if current and size + n > limit:
            groups.append(current)
            current, size = [], 64
        current.append(wire)
        size += n
    if current:
        groups.append(current)
    return groups


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    """A validator's signature together with the checkpoint it claims to sign."""

    checkpoint: Checkpoint
    signature: CheckpointSignature

    def encode(self) -> bytes:
        return _dumps({"checkpoint": self.checkpoint.to_dict(), **self.signature.to_dict()})

    @classmethod
    def decode(cls, data: bytes) -> SignedCheckpoint:
        try:
            doc = json.loads(data)
            return cls(Checkpoint.from_dict(doc["checkpoint"]), CheckpointSignature.from_dict(doc))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(
                "invalid_checkpoint", f"Malformed checkpoint signature: {exc}."
            ) from exc

    def verifies(self, key_hex: str) -> bool:
        return bool(
            self.checkpoint.valid_signers([self.signature], {self.signature.validator: key_hex})
        )
