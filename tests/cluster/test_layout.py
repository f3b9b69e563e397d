"""etcd key layout and value encodings: round trips and size limits."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carledger.consortium.etcd import prefix_end
from carledger.consortium.layout import (
    BLOCK_BYTES,
    ChainKeys,
    decode_proposal,
    decode_txs,
    encode_proposal,
    encode_txs,
    pack,
    raw_from_wire,
)
from carledger.errors import InvalidInput
from carledger.ledger.block import Proposal, RawTx

KEYS = ChainKeys.for_chain("city")


def wire(n: int) -> dict[str, object]:
    return {"body": base64.b64encode(b"x" * n).decode(), "signatures": ["ab" * 64]}


def test_keys_sort_by_height_and_parse_back() -> None:
    assert KEYS.prefix == "/carledger/city/"
    assert KEYS.block(9) < KEYS.block(10) < KEYS.block(100)
    assert KEYS.block(10).startswith(KEYS.blocks)
    assert KEYS.parse_log_key(KEYS.block(42)) == ("b", 42, "")
    assert KEYS.parse_log_key(KEYS.sig(42, "node-3")) == ("s", 42, "node-3")
    assert KEYS.sig(41, "z") < KEYS.sigs_at(42) <= KEYS.sig(42, "a")
    with pytest.raises(InvalidInput):
        KEYS.parse_log_key(KEYS.head)


def test_prefix_end() -> None:
    assert prefix_end(b"a/") == b"a0"
    assert prefix_end(b"a\xff") == b"b"
    assert prefix_end(b"\xff") == b"\x00"


def test_proposal_round_trip() -> None:
    proposal = Proposal(3, "2026-01-01T00:00:00.000Z", "node-1", (RawTx(b"{}", (b"\x01" * 64,)),))
    assert decode_proposal(encode_proposal(proposal)) == proposal
    assert decode_txs(encode_txs([wire(3)])) == [wire(3)]


@pytest.mark.parametrize(
    "bad",
    [{}, {"body": "!!", "signatures": []}, {"body": "", "signatures": ["zz"]}, None],
)
def test_malformed_wire_is_invalid_input(bad: object) -> None:
    with pytest.raises(InvalidInput):
        raw_from_wire(bad)


@given(st.lists(st.integers(min_value=1, max_value=90_000), max_size=60))
def test_pack_keeps_order_and_limit(sizes: list[int]) -> None:
    wires = [wire(n) for n in sizes]
    groups = pack(wires, BLOCK_BYTES)
    assert [w for g in groups for w in g] == wires
    for group in groups:
        assert len(encode_txs(group)) <= BLOCK_BYTES
        assert group
