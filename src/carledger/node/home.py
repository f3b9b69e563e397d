"""A node's data directory::

DIR/genesis.json     the chain's genesis document (canonical JSON)
DIR/node.json        {"validator": "<id>"} — which genesis validator this node is
DIR/node.key         the validator's Ed25519 key, PKCS#8 PEM (encrypted when a
                     passphrase is given: CARLEDGER_NODE_PASSPHRASE)
DIR/ledger.db        the SQLite store (plus its -wal and -shm files)
DIR/head.json        {"height", "hash"} of the last block this node committed, kept
                     beside the store so that a store which lost its newest blocks
                     (a deleted write-ahead log, a truncated file, an old copy put
                     back) is noticed at start instead of silently re-used
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from carledger.audit import check_at_start
from carledger.chain import registry_for
from carledger.crypto.keys import SigningKey
from carledger.errors import InvalidInput, StorageError
from carledger.ledger.block import BlockHeader
from carledger.ledger.genesis import Genesis
from carledger.ledger.ledger import Ledger, NodeIdentity
from carledger.store.sqlite import SQLiteStore

__all__ = ["Home", "write_key_file"]

log = logging.getLogger(__name__)

PASSPHRASE_ENV = "CARLEDGER_NODE_PASSPHRASE"  # noqa: S105 (a variable name)


def write_key_file(path: Path, key: SigningKey, passphrase: bytes | None) -> None:
    """Write ``key`` as PKCS#8 PEM readable only by its owner (0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.to_pem(passphrase))


def env_passphrase() -> bytes | None:
    value = os.environ.get(PASSPHRASE_ENV)
    return value.encode() if value else None


@dataclass(frozen=True, slots=True)
class Home:
    path: Path

    @property
    def genesis_path(self) -> Path:
        return self.path / "genesis.json"

    @property
    def db_path(self) -> Path:
        return self.path / "ledger.db"

    def exists(self) -> bool:
        return self.genesis_path.exists()

    def initialise(
        self, genesis: Genesis, validator: str, key: SigningKey, passphrase: bytes | None
    ) -> None:
        """Create the directory for ``validator`` of ``genesis``; refuse to overwrite one."""
        if self.exists():
            raise InvalidInput(
                "data_dir_exists", f"{self.path} already holds a node; choose another --data."
            )
        keys = genesis.validator_keys()
        if keys.get(validator) != key.public_hex:
            raise InvalidInput(
                "validator_key_mismatch",
                f"The genesis names no validator {validator!r} with this node key.",
            )
        self.path.mkdir(parents=True, exist_ok=True)
        self.genesis_path.write_bytes(genesis.bytes)
        (self.path / "node.json").write_text(json.dumps({"validator": validator}) + "\n")
        write_key_file(self.path / "node.key", key, passphrase)

    def genesis(self) -> Genesis:
        if not self.exists():
            raise InvalidInput(
                "no_node_here",
                f"{self.path} holds no node. Create one with `carledger init --data {self.path}` "
                "or start the demo with `carledger up --demo`.",
            )
        return Genesis.load(self.genesis_path)

    def identity(self, passphrase: bytes | None) -> NodeIdentity | None:
        info = self.path / "node.json"
        if not info.exists():
            return None
        validator = json.loads(info.read_text())["validator"]
        try:
            key = SigningKey.from_pem((self.path / "node.key").read_bytes(), passphrase)
        except InvalidInput as exc:
            if exc.code != "key_passphrase_required":
                raise
            raise InvalidInput(
                "key_passphrase_required",
                f"The node key {self.path / 'node.key'} is encrypted; give its passphrase in "
                f"{PASSPHRASE_ENV}.",
            ) from exc
        return NodeIdentity(validator, key)

    def open_ledger(
        self, passphrase: bytes | None = None, *, durable: bool = True, behind_ok: bool = False
    ) -> Ledger:
        """Open the store and run the start-up checks (:func:`carledger.audit.check_at_start`,
        :meth:`check_head_mark`); raises :class:`StorageError` when one fails.

        ``behind_ok``: a store behind ``head.json`` is accepted (a consortium node
        fetches the missing blocks again from the others).
        """
        genesis = self.genesis()
        store = SQLiteStore.open(self.db_path, durable=durable)
        try:
            ledger = Ledger(store, genesis, registry_for(genesis), self.identity(passphrase))
            check_at_start(ledger, store)
            self.check_head_mark(ledger, behind_ok=behind_ok)
        except sqlite3.DatabaseError as exc:
            store.close()
            raise StorageError(
                "store_damaged",
                f"The store {self.db_path} is damaged ({exc}). Run `carledger verify`, then "
                "restore it from a backup or re-sync it from peers.",
            ) from exc
        except BaseException:
            store.close()
            raise
        return ledger

    # -- the head mark -----------------------------------------------------------------

    @property
    def head_mark_path(self) -> Path:
        return self.path / "head.json"

    def record_head(self, header: BlockHeader) -> None:
        """Remember ``header`` as the last committed block (after its commit, atomically).

        Not fsynced: after a power loss the mark may be older than the store, never
        newer, so it can only fail to notice a loss, never invent one.
        A mark that cannot be written (a full disk) is left as it was, with a warning:
        an older mark is one that fails to notice a loss, as after a power loss.
        """
        tmp = self.path / "head.json.tmp"
        try:
            tmp.write_text(json.dumps({"height": header.height, "hash": header.hash}) + "\n")
            os.replace(tmp, self.head_mark_path)
        except OSError as exc:
            log.warning("the head mark %s is not updated: %s", self.head_mark_path, exc)

    def check_head_mark(self, ledger: Ledger, *, behind_ok: bool = False) -> None:
        """Compare the store's blocks with ``head.json``.

        Raises :class:`StorageError`: ``store_behind_head_mark`` when this node had
        committed blocks the store no longer holds (unless ``behind_ok``), and
        ``store_head_mismatch`` when the store holds a different block at that height.
        An unreadable mark is ignored (it is rewritten at the next commit).
        """
        try:
            mark = json.loads(self.head_mark_path.read_text())
            height, block_hash = int(mark["height"]), str(mark["hash"])
        except (OSError, ValueError, KeyError, TypeError):
            return
        if height > ledger.height:
            if behind_ok:
                log.warning(
                    "the store ends at height %d but this node had committed up to %d; "
                    "fetching the missing blocks again from the consortium",
                    ledger.height,
                    height,
                )
                return
            raise StorageError(
                "store_behind_head_mark",
                f"The store ends at height {ledger.height}, but this node had committed up to "
                f"height {height} ({self.head_mark_path}): its write-ahead log was lost, the "
                "file was truncated, or an older copy was put back, and acknowledged records "
                "are missing. Restore the store from a backup (a consortium node re-syncs "
                "from the others); to accept the loss, delete head.json.",
                height=ledger.height,
                committed=height,
            )
        raw = ledger.store.block(height)  # type: ignore[attr-defined]
        if raw is None or BlockHeader.from_bytes(raw).hash != block_hash:
            raise StorageError(
                "store_head_mismatch",
                f"The store holds another block at height {height} than the one this node "
                f"committed ({self.head_mark_path}): it is not this node's store.",
                height=height,
            )
