"""Blocks fetched from a peer are accepted only with a certificate and the certified txs."""

from __future__ import annotations

import pytest

from carledger.consortium.catchup import FetchedBlock, check_fetched
from carledger.crypto.keys import SigningKey
from carledger.errors import VerificationFailure
from carledger.ledger import merkle
from carledger.ledger.block import BlockHeader, RawTx, leaf_input, tx_root

KEYS = {f"node-{i}": SigningKey(bytes([i]) * 32) for i in range(1, 5)}
PUB = {v: k.public_hex for v, k in KEYS.items()}
HEAD = BlockHeader(
    "c",
    4,
    "00" * 32,
    "2026-01-01T00:00:00.000Z",
    "x",
    0,
    merkle.EMPTY_ROOT.hex(),
    "aa" * 32,
    0,
    merkle.EMPTY_ROOT.hex(),
)
TXS = (RawTx(b'{"a":1}', ()), RawTx(b'{"a":2}', ()))
CODES = tuple((t.id, "ok") for t in TXS)


def block(signers: list[str], txs: tuple[RawTx, ...] = TXS, prev: str = HEAD.hash) -> FetchedBlock:
    time = "2026-01-01T00:00:01.000Z"
    leaves = [leaf_input(i, 5, time, c) for i, c in CODES]
    header = BlockHeader("c", 5, prev, time, "node-1", 2, tx_root(leaves), "bb" * 32, 2, "cc" * 32)
    sigs = tuple(header.checkpoint().sign(v, KEYS[v]) for v in signers)
    return FetchedBlock(header, sigs, CODES, txs, "http://peer")


def test_certified_block_is_accepted() -> None:
    proposal, certificate = check_fetched(block(["node-1", "node-2", "node-3"]), HEAD, PUB)
    assert proposal.height == 5
    assert proposal.txs == TXS
    assert {s.validator for s in certificate} == {"node-1", "node-2", "node-3"}


@pytest.mark.parametrize(
    ("fetched", "code"),
    [
        (block(["node-1", "node-2"]), "block_not_certified"),
        (block(["node-1", "node-2", "node-3"], txs=TXS[::-1]), "block_txs_mismatch"),
        (block(["node-1", "node-2", "node-3"], txs=TXS[:1]), "block_txs_mismatch"),
        (block(["node-1", "node-2", "node-3"], prev="11" * 32), "block_does_not_extend"),
    ],
)
def test_bad_blocks_are_refused(fetched: FetchedBlock, code: str) -> None:
    with pytest.raises(VerificationFailure) as info:
        check_fetched(fetched, HEAD, PUB)
    assert info.value.code == code
