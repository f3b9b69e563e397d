"""Block execution and commit: replay protection, header fields, ordering checks and
crash safety (simulated faults inside the block's SQLite transaction, and a real
SIGKILL of a child process in the middle of committing blocks).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from carledger.crypto.keys import SigningKey, verify_signature
from carledger.errors import Conflict, InvalidInput, StorageError
from carledger.ledger import merkle_naive
from carledger.ledger.block import BlockHeader, Proposal, RawTx, format_time
from carledger.ledger.genesis import Genesis
from carledger.ledger.ledger import CommittedBlock, Ledger, NodeIdentity, build_registry
from carledger.ledger.tx import Transaction, build_body, sign
from carledger.store.sqlite import SQLiteStore

ADMIN = SigningKey(b"A" * 32)
NODE = SigningKey(b"N" * 32)
MALLORY = SigningKey(b"M" * 32)
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z in ms

GENESIS_DOC: dict[str, Any] = {
    "format": "carledger.genesis.v1",
    "chain_id": "test-chain",
    "created": "2026-01-01T00:00:00Z",
    "orgs": [
        {
            "id": "city",
            "name": "City",
            "roles": ["registry", "dealer"],
            "admins": [ADMIN.public_hex],
        }
    ],
    "validators": [{"id": "node-1", "org": "city", "key": NODE.public_hex}],
}
GENESIS = Genesis.from_dict(GENESIS_DOC)


def member_key(n: int) -> SigningKey:
    return SigningKey(n.to_bytes(32, "big"))


def enrol(n: int, *, chain: str = "test-chain", nonce: str | None = None) -> Transaction:
    body = build_body(
        chain=chain,
        type="member.enrol",
        payload={
            "key": member_key(n).public_hex,
            "org": "city",
            "member": f"m{n}",
            "roles": ["dealer"],
        },
        signers=[ADMIN.public_hex],
        created="2026-01-01T00:00:00Z",
        nonce=nonce or f"e{n}",
    )
    return sign(body, [ADMIN])


def raw(tx: Transaction) -> RawTx:
    return RawTx(tx.body, tx.signatures)


def open_ledger(path: Path, genesis: Genesis = GENESIS) -> Ledger:
    store = SQLiteStore.open(path)
    return Ledger(store, genesis, build_registry(genesis), NodeIdentity("node-1", NODE))


def proposal(height: int, *txs: Transaction | RawTx, second: int | None = None) -> Proposal:
    time = format_time(T0 + 1000 * (second if second is not None else height))
    return Proposal(
        height, time, "node-1", tuple(t if isinstance(t, RawTx) else raw(t) for t in txs)
    )


@pytest.fixture
def ledger(tmp_path: Path) -> Any:
    led = open_ledger(tmp_path / "ledger.db")
    yield led
    led.store.close()  # type: ignore[attr-defined]


def codes(block: CommittedBlock) -> list[str]:
    return [r.code for r in block.results]


# --- replay, chain, type -----------------------------------------------------------------------


def test_replay_in_a_later_block(ledger: Ledger) -> None:
    tx = enrol(1)
    assert codes(ledger.apply(proposal(1, tx))) == ["ok"]
    block = ledger.apply(proposal(2, tx))
    assert codes(block) == ["duplicate_transaction"]
    # The refused copy stays in the block, with its code, as a log leaf.
    assert block.header.tx_count == 1 and block.header.log_size == 2
    [first, second] = ledger.store.txs_range(0, 2)  # type: ignore[attr-defined]
    assert (first.id, first.code, first.height) == (tx.id, "ok", 1)
    assert (second.id, second.code, second.height) == (tx.id, "duplicate_transaction", 2)
    assert second.body == tx.body


def test_replay_within_one_block(ledger: Ledger) -> None:
    tx = enrol(1)
    block = ledger.apply(proposal(1, tx, tx))
    assert codes(block) == ["ok", "duplicate_transaction"]
    assert block.header.tx_count == 2


@pytest.mark.parametrize("copy", ["forged-signature", "no-signature"])
def test_an_invalid_copy_does_not_burn_the_id(ledger: Ledger, copy: str) -> None:
    # Anyone who sees a pending transaction can put its body in a block first with a
    # junk signature (or none). That copy is refused; it must not make the genuine,
    # correctly signed transaction a "duplicate" for ever after.
    tx = enrol(1)
    bad = RawTx(tx.body, (MALLORY.sign(tx.body),) if copy == "forged-signature" else ())
    first = ledger.apply(proposal(1, bad))
    assert codes(first) == [
        "bad_signature" if copy == "forged-signature" else "signature_count_mismatch"
    ]
    assert ledger.state(f"member/{member_key(1).public_hex}") is None
    assert codes(ledger.apply(proposal(2, tx))) == ["ok"]


def test_an_invalid_copy_earlier_in_the_same_block_does_not_burn_the_id(ledger: Ledger) -> None:
    tx = enrol(1)
    block = ledger.apply(proposal(1, RawTx(tx.body, (MALLORY.sign(tx.body),)), tx))
    assert codes(block) == ["bad_signature", "ok"]


def test_a_first_signer_uses_a_nonce_once(ledger: Ledger) -> None:
    assert codes(ledger.apply(proposal(1, enrol(1, nonce="a")))) == ["ok"]
    # A different record (another id) with the same first signer and nonce.
    assert codes(ledger.apply(proposal(2, enrol(2, nonce="a")))) == ["duplicate_nonce"]
    assert ledger.state(f"member/{member_key(2).public_hex}") is None
    # Within one block too.
    block = ledger.apply(proposal(3, enrol(3, nonce="c"), enrol(4, nonce="c")))
    assert codes(block) == ["ok", "duplicate_nonce"]


def test_a_refused_record_does_not_use_up_its_nonce(ledger: Ledger) -> None:
    ledger.apply(proposal(1, enrol(1, nonce="a")))
    assert codes(ledger.apply(proposal(2, enrol(1, nonce="b")))) == ["member_exists"]
    assert codes(ledger.apply(proposal(3, enrol(2, nonce="b")))) == ["ok"]


def test_wrong_chain(ledger: Ledger) -> None:
    other = enrol(1, chain="other-chain")
    other.verify_signatures()  # correctly signed, just for another chain
    assert codes(ledger.apply(proposal(1, other))) == ["wrong_chain"]
    assert ledger.state(f"member/{member_key(1).public_hex}") is None


def test_unknown_type(ledger: Ledger) -> None:
    body = build_body(
        chain="test-chain",
        type="vehicle.teleport",
        payload={"vin": "X"},
        signers=[ADMIN.public_hex],
        created="2026-01-01T00:00:00Z",
        nonce="t",
    )
    assert codes(ledger.apply(proposal(1, sign(body, [ADMIN])))) == ["unknown_type"]


def test_malformed_bodies_stay_in_the_block_with_their_code(ledger: Ledger) -> None:
    good = enrol(1)
    block = ledger.apply(proposal(1, RawTx(b"not json", ()), RawTx(b'{"a":1.5}', ()), good))
    assert codes(block) == ["invalid_json", "float_not_allowed", "ok"]
    assert [r.id for r in block.results][:2] == [
        hashlib.sha256(b"not json").hexdigest(),
        hashlib.sha256(b'{"a":1.5}').hexdigest(),
    ]


def test_a_huge_integer_in_a_body_does_not_halt_the_chain(ledger: Ledger) -> None:
    # 5,000 digits is well under the 64 KiB body limit. Python refuses to parse it
    # with a ValueError; the block must still commit with the transaction refused,
    # or every node would fail on this block for ever.
    body = b'{"chain":"test-chain","n":' + b"9" * 5000 + b"}"
    block = ledger.apply(proposal(1, RawTx(body, ()), enrol(1)))
    assert codes(block) == ["integer_out_of_range", "ok"]


# --- headers ---------------------------------------------------------------------------


def test_header_fields_and_roots(ledger: Ledger) -> None:
    genesis_header = ledger.head
    assert (genesis_header.height, genesis_header.prev, genesis_header.log_size) == (
        0,
        GENESIS.hash,
        0,
    )
    assert genesis_header.tx_root == genesis_header.log_root == hashlib.sha256(b"").hexdigest()

    tx1 = enrol(1)
    proposals = [
        proposal(1, tx1, enrol(2), tx1),
        proposal(2),  # an empty block
        proposal(3, enrol(3), RawTx(b"{}", ()), enrol(4), enrol(5), enrol(6)),
    ]
    all_leaves: list[bytes] = []
    prev = genesis_header
    for p in proposals:
        block = ledger.apply(p)
        h = block.header
        # Leaf input: id, height (8 bytes BE), block time in Unix ms (8 bytes BE), code.
        ms = _unix_ms(p.time)
        leaves = [
            bytes.fromhex(r.id)
            + p.height.to_bytes(8, "big")
            + ms.to_bytes(8, "big")
            + r.code.encode("ascii")
            for r in block.results
        ]
        all_leaves += leaves
        assert (h.chain, h.height, h.time, h.proposer) == ("test-chain", p.height, p.time, "node-1")
        assert h.prev == prev.hash
        assert h.tx_count == len(p.txs)
        assert h.log_size == len(all_leaves)
        assert block.first_seq == len(all_leaves) - len(leaves)
        assert h.tx_root == merkle_naive.mth(leaves).hex()
        assert h.log_root == merkle_naive.mth(all_leaves).hex()
        assert h.hash == hashlib.sha256(h.encoded).hexdigest()
        assert ledger.store.block(p.height) == h.encoded  # type: ignore[attr-defined]
        assert BlockHeader.from_bytes(h.encoded) == h
        sigs = ledger.store.checkpoint_sigs(p.height)  # type: ignore[attr-defined]
        assert [v for v, _ in sigs] == ["node-1"]
        assert verify_signature(NODE.public_key.raw, h.checkpoint().signing_bytes(), sigs[0][1])
        prev = h
    assert ledger.head == prev


def _unix_ms(text: str) -> int:
    moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return round(moment.timestamp() * 1000)


def test_block_time_may_not_go_back(ledger: Ledger) -> None:
    ledger.apply(proposal(1, second=10))
    with pytest.raises(InvalidInput) as info:
        ledger.apply(proposal(2, enrol(1), second=9))
    assert info.value.code == "block_time_regressed"
    assert ledger.height == 1
    assert ledger.apply(proposal(2, second=10)).header.height == 2  # equal time is fine


def test_a_failing_listener_does_not_undo_a_committed_block(
    ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[int] = []

    def failing(block: CommittedBlock) -> None:
        raise OSError(28, "No space left on device")

    ledger.on_commit(failing)
    ledger.on_commit(lambda block: seen.append(block.header.height))
    block = ledger.apply(proposal(1, enrol(1)))
    assert codes(block) == ["ok"] and ledger.height == 1
    assert seen == [1]  # the listeners after the failing one still ran
    assert "after block 1 was committed, a listener failed" in caplog.text
    assert ledger.apply(proposal(2)).header.height == 2


def test_wrong_height(ledger: Ledger) -> None:
    ledger.apply(proposal(1))
    for height in (1, 3, 100):
        with pytest.raises(Conflict) as info:
            ledger.apply(proposal(height))
        assert info.value.code == "wrong_height"
    with pytest.raises(InvalidInput) as bad:
        proposal(0)
    assert bad.value.code == "invalid_block"
    assert ledger.height == 1


def test_same_proposals_same_state_root(tmp_path: Path) -> None:
    proposals = [proposal(1, enrol(1), enrol(2)), proposal(2, enrol(3), enrol(1)), proposal(3)]
    a, b = open_ledger(tmp_path / "a.db"), open_ledger(tmp_path / "b.db")
    genesis_root = a.head.state_root
    headers_a = [a.apply(p).header for p in proposals]
    headers_b = [b.apply(p).header for p in proposals]
    assert headers_a == headers_b
    assert headers_a[0].state_root not in (genesis_root, headers_a[1].state_root)
    assert headers_a[2].state_root == headers_a[1].state_root  # an empty block changes nothing
    a.store.close()  # type: ignore[attr-defined]
    b.store.close()  # type: ignore[attr-defined]


def test_reopen_with_a_different_genesis(tmp_path: Path) -> None:
    led = open_ledger(tmp_path / "l.db")
    led.apply(proposal(1, enrol(1)))
    led.store.close()  # type: ignore[attr-defined]
    other = Genesis.from_dict({**GENESIS_DOC, "chain_id": "other-chain"})
    with pytest.raises(StorageError) as info:
        open_ledger(tmp_path / "l.db", other)
    assert info.value.code == "genesis_mismatch"
    again = open_ledger(tmp_path / "l.db")
    assert again.height == 1
    again.store.close()  # type: ignore[attr-defined]


# --- crash safety -------------------------------------------------------------------------------


class Crash(Exception):
    pass


def _fault_at(point: str) -> Any:
    def fault(name: str) -> None:
        if name == point:
            raise Crash(name)

    return fault


def _reference_headers(path: Path, proposals: list[Proposal]) -> list[BlockHeader]:
    led = open_ledger(path)
    headers = [led.apply(p).header for p in proposals]
    led.store.close()  # type: ignore[attr-defined]
    return headers


@pytest.mark.parametrize("reopen", [False, True], ids=["same-ledger", "reopened"])
@pytest.mark.parametrize("point", ["after_txs", "after_state", "before_commit"])
def test_fault_inside_a_block_leaves_the_previous_height(
    tmp_path: Path, point: str, reopen: bool
) -> None:
    p1, p2 = proposal(1, enrol(1)), proposal(2, enrol(2), enrol(3))
    expected = _reference_headers(tmp_path / "reference.db", [p1, p2])

    path = tmp_path / "ledger.db"
    led = open_ledger(path)
    led.apply(p1)
    store: Any = led.store
    nodes_before = store.log_node_count()
    with pytest.raises(Crash):
        led.apply(p2, fault=_fault_at(point))

    # Memory and disk both still at height 1.
    assert led.height == 1 and led.head == expected[0]
    assert store.head()[0] == 1
    assert store.block(2) is None
    assert store.checkpoint_sigs(2) == []
    assert store.log_node_count() == nodes_before
    for n in (2, 3):
        assert led.state(f"member/{member_key(n).public_hex}") is None
        assert not store.has_tx(enrol(n).id)

    if reopen:
        store.close()
        led = open_ledger(path)  # loads cleanly: roots are checked at load
        assert led.head == expected[0]
    block = led.apply(p2)
    assert codes(block) == ["ok", "ok"]
    assert block.header == expected[1]
    led.store.close()  # type: ignore[attr-defined]


_CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    from carledger.crypto.keys import SigningKey
    from carledger.ledger.block import Proposal, RawTx, format_time
    from carledger.ledger.genesis import Genesis
    from carledger.ledger.ledger import Ledger, NodeIdentity, build_registry
    from carledger.ledger.tx import build_body, sign
    from carledger.store.sqlite import SQLiteStore

    db, genesis_path, admin_seed, node_seed, per_block, t0 = sys.argv[1:7]
    admin, node = SigningKey(bytes.fromhex(admin_seed)), SigningKey(bytes.fromhex(node_seed))
    genesis = Genesis.load(Path(genesis_path))
    ledger = Ledger(SQLiteStore.open(db), genesis, build_registry(genesis),
                    NodeIdentity("node-1", node))
    for height in range(ledger.height + 1, 1_000_000):
        txs = []
        for j in range(int(per_block)):
            n = height * 1000 + j
            member = SigningKey(n.to_bytes(32, "big"))
            body = build_body(
                chain=genesis.chain_id, type="member.enrol",
                payload={"key": member.public_hex, "org": "city", "member": f"m{n}",
                         "roles": ["dealer"]},
                signers=[admin.public_hex], created="2026-01-01T00:00:00Z", nonce=f"c{n}")
            tx = sign(body, [admin])
            txs.append(RawTx(tx.body, tx.signatures))
        ledger.apply(Proposal(height, format_time(int(t0) + height * 1000), "node-1", tuple(txs)))
        print(height, flush=True)
    """
)


