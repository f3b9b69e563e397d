"""Blocks, log leaves and checkpoints.

A *proposal* is what ordering decides: height, block time, proposer and the raw
transactions in order. Every node executes a proposal and obtains the same
:class:`BlockHeader`: the proposal's fields plus the transaction Merkle root (over
the transactions *with their validity codes*), the state root, and the log size and
root after appending the block's transactions. ``hash = sha256(canonical header)``.

Log leaf (RFC 9162 leaf input) of a transaction: its 32-byte id, the height and the
block time (Unix milliseconds) of its block, each as 8 bytes big-endian, then its
validity code in ASCII (``ok`` for an accepted record). So an inclusion proof proves
that a record was committed, when, and whether it was accepted.

A :class:`Checkpoint` is what validators sign: chain, height, block hash, state root,
log size and log root. Signed bytes are the canonical JSON of the checkpoint with
``"kind": "carledger.checkpoint.v1"``, which can never parse as a transaction body.
"""

from __future__ import annotations

import base64
import datetime as _dt
import functools
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from carledger.crypto.keys import SigningKey, verify_signature
from carledger.encoding import canonical
from carledger.encoding.timefmt import is_utc_time
from carledger.errors import InvalidInput, VerificationFailure
from carledger.ledger import merkle

__all__ = [
    "OK",
    "BlockHeader",
    "Checkpoint",
    "CheckpointSignature",
    "Proposal",
    "RawTx",
    "format_time",
    "leaf_input",
    "parse_leaf_input",
    "parse_time",
    "tx_root",
]

OK = "ok"
CHECKPOINT_KIND = "carledger.checkpoint.v1"
BLOCK_TIME_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z", re.ASCII
)
HEX64 = re.compile(r"[0-9a-f]{64}")


def format_time(epoch_ms: int) -> str:
    """Block time text for a Unix time in milliseconds: ``YYYY-MM-DDTHH:MM:SS.mmmZ``."""
    moment = _dt.datetime.fromtimestamp(epoch_ms / 1000, tz=_dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


@functools.lru_cache(maxsize=256)
def parse_time(text: str) -> int:
    """Unix milliseconds of a block time ``YYYY-MM-DDTHH:MM:SS.mmmZ``."""
    if not is_utc_time(text, fraction=(3, 3)):
        raise InvalidInput("invalid_block_time", f"Bad block time {text!r}.")
    moment = _dt.datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=_dt.UTC)
    return int(moment.timestamp()) * 1000 + int(text[20:23])


def leaf_input(tx_id: str, height: int, time: str, code: str) -> bytes:
    """The RFC 9162 leaf input of a transaction committed at ``height`` and block ``time``."""
    return (
        bytes.fromhex(tx_id)
        + height.to_bytes(8, "big")
        + parse_time(time).to_bytes(8, "big")
        + code.encode("ascii")
    )


def parse_leaf_input(data: bytes) -> tuple[str, int, int, str]:
    """``(tx_id, height, time_ms, code)`` of a leaf input; ``InvalidInput`` if malformed."""
    if len(data) < 49 or not data[48:].isascii():
        raise InvalidInput("invalid_leaf", "A log leaf is id, height, time and an ASCII code.")
    return (
        data[:32].hex(),
        int.from_bytes(data[32:40], "big"),
        int.from_bytes(data[40:48], "big"),
        data[48:].decode("ascii"),
    )


def tx_root(leaves: Iterable[bytes]) -> str:
    """RFC 9162 root (hex) over the leaf inputs of one block's transactions."""
    rng = merkle.CompactRange()
    for leaf in leaves:
        rng.append(merkle.leaf_hash(leaf))
    return rng.root().hex()


@dataclass(frozen=True, slots=True)
class RawTx:
    """A transaction as ordered: body bytes and signatures, not yet validated."""

    body: bytes
    signatures: tuple[bytes, ...]

    def to_wire(self) -> dict[str, Any]:
        return {
            "body": base64.b64encode(self.body).decode("ascii"),
            "signatures": [s.hex() for s in self.signatures],
        }

    @property
    def id(self) -> str:
        return hashlib.sha256(self.body).hexdigest()


@dataclass(frozen=True, slots=True)
class Proposal:
    """What ordering fixes for one height; every node executes it the same way."""

    height: int
    time: str
    proposer: str
    txs: tuple[RawTx, ...]

    def __post_init__(self) -> None:
        if self.height < 1:
            raise InvalidInput("invalid_block", "Proposals start at height 1.")
        if not is_utc_time(self.time, fraction=(3, 3)):
            raise InvalidInput("invalid_block", f"Bad block time {self.time!r}.")


