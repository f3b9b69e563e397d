"""A node's data directory::

DIR/genesis.json     the chain's genesis document (canonical JSON)
DIR/node.json        {"validator": "<id>"} — which genesis validator this node is
DIR/node.key         the validator's Ed25519 key, PKCS#8 PEM (encrypted when a
                     passphrase is given: CARLEDGER_NODE_PASSPHRASE)
DIR/ledger.db        the SQLite store (plus its -wal and -shm files)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from carledger.audit import check_at_start
from carledger.chain import registry_for
from carledger.crypto.keys import SigningKey
from carledger.errors import InvalidInput
from carledger.ledger.genesis import Genesis
from carledger.ledger.ledger import Ledger, NodeIdentity
from carledger.store.sqlite import SQLiteStore

__all__ = ["Home", "write_key_file"]

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
        key = SigningKey.from_pem((self.path / "node.key").read_bytes(), passphrase)
        return NodeIdentity(validator, key)

    def open_ledger(self, passphrase: bytes | None = None, *, durable: bool = True) -> Ledger:
        genesis = self.genesis()
        store = SQLiteStore.open(self.db_path, durable=durable)
        try:
            ledger = Ledger(store, genesis, registry_for(genesis), self.identity(passphrase))
            check_at_start(ledger, store)
        except BaseException:
            store.close()
            raise
        return ledger
