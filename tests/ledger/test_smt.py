"""The state tree: vectors, a naive cross-check at every bucket depth, staging, proofs.

``SparseMerkleTree`` is held to ``smt_naive`` (a transcription of the definition) on
random and adversarial leaf sets, for bucket depths 0, 1, 4, 8 and 16: the bucket
depth is an implementation detail and must never change a root or a proof.
``docs/vectors/smt.json`` is checked here so other implementations can trust it.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from carledger.errors import Conflict, InvalidInput, StorageError, VerificationFailure
from carledger.ledger import smt
from carledger.ledger.smt import (
    EMPTY,
    MemoryLeafSource,
    SparseMerkleTree,
    SparseProof,
    inner_hash,
    key_hash,
    leaf_hash,
    value_hash,
    verify_absence,
    verify_entry,
    verify_hashed,
    verify_inclusion,
)
from carledger.ledger.smt_naive import naive_proof, naive_root

VECTORS = Path(__file__).resolve().parents[2] / "docs" / "vectors" / "smt.json"
DEPTHS = (0, 1, 4, 8, 16)
TOP = (1 << 256) - 1

Leaves = dict[bytes, bytes]


def kb(i: int) -> bytes:
    return i.to_bytes(32, "big")


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def tree_for(leaves: Leaves, depth: int) -> tuple[SparseMerkleTree, MemoryLeafSource]:
    source = MemoryLeafSource(leaves, block_size=8)
    tree = SparseMerkleTree(depth)
    tree.rebuild(source)
    return tree, source


def random_leaves(n: int, seed: int) -> Leaves:
    rng = random.Random(seed)
    return {rng.randbytes(32): rng.randbytes(32) for _ in range(n)}


def neighbours(k: bytes) -> list[bytes]:
    """Keys next to ``k``: differing in the last bit, a middle bit, the first bit."""
    x = int.from_bytes(k, "big")
    return [kb(x ^ 1), kb(x ^ (1 << 128)), kb(x ^ (1 << 255)), kb((x + 2) & TOP)]


# Keys that share long prefixes: each is a base key with a random tail below bit L.
@st.composite
def clustered_leaves(draw: st.DrawFn, max_size: int = 120) -> Leaves:
    base = draw(st.integers(0, TOP))
    tails = draw(
        st.lists(st.tuples(st.integers(0, 256), st.integers(0, TOP)), min_size=0, max_size=max_size)
    )
    keys = {kb((base >> (256 - n) << (256 - n)) | (t & ((1 << (256 - n)) - 1))) for n, t in tails}
    if draw(st.booleans()):
        keys |= {kb(0), kb(1), kb(TOP), kb(TOP - 1), kb(1 << 255)}
    return {k: sha(k) for k in keys}


def check_proofs(
    tree: SparseMerkleTree, source: MemoryLeafSource, leaves: Leaves, limit: int | None = None
) -> None:
    """Present keys' proofs and their neighbours' absence proofs verify.

    The first few are also compared with the naive proof (slow: it rehashes the whole
    tree); a verifying proof is the only one there is, so that is a spot check.
    """
    root = tree.root
    for i, (k, v) in enumerate(list(leaves.items())[:limit]):
        proof = tree.prove(k, source)
        verify_hashed(root, k, v, proof)
        if i < 3:
            assert proof == naive_proof(leaves, k)
        for other in neighbours(k):
            if other not in leaves:
                absent = tree.prove(other, source)
                verify_hashed(root, other, None, absent)
                if i < 3:
                    assert absent == naive_proof(leaves, other)


# --------------------------------------------------------------------------- vectors


def load_vectors() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(VECTORS.read_text(encoding="utf-8"))
    assert data["format"] == "carledger.smt-vectors.v1"
    return data


def vector_leaves(case: dict[str, Any]) -> Leaves:
    leaves: Leaves = {}
    for entry in case["leaves"]:
        kh, vh = bytes.fromhex(entry["key_hash"]), bytes.fromhex(entry["value_hash"])
        if "key" in entry:
            assert key_hash(entry["key"]) == kh
            assert value_hash(entry["value"].encode("utf-8")) == vh
        assert leaf_hash(kh, vh).hex() == entry["leaf_hash"]
        leaves[kh] = vh
    return leaves


def claim_of(entry: dict[str, Any]) -> tuple[bytes, bytes | None]:
    if "key" in entry:
        value = entry["value"]
        return key_hash(entry["key"]), None if value is None else value_hash(value.encode())
    value_h = entry["value_hash"]
    return bytes.fromhex(entry["key_hash"]), None if value_h is None else bytes.fromhex(value_h)


@pytest.mark.parametrize("case", load_vectors()["cases"], ids=lambda c: c["name"])
def test_vector_case(case: dict[str, Any]) -> None:
    leaves = vector_leaves(case)
    root = bytes.fromhex(case["root"])
    assert naive_root(leaves) == root
    for depth in DEPTHS:
        tree, source = tree_for(leaves, depth)
        assert tree.root == root
        for entry in case["proofs"]:
            kh, vh = claim_of(entry)
            if entry["valid"]:
                proof = SparseProof.from_dict(entry["proof"])
                assert proof.to_dict() == entry["proof"]
                assert tree.prove(kh, source) == proof
                verify_hashed(root, kh, vh, proof)
            else:
                with pytest.raises((InvalidInput, VerificationFailure)) as caught:
                    verify_hashed(root, kh, vh, SparseProof.from_dict(entry["proof"]))
                assert caught.value.code == entry["error"], entry["why"]


def test_vectors_cover_every_kind_of_claim() -> None:
    proofs = [p for case in load_vectors()["cases"] for p in case["proofs"]]
    valid = [p for p in proofs if p["valid"]]
    assert any(claim_of(p)[1] is None and p["proof"]["leaf"] is None for p in valid)
    assert any(claim_of(p)[1] is None and p["proof"]["leaf"] is not None for p in valid)
    assert any(len(p["proof"]["siblings"]) == 256 for p in valid)
    assert {p["error"] for p in proofs if not p["valid"]} == {
        "invalid_proof",
        "state_proof_invalid",
    }


def test_hand_checked_small_trees() -> None:
    # Empty: EMPTY, and any key is absent with nothing at all.
    assert naive_root({}) == SparseMerkleTree(4).root == bytes(32)
    verify_absence(bytes(32), "vehicle/X", SparseProof((), None))

    # One leaf: the root is the leaf itself.
    k1, v1 = "vehicle/KMHXX81CBLU000001", b'{"odometer_km":12000}'
    kh1, vh1 = sha(k1.encode()), sha(v1)
    one_root = sha(b"\x00" + kh1 + vh1)
    tree, source = tree_for({kh1: vh1}, 16)
    assert tree.root == one_root == leaf_hash(kh1, vh1)
    verify_inclusion(one_root, k1, v1, SparseProof((), (kh1, vh1)))

    # Two leaves: inner(leaf, leaf) at their first differing bit, EMPTY-sided above.
    k2, v2 = "vehicle/KMHXX81CBLU000002", b'{"odometer_km":530}'
    kh2, vh2 = sha(k2.encode()), sha(v2)
    x1, x2 = int.from_bytes(kh1, "big"), int.from_bytes(kh2, "big")
    split = 256 - (x1 ^ x2).bit_length()
    low, high = (kh1, vh1), (kh2, vh2)
    if x1 > x2:
        low, high = high, low
    node = sha(b"\x01" + sha(b"\x00" + low[0] + low[1]) + sha(b"\x00" + high[0] + high[1]))
    for d in range(split - 1, -1, -1):
        bit = (x1 >> (255 - d)) & 1
        node = sha(b"\x01" + bytes(32) + node) if bit else sha(b"\x01" + node + bytes(32))
    tree, source = tree_for({kh1: vh1, kh2: vh2}, 16)
    assert tree.root == node
    proof = tree.prove(k1, source)
    assert proof.siblings == (EMPTY,) * split + (sha(b"\x00" + kh2 + vh2),)
    verify_inclusion(node, k1, v1, proof)


# --------------------------------------------------------------------------- roots


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(0, 5000), seed=st.integers(0, 2**32))
@example(n=5000, seed=1)
@example(n=1, seed=2)
@example(n=2, seed=3)
def test_root_matches_naive_at_every_bucket_depth(n: int, seed: int) -> None:
    leaves = random_leaves(n, seed)
    expected = naive_root(leaves)
    for depth in DEPTHS:
        tree, _ = tree_for(leaves, depth)
        assert tree.root == expected, depth


@settings(max_examples=40, deadline=None)
@given(leaves=clustered_leaves())
def test_adversarial_prefixes_roots_and_proofs(leaves: Leaves) -> None:
    expected = naive_root(leaves)
    for depth in DEPTHS:
        tree, source = tree_for(leaves, depth)
        assert tree.root == expected, depth
        check_proofs(tree, source, leaves)


def test_keys_differing_only_in_the_last_bit_need_256_siblings() -> None:
    leaves = {kb(6): sha(b"a"), kb(7): sha(b"b")}
    for depth in DEPTHS:
        tree, source = tree_for(leaves, depth)
        proof = tree.prove(kb(6), source)
        assert len(proof.siblings) == 256
        assert proof.siblings[-1] == leaf_hash(kb(7), sha(b"b"))
        verify_hashed(tree.root, kb(6), sha(b"a"), proof)
        verify_hashed(tree.root, kb(4), None, tree.prove(kb(4), source))


# --------------------------------------------------------------------------- staging

Batch = list[tuple[str, int, int]]  # (op, which, value seed)


@st.composite
def batches(draw: st.DrawFn) -> list[tuple[Batch, bool]]:
    op = st.tuples(
        st.sampled_from(["insert", "update", "delete"]), st.integers(0, 10**6), st.integers()
    )
    return draw(
        st.lists(st.tuples(st.lists(op, max_size=60), st.booleans()), min_size=1, max_size=6)
    )


def apply_batch(
    source: MemoryLeafSource, leaves: Leaves, batch: Batch, rng: random.Random
) -> dict[bytes, bytes | None]:
    """Apply a batch to ``source`` and ``leaves``; returns the undo (old value hashes)."""
    undo: dict[bytes, bytes | None] = {}
    keys = sorted(leaves)
    for op, which, seed in batch:
        if op == "insert" or not keys:
            k = rng.randbytes(32)
            if op == "insert" and which % 3 == 0 and keys:  # next to an existing key
                k = neighbours(keys[which % len(keys)])[which % 4]
        else:
            k = keys[which % len(keys)]
        undo.setdefault(k, leaves.get(k))
        new = None if op == "delete" else sha(seed.to_bytes(16, "big", signed=True))
        source.set(k, new)
        if new is None:
            leaves.pop(k, None)
        else:
            leaves[k] = new
    return undo


@settings(max_examples=25, deadline=None)
@given(
    start=st.integers(0, 400),
    seed=st.integers(0, 2**32),
    plan=batches(),
    depth=st.sampled_from(DEPTHS),
)
@example(
    start=3000,
    seed=5,
    plan=[
        ([(op, i, i) for op in ("update", "insert", "delete") for i in range(200)], False),
        ([("delete", i, i) for i in range(100)], True),
        ([("insert", i, i) for i in range(100)], False),
    ],
    depth=16,
)
def test_staged_updates_equal_rebuild(
    start: int, seed: int, plan: list[tuple[Batch, bool]], depth: int
) -> None:
    rng = random.Random(seed)
    leaves = random_leaves(start, seed)
    tree, source = tree_for(leaves, depth)
    persisted = {row[0]: row for row in tree.bucket_rows()}
    for batch, crash in plan:
        before = tree.root
        undo = apply_batch(source, leaves, batch, rng)
        staged = tree.stage(undo, source)
        assert staged.root == naive_root(leaves)
        assert tree.root == before  # staging never touches the tree
        if crash:  # the block's transaction rolled back: undo the writes, drop staged
            for k, old in undo.items():
                source.set(k, old)
                if old is None:
                    leaves.pop(k, None)
                else:
                    leaves[k] = old
            continue
        for row in staged.bucket_rows:
            persisted[row[0]] = row
        tree.commit(staged)
        assert tree.root == staged.root
    assert tree.root == naive_root(leaves)
    assert tree.bucket_rows() == [r for _, r in sorted(persisted.items()) if r[2]]
    restarted = SparseMerkleTree(depth)
    restarted.load_buckets(persisted.values())  # count-0 rows are allowed and mean empty
    assert restarted.root == tree.root
    rebuilt = SparseMerkleTree(depth)
    assert rebuilt.rebuild(source) == tree.bucket_rows()
    check_proofs(tree, source, leaves, limit=40)


def test_uncommitted_stage_leaves_tree_unchanged() -> None:
    leaves = random_leaves(300, 1)
    tree, source = tree_for(leaves, 4)
    before, rows = tree.root, tree.bucket_rows()
    k = next(iter(leaves))
    source.set(k, None)
    staged = tree.stage([k], source)
    assert staged.root != before
    assert tree.root == before
    assert tree.bucket_rows() == rows
    source.set(k, leaves[k])  # rolled back
    assert tree.stage([k], source).root == before
    verify_hashed(before, k, leaves[k], tree.prove(k, source))


def test_stage_with_no_changes_is_the_current_root() -> None:
    tree, source = tree_for(random_leaves(50, 2), 4)
    staged = tree.stage([], source)
    assert staged.root == tree.root
    assert staged.bucket_rows == ()


def test_stale_or_foreign_staged_roots_are_refused() -> None:
    leaves = random_leaves(100, 3)
    tree, source = tree_for(leaves, 4)
    keys = list(leaves)
    source.set(keys[0], sha(b"x"))
    first = tree.stage([keys[0]], source)
    second = tree.stage([keys[0]], source)
    tree.commit(first)
    with pytest.raises(Conflict) as caught:
        tree.commit(second)
    assert caught.value.code == "stale_staged_root"
    other, _ = tree_for(leaves, 4)
    with pytest.raises(Conflict):
        other.commit(tree.stage([], source))
    staged = tree.stage([], source)
    tree.load_buckets(tree.bucket_rows())
    with pytest.raises(Conflict):
        tree.commit(staged)


# --------------------------------------------------------------------------- bucket rows


def test_load_buckets_reproduces_the_root() -> None:
    leaves = random_leaves(3000, 4)
    for depth in DEPTHS:
        tree, _ = tree_for(leaves, depth)
        restarted = SparseMerkleTree(depth)
        restarted.load_buckets(tree.bucket_rows())
        assert restarted.root == tree.root
        assert restarted.bucket_rows() == tree.bucket_rows()


def test_lone_leaves_collapse_across_bucket_borders() -> None:
    # One leaf in the whole tree: its bucket row (count 1) must carry it to the root.
    leaves = {kb(1 << 200): sha(b"only")}
    tree, source = tree_for(leaves, 16)
    assert tree.bucket_rows() == [(0, leaf_hash(kb(1 << 200), sha(b"only")), 1)]
    assert tree.root == leaf_hash(kb(1 << 200), sha(b"only"))
    assert tree.prove(kb(1 << 201), source) == SparseProof((), (kb(1 << 200), sha(b"only")))


H = sha(b"h")


@pytest.mark.parametrize(
    "rows",
    [
        [(16, H, 2)],
        [(-1, H, 2)],
        [(0, H, 3)],
        [(0, H, 0)],
        [(0, EMPTY, 1)],
        [(0, H[:31], 2)],
        [(0, bytearray(H), 2)],
        [("0", H, 2)],
        [(1, H, 2), (1, H, 1)],
        [(0, H)],
    ],
)
def test_load_buckets_refuses_malformed_rows(rows: list[Any]) -> None:
    tree, _ = tree_for(random_leaves(20, 5), 4)
    with pytest.raises(InvalidInput) as caught:
        tree.load_buckets(rows)
    assert caught.value.code == "invalid_bucket_row"
    assert tree.root == EMPTY  # a failed load leaves an empty tree, not a half one


@pytest.mark.parametrize("depth", [-1, 21])
def test_bucket_depth_is_bounded(depth: int) -> None:
    with pytest.raises(InvalidInput):
        SparseMerkleTree(depth)


# --------------------------------------------------------------------------- proofs


@settings(max_examples=15, deadline=None)
@given(n=st.integers(0, 300), seed=st.integers(0, 2**32), depth=st.sampled_from(DEPTHS))
@example(n=3000, seed=7, depth=16)
def test_string_key_proofs_verify(n: int, seed: int, depth: int) -> None:
    entries = {f"vehicle/KMH{seed:08d}{i:06d}": b'{"i":%d}' % i for i in range(n)}
    leaves = {key_hash(k): value_hash(v) for k, v in entries.items()}
    tree, source = tree_for(leaves, depth)
    root = tree.root
    for key, value in list(entries.items())[:200]:
        proof = tree.prove(key, source)
        verify_inclusion(root, key, value, proof)
        verify_entry(root, key, value, proof)
        assert SparseProof.from_dict(json.loads(json.dumps(proof.to_dict()))) == proof
    for i in range(n, n + 50):
        key = f"vehicle/KMH{seed:08d}{i:06d}"
        proof = tree.prove(key, source)
        verify_absence(root, key, proof)
        verify_entry(root, key, None, proof)
        if i < n + 3:  # spot check: naive proofs rehash the whole tree
            assert proof == naive_proof(leaves, key_hash(key))


def flip_bit(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 0x80 >> (bit % 8)
    return bytes(out)


Tamper = Callable[[SparseProof], SparseProof]

TAMPERS: dict[str, Tamper] = {
    "flip first sibling bit": lambda p: SparseProof(
        (flip_bit(p.siblings[0], 5), *p.siblings[1:]), p.leaf
    ),
    "flip last sibling bit": lambda p: SparseProof(
        (*p.siblings[:-1], flip_bit(p.siblings[-1], 255)), p.leaf
    ),
    "drop first sibling": lambda p: SparseProof(p.siblings[1:], p.leaf),
    "drop last sibling": lambda p: SparseProof(p.siblings[:-1], p.leaf),
    "extra EMPTY sibling at the end": lambda p: SparseProof((*p.siblings, EMPTY), p.leaf),
    "extra EMPTY sibling at the start": lambda p: SparseProof((EMPTY, *p.siblings), p.leaf),
    "extra sibling at the end": lambda p: SparseProof((*p.siblings, sha(b"x")), p.leaf),
    "swap two siblings": lambda p: SparseProof(
        (p.siblings[-1], *p.siblings[1:-1], p.siblings[0]), p.leaf
    ),
    "flip leaf value hash": lambda p: SparseProof(
        p.siblings, None if p.leaf is None else (p.leaf[0], flip_bit(p.leaf[1], 3))
    ),
    "drop leaf": lambda p: SparseProof(p.siblings, None),
}


@pytest.fixture(scope="module")
def tamper_tree() -> tuple[SparseMerkleTree, MemoryLeafSource, Leaves]:
    leaves = random_leaves(500, 11)
    base = int.from_bytes(next(iter(leaves)), "big")
    for bit in (0, 1, 7, 100, 254, 255):  # a cluster sharing long prefixes
        k = kb(base ^ (1 << bit))
        leaves[k] = sha(k)
    tree, source = tree_for(leaves, 8)
    return tree, source, leaves


def sample_keys(leaves: Leaves, count: int) -> list[bytes]:
    return sorted(leaves)[:: max(1, len(leaves) // count)]


@pytest.mark.parametrize("name", sorted(TAMPERS))
def test_tampered_inclusion_proofs_are_rejected(
    name: str, tamper_tree: tuple[SparseMerkleTree, MemoryLeafSource, Leaves]
) -> None:
    tree, source, leaves = tamper_tree
    for k in sample_keys(leaves, 30):
        proof = tree.prove(k, source)
        if len(proof.siblings) < 2:
            continue
        bad = TAMPERS[name](proof)
        if bad == proof:
            continue  # e.g. swapping equal siblings changes nothing
        with pytest.raises(VerificationFailure) as caught:
            verify_hashed(tree.root, k, leaves[k], bad)
        assert caught.value.code == "state_proof_invalid"


@pytest.mark.parametrize("name", sorted(TAMPERS))
def test_tampered_absence_proofs_are_rejected(
    name: str, tamper_tree: tuple[SparseMerkleTree, MemoryLeafSource, Leaves]
) -> None:
    tree, source, leaves = tamper_tree
    checked = 0
    for k in sample_keys(leaves, 30):
        for absent in neighbours(k):
            if absent in leaves:
                continue
            proof = tree.prove(absent, source)
            verify_hashed(tree.root, absent, None, proof)
            bad = TAMPERS[name](proof) if len(proof.siblings) >= 2 else proof
            if bad == proof or (name == "drop leaf" and proof.leaf is None):
                continue
            with pytest.raises(VerificationFailure):
                verify_hashed(tree.root, absent, None, bad)
            checked += 1
    assert checked > 0


def test_wrong_value_is_rejected(
    tamper_tree: tuple[SparseMerkleTree, MemoryLeafSource, Leaves],
) -> None:
    tree, source, leaves = tamper_tree
    for k in sample_keys(leaves, 20):
        with pytest.raises(VerificationFailure, match="different value"):
            verify_hashed(tree.root, k, sha(b"forged"), tree.prove(k, source))


def test_present_key_claimed_absent_is_rejected(
    tamper_tree: tuple[SparseMerkleTree, MemoryLeafSource, Leaves],
) -> None:
    tree, source, leaves = tamper_tree
    for k in sample_keys(leaves, 20):
        proof = tree.prove(k, source)
        with pytest.raises(VerificationFailure, match="not absent"):
            verify_hashed(tree.root, k, None, proof)
        with pytest.raises(VerificationFailure, match="does not lead to the state root"):
            verify_hashed(tree.root, k, None, SparseProof(proof.siblings, None))


def test_absent_key_claimed_present_is_rejected(
    tamper_tree: tuple[SparseMerkleTree, MemoryLeafSource, Leaves],
) -> None:
    tree, source, leaves = tamper_tree
    for k in sample_keys(leaves, 20):
        absent = kb(int.from_bytes(k, "big") ^ (1 << 255) ^ 1)
        if absent in leaves:
            continue
        proof = tree.prove(absent, source)
        with pytest.raises(VerificationFailure):
            verify_hashed(tree.root, absent, sha(b"v"), proof)
        # Claim it present by borrowing a real leaf on another path: its own proof.
        borrowed = tree.prove(k, source)
        assert borrowed.leaf is not None
        forged = SparseProof(borrowed.siblings, (absent, borrowed.leaf[1]))
        with pytest.raises(VerificationFailure):
            verify_hashed(tree.root, absent, borrowed.leaf[1], forged)


def test_absence_with_a_leaf_off_the_key_path_is_rejected_even_if_it_folds() -> None:
    # A root made up to match: only the prefix rule stands between this and acceptance.
    key, stranger = kb(0), kb(1 << 255)  # they differ in bit 0
    siblings = (sha(b"s1"), sha(b"s2"))
    node = leaf_hash(stranger, sha(b"v"))
    for sibling in reversed(siblings):
        node = inner_hash(node, sibling)  # folded along key's bits (all 0)
    proof = SparseProof(siblings, (stranger, sha(b"v")))
    with pytest.raises(VerificationFailure, match="first 2 bits"):
        verify_hashed(node, key, None, proof)
    # With the prefix shared the same shape is a valid absence proof.
    near = kb(1 << 250)
    node = leaf_hash(near, sha(b"v"))
    for sibling in reversed(siblings):
        node = inner_hash(node, sibling)
    verify_hashed(node, key, None, SparseProof(siblings, (near, sha(b"v"))))


def test_verify_refuses_malformed_roots_and_hashes() -> None:
    proof = SparseProof((), None)
    for root, k, v in [
        (b"\x00" * 31, kb(0), None),
        (EMPTY, b"\x00" * 31, None),
        (EMPTY, kb(0), b"short"),
    ]:
        with pytest.raises(VerificationFailure):
            verify_hashed(root, k, v, proof)


# --------------------------------------------------------------------------- proof encoding

GOOD_LEAF = {"key_hash": "cd" * 32, "value_hash": "00" * 32}
GOOD: dict[str, Any] = {"siblings": [None, "ab" * 32], "leaf": GOOD_LEAF}


@pytest.mark.parametrize(
    ("data", "why"),
    [
        ([], "not an object"),
        ({"siblings": []}, "missing leaf"),
        ({**GOOD, "root": "00" * 32}, "unknown field"),
        ({**GOOD, "siblings": "ab" * 32}, "siblings not a list"),
        ({**GOOD, "siblings": [None] * 257}, "too many siblings"),
        ({**GOOD, "siblings": ["AB" * 32]}, "uppercase hex"),
        ({**GOOD, "siblings": ["ab" * 31]}, "short hex"),
        ({**GOOD, "siblings": ["0x" + "ab" * 31]}, "prefixed hex"),
        ({**GOOD, "siblings": ["00" * 32]}, "EMPTY spelled as zeros"),
        ({**GOOD, "siblings": [17]}, "not a string"),
        ({**GOOD, "leaf": "cd" * 32}, "leaf not an object"),
        ({**GOOD, "leaf": {"key_hash": "cd" * 32}}, "leaf missing value_hash"),
        ({**GOOD, "leaf": {**GOOD_LEAF, "value": "x"}}, "leaf unknown field"),
        ({**GOOD, "leaf": {"key_hash": None, "value_hash": "00" * 32}}, "leaf hash null"),
    ],
)
def test_from_dict_refuses_malformed_proofs(data: Any, why: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        SparseProof.from_dict(data)
    assert caught.value.code == "invalid_proof", why


def test_proof_json_round_trip() -> None:
    proof = SparseProof.from_dict(GOOD)
    assert proof.siblings == (EMPTY, bytes.fromhex("ab" * 32))
    assert proof.leaf == (bytes.fromhex("cd" * 32), EMPTY)  # a leaf's hashes may be zero
    assert proof.to_dict() == GOOD
    assert SparseProof.from_dict({"siblings": [], "leaf": None}) == SparseProof((), None)


@pytest.mark.parametrize(
    ("siblings", "leaf"),
    [
        ([EMPTY], None),
        ((b"\x00" * 31,), None),
        ((bytearray(32),), None),
        ((EMPTY,) * 257, None),
        ((), (EMPTY,)),
        ((), [EMPTY, EMPTY]),
        ((), (EMPTY, b"x")),
    ],
)
def test_proof_constructor_refuses_malformed_parts(siblings: Any, leaf: Any) -> None:
    with pytest.raises(InvalidInput):
        SparseProof(siblings, leaf)


# --------------------------------------------------------------------------- sources


@settings(max_examples=60, deadline=None)
@given(
    ops=st.lists(
        st.tuples(st.integers(0, 300), st.one_of(st.none(), st.integers(0, 5))), max_size=400
    ),
    ranges=st.lists(
        st.tuples(st.integers(0, 320), st.one_of(st.none(), st.integers(0, 320))), max_size=10
    ),
)
def test_memory_leaf_source_matches_a_sorted_dict(
    ops: list[tuple[int, int | None]], ranges: list[tuple[int, int | None]]
) -> None:
    def key(i: int) -> bytes:
        return kb(i << 247)  # spread over the key space, order kept

    source = MemoryLeafSource({key(1): sha(b"1")}, block_size=2)
    model: Leaves = {key(1): sha(b"1")}
    for i, v in ops:
        value = None if v is None else sha(bytes([v]))
        source.set(key(i), value)
        if value is None:
            model.pop(key(i), None)
        else:
            model[key(i)] = value
        assert source.get(key(i)) == value
    assert len(source) == len(model)
    assert list(source.items()) == sorted(model.items())
    for lo, hi in [*ranges, (0, None)]:
        hi_b = None if hi is None else key(hi)
        expected = [
            (k, v) for k, v in sorted(model.items()) if key(lo) <= k and (hi_b is None or k < hi_b)
        ]
        assert source.leaves_in_range(key(lo), hi_b) == expected


def test_memory_leaf_source_refuses_bad_hashes() -> None:
    with pytest.raises(InvalidInput):
        MemoryLeafSource({b"short": EMPTY})
    with pytest.raises(InvalidInput):
        MemoryLeafSource().set(EMPTY, b"short")


class ListSource:
    """A LeafSource that returns whatever it was given, to break the contract on purpose."""

    def __init__(self, leaves: Iterable[tuple[bytes, bytes]]) -> None:
        self.leaves = list(leaves)

    def leaves_in_range(self, lo: bytes, hi: bytes | None) -> list[tuple[bytes, bytes]]:
        return self.leaves


def test_sources_that_break_their_contract_are_reported() -> None:
    a, b = (kb(5), sha(b"a")), (kb(9), sha(b"b"))
    for depth in (0, 8):
        with pytest.raises(StorageError):
            SparseMerkleTree(depth).rebuild(ListSource([b, a]))
        with pytest.raises(StorageError):
            SparseMerkleTree(depth).rebuild(ListSource([a, a]))
    with pytest.raises(StorageError):  # leaves from outside the bucket that was asked for
        SparseMerkleTree(8).stage([kb(5)], ListSource([a, (kb(TOP), sha(b"z"))]))
    tree, source = tree_for(dict([a, b]), 8)
    source.set(a[0], sha(b"changed, never staged"))
    with pytest.raises(StorageError):
        tree.prove(a[0], source)


def test_key_hash_and_bad_inputs() -> None:
    assert key_hash("vehicle/KMH") == sha(b"vehicle/KMH")
    assert key_hash("차량/1") == sha("차량/1".encode())
    with pytest.raises(InvalidInput):
        key_hash("\ud800")
    tree, source = tree_for({}, 4)
    with pytest.raises(InvalidInput):
        tree.stage([b"short"], source)
    with pytest.raises(InvalidInput):
        tree.prove(b"short", source)


def test_public_surface() -> None:
    defined = {
        name
        for name, obj in vars(smt).items()
        if not name.startswith("_") and getattr(obj, "__module__", None) == smt.__name__
    }
    assert defined <= set(smt.__all__)
    assert all(hasattr(smt, name) for name in smt.__all__)


# --------------------------------------------------------------------------- scale


@pytest.mark.slow
def test_staging_ten_thousand_keys_at_a_million_leaves() -> None:
    rng = random.Random(1)
    leaves = {rng.randbytes(32): rng.randbytes(32) for _ in range(1_000_000)}
    source = MemoryLeafSource(leaves)
    tree = SparseMerkleTree(16)
    tree.rebuild(source)
    changed = rng.sample(sorted(leaves), 10_000)
    for k in changed:
        source.set(k, rng.randbytes(32))
    started = time.process_time()
    staged = tree.stage(changed, source)
    spent = time.process_time() - started
    tree.commit(staged)
    assert spent < 1.0, f"staging 10,000 keys took {spent:.3f} s of CPU"
