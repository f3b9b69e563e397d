"""Preparing a consortium node: its data directory and its :class:`EtcdOrdering`.

Used by ``carledger up --ordering etcd``. On first start the data directory is
created from ``--genesis`` and ``--node-key``; the validator id is the one the
genesis gives that key, or ``--validator`` for a validator added later by a
``validator.add`` record (it signs checkpoints from the height that record named).
On later starts ``--genesis`` must be the genesis the directory already holds.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from carledger.crypto.keys import SigningKey
from carledger.errors import InvalidInput, StorageError
from carledger.ledger.genesis import Genesis
from carledger.node.home import Home, env_passphrase, write_key_file

from .etcd import EtcdTLS
from .ordering import EtcdOrdering, EtcdSettings

__all__ = ["ConsortiumOptions", "build_ordering", "prepare_home"]


@dataclass(frozen=True, slots=True)
class ConsortiumOptions:
    etcd: str
    advertise_url: str
    genesis: Path | None = None
    node_key: Path | None = None
    validator: str | None = None
    prefix: str | None = None
    retain_blocks: int = 1000
    block_max_txs: int = 1000
    block_interval_ms: int = 50
    cacert: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    peers: Sequence[str] = ()


def prepare_home(home: Home, options: ConsortiumOptions) -> None:
    """Create ``home`` from the genesis and node key if it is new; check it otherwise."""
    if options.genesis is None:
        if not home.exists():
            raise InvalidInput(
                "missing_option",
                "--ordering etcd on a new data directory needs --genesis (and --node-key).",
            )
        return
    genesis = Genesis.load(options.genesis)
    if home.exists():
        if home.genesis().bytes != genesis.bytes:
            raise StorageError(
                "genesis_mismatch",
                f"{home.path} holds a different chain than {options.genesis}.",
            )
        return
    home.path.mkdir(parents=True, exist_ok=True)
    home.genesis_path.write_bytes(genesis.bytes)
    if options.node_key is None:
        return  # an observer: follows and serves the chain, signs nothing
    key = SigningKey.from_pem(options.node_key.read_bytes(), env_passphrase())
    validator = options.validator or next(
        (vid for vid, k in genesis.validator_keys().items() if k == key.public_hex), None
    )
    if validator is None:
        raise InvalidInput(
            "validator_key_mismatch",
            "The genesis names no validator with this node key; pass --validator for a "
            "validator added after the genesis.",
        )
    (home.path / "node.json").write_text(json.dumps({"validator": validator}) + "\n")
    write_key_file(home.path / "node.key", key, env_passphrase())


def build_ordering(options: ConsortiumOptions) -> EtcdOrdering:
    endpoints = tuple(u.strip() for u in options.etcd.split(",") if u.strip())
    if not endpoints:
        raise InvalidInput("missing_option", "--ordering etcd needs --etcd URL[,URL...].")
    tls = None
    if options.cacert is not None:
        tls = EtcdTLS(options.cacert, options.cert, options.key)
    elif any(u.startswith("https://") for u in endpoints):
        raise InvalidInput("missing_option", "https:// etcd members need --etcd-cacert.")
    return EtcdOrdering(
        EtcdSettings(
            endpoints=endpoints,
            prefix=options.prefix,
            advertise_url=options.advertise_url,
            peers=tuple(options.peers),
            retain_blocks=options.retain_blocks,
            block_max_txs=options.block_max_txs,
            block_interval_ms=options.block_interval_ms,
            tls=tls,
        )
    )