def test_sigkill_while_committing_blocks(tmp_path: Path) -> None:
    per_block = 20
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    genesis_path = tmp_path / "genesis.json"
    genesis_path.write_text(json.dumps(GENESIS_DOC))
    db = tmp_path / "ledger.db"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    child = subprocess.Popen(
        [
            sys.executable,
            str(script),
            str(db),
            str(genesis_path),
            ADMIN.seed().hex(),
            NODE.seed().hex(),
            str(per_block),
            str(T0),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    committed: list[int] = []
    try:
        assert child.stdout is not None
        while len(committed) < 6:
            line = child.stdout.readline()
            if not line:
                pytest.fail(f"child exited early: {child.wait()} {child.stderr.read()}")  # type: ignore[union-attr]
            committed.append(int(line))
        os.kill(child.pid, signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=30)
        child.stdout.close()  # type: ignore[union-attr]
        child.stderr.close()  # type: ignore[union-attr]
    assert child.returncode == -signal.SIGKILL
    assert committed == list(range(1, len(committed) + 1))

    led = open_ledger(db)  # raises if the stored roots disagree with the head
    store: Any = led.store
    assert led.height >= committed[-1]
    for height in range(1, led.height + 1):
        header = BlockHeader.from_bytes(store.block(height))
        assert header.tx_count == per_block
        assert header.log_size == height * per_block
        for j in (0, per_block - 1):
            n = height * 1000 + j
            assert led.state(f"member/{member_key(n).public_hex}") is not None
    assert store.block(led.height + 1) is None
    nxt = led.height + 1
    block = led.apply(proposal(nxt, enrol(nxt * 1000 + 999), second=nxt))
    assert codes(block) == ["ok"]
    store.close()
