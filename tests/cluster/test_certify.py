"""Certification bookkeeping: quorum, divergence, dissenters, validator sets by height."""

from __future__ import annotations

import pytest

from carledger.consortium.certify import Certifier, ValidatorHistory
from carledger.consortium.layout import SignedCheckpoint
from carledger.crypto.keys import SigningKey
from carledger.ledger.block import Checkpoint

KEYS = {f"node-{i}": SigningKey(bytes([i]) * 32) for i in range(1, 6)}
PUB = {v: k.public_hex for v, k in KEYS.items()}
FOUR = {v: PUB[v] for v in ("node-1", "node-2", "node-3", "node-4")}


def cp(height: int, root: str = "aa") -> Checkpoint:
    return Checkpoint("c", height, "11" * 32, root * 32, height, "22" * 32)


def signed(validator: str, checkpoint: Checkpoint) -> SignedCheckpoint:
    return SignedCheckpoint(checkpoint, checkpoint.sign(validator, KEYS[validator]))


def test_certified_at_quorum_of_own_checkpoint() -> None:
    c = Certifier(lambda h: FOUR)
    c.own(cp(5))
    for v in ("node-1", "node-2"):
        assert c.add(signed(v, cp(5)))
    assert c.verdict(5).state == "pending"
    assert c.add(signed("node-3", cp(5)))
    verdict = c.verdict(5)
    assert verdict.is_certified
    assert verdict.quorum == 3
    assert verdict.signers == {"node-1", "node-2", "node-3"}


def test_a_dissenter_is_named_and_left_out() -> None:
    c = Certifier(lambda h: FOUR)
    c.own(cp(5))
    for v in ("node-1", "node-2", "node-3"):
        c.add(signed(v, cp(5)))
    c.add(signed("node-4", cp(5, "bb")))
    verdict = c.verdict(5)
    assert verdict.is_certified
    assert verdict.dissenters == {"node-4"}
    assert "node-4" not in verdict.signers


def test_this_node_diverged_when_another_checkpoint_is_certified() -> None:
    c = Certifier(lambda h: FOUR)
    c.own(cp(5, "bb"))
    for v in ("node-1", "node-2", "node-3"):
        c.add(signed(v, cp(5)))
    verdict = c.verdict(5)
    assert verdict.is_diverged
    assert verdict.certified == cp(5)


def test_no_quorum_without_own_is_pending_not_diverged() -> None:
    c = Certifier(lambda h: FOUR)
    c.own(cp(5, "bb"))
    c.add(signed("node-1", cp(5)))
    c.add(signed("node-2", cp(5)))
    assert c.verdict(5).state == "pending"


@pytest.mark.parametrize(
    ("validator", "key", "ok"),
    [
        ("node-5", "node-5", False),  # not a validator at this height
        ("node-1", "node-2", False),  # signed with another key
        ("node-1", "node-1", True),
    ],
)
def test_only_validators_in_force_with_their_key_count(validator: str, key: str, ok: bool) -> None:
    c = Certifier(lambda h: FOUR)
    checkpoint = cp(3)
    sig = SignedCheckpoint(checkpoint, checkpoint.sign(validator, KEYS[key]))
    assert c.add(sig) is ok


def test_validator_history_follows_heights() -> None:
    history = ValidatorHistory()
    history.record(0, FOUR)
    history.record(7, FOUR)  # unchanged: no new entry
    history.record(9, {**FOUR, "node-5": PUB["node-5"]})
    assert history.at(0) == FOUR
    assert history.at(8) == FOUR
    assert "node-5" in history.at(9)
    assert "node-5" in history.at(100)
    c = Certifier(history.at)
    assert not c.add(signed("node-5", cp(8)))
    assert c.add(signed("node-5", cp(9)))
    assert c.verdict(9).quorum == 4


def test_forget_below_drops_old_heights() -> None:
    c = Certifier(lambda h: FOUR)
    c.own(cp(1))
    c.add(signed("node-1", cp(1)))
    c.own(cp(9))
    c.forget_below(5)
    assert c.heights() == [9]