@dataclass(frozen=True, slots=True)
class BlockHeader:
    chain: str
    height: int
    prev: str
    time: str
    proposer: str
    tx_count: int
    tx_root: str
    state_root: str
    log_size: int
    log_root: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "chain": self.chain,
            "height": self.height,
            "prev": self.prev,
            "time": self.time,
            "proposer": self.proposer,
            "tx_count": self.tx_count,
            "tx_root": self.tx_root,
            "state_root": self.state_root,
            "log_size": self.log_size,
            "log_root": self.log_root,
        }

    @property
    def encoded(self) -> bytes:
        return canonical.encode(self.to_dict())

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.encoded).hexdigest()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BlockHeader:
        try:
            header = cls(**{k: data[k] for k in cls.__dataclass_fields__})
        except (KeyError, TypeError) as exc:
            raise InvalidInput("invalid_block", f"Malformed block header: {exc}.") from exc
        for name in ("prev", "tx_root", "state_root", "log_root"):
            if not isinstance(getattr(header, name), str) or not HEX64.fullmatch(
                getattr(header, name)
            ):
                raise InvalidInput("invalid_block", f"Block header {name} is not a hex hash.")
        for name in ("height", "tx_count", "log_size"):
            if type(getattr(header, name)) is not int or getattr(header, name) < 0:
                raise InvalidInput("invalid_block", f"Block header {name} is not a count.")
        return header

    @classmethod
    def from_bytes(cls, data: bytes) -> BlockHeader:
        doc = canonical.decode_canonical(data)  # stored headers are canonical: the fast way
        return cls.from_dict(doc if doc is not None else canonical.decode(data))

    def checkpoint(self) -> Checkpoint:
        return Checkpoint(
            chain=self.chain,
            height=self.height,
            block_hash=self.hash,
            state_root=self.state_root,
            log_size=self.log_size,
            log_root=self.log_root,
        )


@dataclass(frozen=True, slots=True)
class CheckpointSignature:
    validator: str
    signature: bytes

    def to_dict(self) -> dict[str, str]:
        return {"validator": self.validator, "signature": self.signature.hex()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CheckpointSignature:
        sig = data.get("signature")
        validator = data.get("validator")
        if not isinstance(sig, str) or not re.fullmatch(r"[0-9a-f]{128}", sig):
            raise InvalidInput("invalid_checkpoint", "A checkpoint signature is 128 hex.")
        if not isinstance(validator, str):
            raise InvalidInput("invalid_checkpoint", "A checkpoint signature names its validator.")
        return cls(validator, bytes.fromhex(sig))


@dataclass(frozen=True, slots=True)
class Checkpoint:
    chain: str
    height: int
    block_hash: str
    state_root: str
    log_size: int
    log_root: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "chain": self.chain,
            "height": self.height,
            "block_hash": self.block_hash,
            "state_root": self.state_root,
            "log_size": self.log_size,
            "log_root": self.log_root,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Checkpoint:
        try:
            cp = cls(**{k: data[k] for k in cls.__dataclass_fields__})
        except (KeyError, TypeError) as exc:
            raise InvalidInput("invalid_checkpoint", f"Malformed checkpoint: {exc}.") from exc
        if type(cp.height) is not int or type(cp.log_size) is not int:
            raise InvalidInput("invalid_checkpoint", "height and log_size are integers.")
        for name in ("block_hash", "state_root", "log_root"):
            value = getattr(cp, name)
            if not isinstance(value, str) or not HEX64.fullmatch(value):
                raise InvalidInput("invalid_checkpoint", f"Checkpoint {name} is not a hex hash.")
        return cp

    def signing_bytes(self) -> bytes:
        return canonical.encode({"kind": CHECKPOINT_KIND, **self.to_dict()})

    def sign(self, validator: str, key: SigningKey) -> CheckpointSignature:
        return CheckpointSignature(validator, key.sign(self.signing_bytes()))

    def valid_signers(
        self, signatures: Sequence[CheckpointSignature], validator_keys: Mapping[str, str]
    ) -> set[str]:
        """The validators among ``validator_keys`` whose signature in ``signatures`` verifies."""
        data = self.signing_bytes()
        good: set[str] = set()
        for sig in signatures:
            key = validator_keys.get(sig.validator)
            if key is not None and verify_signature(bytes.fromhex(key), data, sig.signature):
                good.add(sig.validator)
        return good

    def verify_certified(
        self,
        signatures: Sequence[CheckpointSignature],
        validator_keys: Mapping[str, str],
        quorum: int,
    ) -> set[str]:
        """Raise :class:`VerificationFailure` unless ``quorum`` distinct validators signed."""
        good = self.valid_signers(signatures, validator_keys)
        if len(good) < quorum:
            raise VerificationFailure(
                "checkpoint_not_certified",
                f"The checkpoint at height {self.height} has {len(good)} valid validator "
                f"signatures; {quorum} are needed.",
                valid=len(good),
                quorum=quorum,
            )
        return good
