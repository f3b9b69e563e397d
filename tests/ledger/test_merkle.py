"""The RFC 9162 log Merkle tree: spec vectors, a naive cross-check, negatives.

The optimised module (plans over perfect nodes, the RFC's iterative verifiers,
the compact range) is checked against ``merkle_naive``, a transcription of the
RFC's recursive definitions, and against the transparency-dev test vectors kept
in ``/work/shared/vectors/rfc9162``.
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from carledger.errors import InvalidInput, StorageError, VerificationFailure
from carledger.ledger import merkle_naive as naive
from carledger.ledger.merkle import (
    EMPTY_ROOT,
    CompactRange,
    NodeId,
    ProofPlan,
    consistency_plan,
    consistency_proof,
    inclusion_plan,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_at,
    root_from_inclusion,
    verify_consistency,
    verify_inclusion,
)

VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "vectors" / "rfc9162"

N_MAX = 6000
LEAVES = [b"carledger test leaf %d" % i for i in range(N_MAX)]
LEAF_HASHES = [leaf_hash(d) for d in LEAVES]


class MemoryNodes:
    """A NodeReader over stored perfect nodes, as the log looked at ``size`` leaves.

    Asking for a node that was not yet complete at ``size`` fails the test: the
    planner must only ever need perfect nodes of the tree being proved.
    """

    def __init__(self, nodes: dict[NodeId, bytes], size: int) -> None:
        self.nodes = nodes
        self.size = size

    def get_nodes(self, ids: Sequence[NodeId]) -> list[bytes]:
        for level, index in ids:
            assert (index + 1) << level <= self.size, (
                f"node {(level, index)} is not perfect in a tree of {self.size} leaves"
            )
        return [self.nodes[i] for i in ids]


@functools.cache
def stored_nodes() -> dict[NodeId, bytes]:
    """Every perfect node of the N_MAX-leaf tree, as CompactRange.append emits them.

    Perfect nodes never change, so this one store serves every smaller size too.
    """
    nodes: dict[NodeId, bytes] = {}
    cr = CompactRange()
    for h in LEAF_HASHES:
        for level, index, node in cr.append(h):
            nodes[(level, index)] = node
    return nodes


def reader(size: int) -> MemoryNodes:
    return MemoryNodes(stored_nodes(), size)


@functools.cache
def naive_root(size: int) -> bytes:
    return naive.mth(LEAVES[:size])


def b64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def flip(h: bytes, bit: int = 0) -> bytes:
    return bytes([h[0] ^ (1 << bit), *h[1:]])


# ------------------------------------------------------------------ spec vectors


def vector_params(kind: str) -> list[Any]:
    # A missing vector directory must fail the run, not quietly skip it: with no
    # files found, the directory itself becomes the (failing) parameter.
    base = VECTORS / kind
    files = sorted(base.rglob("*.json"))
    if not files:
        return [pytest.param(base, id=f"{kind}-vectors-missing")]
    return [pytest.param(f, id=f.relative_to(VECTORS).as_posix()) for f in files]


def load_vector(path: Path) -> dict[str, Any]:
    assert path.is_file(), f"RFC 9162 test vector missing: {path}"
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def test_vectors_are_present() -> None:
    for kind in ("inclusion", "consistency"):
        happy = list((VECTORS / kind).rglob("happy-path.json"))
        assert len(happy) >= 5, f"too few {kind} vectors under {VECTORS}"


@pytest.mark.parametrize("path", vector_params("inclusion"))
def test_inclusion_vector(path: Path) -> None:
    v = load_vector(path)
    args = (
        b64(v["leafHash"]),
        v["leafIdx"],
        v["treeSize"],
        [b64(p) for p in v["proof"] or []],
        b64(v["root"]),
    )
    if v["wantErr"]:
        with pytest.raises(VerificationFailure) as err:
            verify_inclusion(*args)
        assert err.value.code == "inclusion_proof_invalid"
    else:
        verify_inclusion(*args)
        assert root_from_inclusion(*args[:4]) == args[4]


@pytest.mark.parametrize("path", vector_params("consistency"))
def test_consistency_vector(path: Path) -> None:
    v = load_vector(path)
    args = (
        v["size1"],
        v["size2"],
        [b64(p) for p in v["proof"] or []],
        b64(v["root1"]),
        b64(v["root2"]),
    )
    if v["wantErr"]:
        with pytest.raises(VerificationFailure) as err:
            verify_consistency(*args)
        assert err.value.code == "consistency_proof_invalid"
    else:
        verify_consistency(*args)


# ------------------------------------------------------- cross-check with naive


@pytest.mark.parametrize("size", range(1, 71))
def test_all_proofs_match_naive(size: int) -> None:
    leaves = LEAVES[:size]
    root = naive_root(size)
    nodes = reader(size)
    assert root_at(nodes, size) == root
    assert CompactRange.from_reader(nodes, size).root() == root
    for index in range(size):
        proof = inclusion_proof(nodes, index, size)
        assert proof == naive.path(index, leaves)
        assert inclusion_plan(index, size).proof_length == len(proof)
        verify_inclusion(LEAF_HASHES[index], index, size, proof, root)
        # The expected length the verifier reports is the true one.
        with pytest.raises(VerificationFailure) as err:
            verify_inclusion(LEAF_HASHES[index], index, size, [*proof, root], root)
        assert err.value.detail["expected"] == len(proof)
    for size1 in range(1, size + 1):
        proof = consistency_proof(nodes, size1, size)
        assert proof == naive.proof(size1, leaves)
        assert consistency_plan(size1, size).proof_length == len(proof)
        verify_consistency(size1, size, proof, naive_root(size1), root)
        with pytest.raises(VerificationFailure) as err:
            verify_consistency(size1, size, [*proof, root], naive_root(size1), root)
        assert err.value.detail["expected"] == len(proof)


@st.composite
def size_and_index(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(st.integers(1, N_MAX))
    return size, draw(st.integers(0, size - 1))


@st.composite
def two_sizes(draw: st.DrawFn) -> tuple[int, int]:
    size2 = draw(st.integers(1, N_MAX))
    return draw(st.integers(1, size2)), size2


@settings(max_examples=100, deadline=None)
@given(size_and_index())
@example((N_MAX, N_MAX - 1))
@example((4097, 4096))
@example((5000, 2500))
def test_inclusion_matches_naive_at_large_sizes(case: tuple[int, int]) -> None:
    size, index = case
    root = naive_root(size)
    nodes = reader(size)
    proof = inclusion_proof(nodes, index, size)
    assert proof == naive.path(index, LEAVES[:size])
    assert root_at(nodes, size) == root
    verify_inclusion(LEAF_HASHES[index], index, size, proof, root)


@settings(max_examples=100, deadline=None)
@given(two_sizes())
@example((N_MAX - 1, N_MAX))
@example((4096, 4097))
@example((3, 5000))
def test_consistency_matches_naive_at_large_sizes(sizes: tuple[int, int]) -> None:
    size1, size2 = sizes
    root1, root2 = naive_root(size1), naive_root(size2)
    proof = consistency_proof(reader(size2), size1, size2)
    assert proof == naive.proof(size1, LEAVES[:size2])
    assert root_at(reader(size2), size1) == root1
    verify_consistency(size1, size2, proof, root1, root2)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, N_MAX - 20), st.integers(1, 20))
def test_compact_range_resumes_from_storage(size: int, more: int) -> None:
    # A writer restarting at ``size`` must emit exactly the nodes the uninterrupted
    # writer emitted, and reach the same roots.
    cr = CompactRange.from_reader(reader(size), size)
    assert cr.size == size
    assert cr.root() == naive_root(size)
    levels = [lv for lv, _ in cr.ids()]
    assert levels == sorted(levels, reverse=True)
    assert len(cr.hashes) == len(levels) == size.bit_count()
    for k in range(size, size + more):
        for level, index, h in cr.append(LEAF_HASHES[k]):
            assert stored_nodes()[(level, index)] == h
    assert cr.size == size + more
    assert cr.root() == naive_root(size + more)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.binary(max_size=40), min_size=1, max_size=40))
def test_arbitrary_leaf_data(leaves: list[bytes]) -> None:
    nodes: dict[NodeId, bytes] = {}
    cr = CompactRange()
    for d in leaves:
        nodes.update(((lv, i), h) for lv, i, h in cr.append(leaf_hash(d)))
    size = len(leaves)
    root = naive.mth(leaves)
    assert cr.root() == root
    for index in range(size):
        proof = inclusion_proof(MemoryNodes(nodes, size), index, size)
        assert proof == naive.path(index, leaves)
        verify_inclusion(leaf_hash(leaves[index]), index, size, proof, root)


def test_empty_tree() -> None:
    assert naive.mth([]) == EMPTY_ROOT
    assert CompactRange().root() == EMPTY_ROOT
    assert root_at(reader(0), 0) == EMPTY_ROOT


def test_hashes_are_domain_separated() -> None:
    data = b"x" * 64
    assert leaf_hash(data) == naive.mth([data])
    assert leaf_hash(data) != node_hash(data[:32], data[32:])


# ------------------------------------------------------------------ plans, storage


def test_plan_folds_the_right_edge_into_one_ephemeral_node() -> None:
    # Leaf 0 of 7: sibling leaf 1, node (1, 1) = leaves 2-3, then the ephemeral
    # node over leaves 4-6, made of node (0, 6) and node (1, 2), lowest first.
    plan = inclusion_plan(0, 7)
    assert plan.ids == ((0, 1), (1, 1), (0, 6), (1, 2))
    assert plan.ephemeral == range(2, 4)
    assert plan.proof_length == 3
    a, b, c, d = (bytes([n]) * 32 for n in range(4))
    assert plan.assemble([a, b, c, d]) == [a, b, node_hash(d, c)]


def test_plan_without_ephemeral_node() -> None:
    plan = inclusion_plan(5, 8)
    assert plan.ids == ((0, 4), (1, 3), (2, 0))
    assert len(plan.ephemeral) == 0
    assert consistency_plan(4, 4) == ProofPlan(())


@pytest.mark.parametrize(
    ("planner", "args"),
    [
        (inclusion_plan, (0, 0)),
        (inclusion_plan, (5, 5)),
        (inclusion_plan, (-1, 5)),
        (consistency_plan, (0, 0)),
        (consistency_plan, (0, 5)),
        (consistency_plan, (6, 5)),
        (consistency_plan, (-1, 3)),
    ],
)
def test_plan_preconditions(
    planner: Callable[[int, int], ProofPlan], args: tuple[int, int]
) -> None:
    with pytest.raises(InvalidInput) as err:
        planner(*args)
    assert err.value.code == "invalid_proof_request"


def test_assemble_needs_one_hash_per_id() -> None:
    with pytest.raises(InvalidInput) as err:
        inclusion_plan(0, 7).assemble([EMPTY_ROOT] * 3)
    assert err.value.detail == {"expected": 4, "got": 3}


def test_plan_refuses_an_ephemeral_run_outside_its_ids() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        ProofPlan(((0, 1),), range(0, 2))


def test_root_at_refuses_negative_size() -> None:
    with pytest.raises(InvalidInput):
        root_at(reader(0), -1)


class ShortReader:
    def get_nodes(self, ids: Sequence[NodeId]) -> list[bytes]:
        return [EMPTY_ROOT] * (len(ids) - 1)


class MalformedReader:
    def get_nodes(self, ids: Sequence[NodeId]) -> list[bytes]:
        return [b"\x00" * 31 for _ in ids]


@pytest.mark.parametrize("bad", [ShortReader(), MalformedReader()])
def test_a_misbehaving_store_is_a_storage_error(bad: Any) -> None:
    for call in (
        lambda: inclusion_proof(bad, 3, 10),
        lambda: consistency_proof(bad, 3, 10),
        lambda: root_at(bad, 10),
        lambda: CompactRange.from_reader(bad, 10),
    ):
        with pytest.raises(StorageError) as err:
            call()
        assert err.value.code == "merkle_node_invalid"


# ----------------------------------------------------------------- compact range


def test_append_emits_every_perfect_node_exactly_once() -> None:
    size = 1000
    cr = CompactRange()
    emitted: list[NodeId] = []
    for k in range(size):
        new = cr.append(LEAF_HASHES[k])
        assert new[0] == (0, k, LEAF_HASHES[k])
        # Every emitted node ends exactly at the new size: it was just completed.
        assert all((i + 1) << lv == k + 1 for lv, i, _ in new)
        emitted += [(lv, i) for lv, i, _ in new]
    expected = {(lv, i) for lv in range(10) for i in range(size >> lv)}
    assert len(emitted) == len(set(emitted)) == len(expected)
    assert set(emitted) == expected
    assert cr.hashes == tuple(stored_nodes()[n] for n in cr.ids())
    assert len(cr.hashes) == size.bit_count()


@pytest.mark.parametrize(
    ("size", "hashes"),
    [
        (-1, []),
        (3, [EMPTY_ROOT]),
        (4, [EMPTY_ROOT, EMPTY_ROOT]),
        (1, [b"short"]),
    ],
)
def test_compact_range_validates_its_state(size: int, hashes: list[bytes]) -> None:
    with pytest.raises(InvalidInput) as err:
        CompactRange(size, hashes)
    assert err.value.code == "invalid_compact_range"


def test_compact_range_refuses_leaf_data_for_a_leaf_hash() -> None:
    cr = CompactRange()
    with pytest.raises(InvalidInput) as err:
        cr.append(b"raw leaf data")
    assert err.value.code == "invalid_leaf_hash"
    assert cr.size == 0
    with pytest.raises(InvalidInput):
        CompactRange.from_reader(reader(0), -1)


# -------------------------------------------------------------------- negatives


@dataclass(frozen=True)
class Incl:
    leaf: bytes
    index: int
    size: int
    proof: list[bytes]
    root: bytes


def honest_inclusion(index: int, size: int) -> Incl:
    return Incl(
        LEAF_HASHES[index],
        index,
        size,
        inclusion_proof(reader(size), index, size),
        naive_root(size),
    )


def resized(c: Incl, size: int) -> Incl:
    # The claimed size changes together with its (honest) root: a proof for one
    # size must not pass as a proof for another.
    return replace(c, size=size, root=naive_root(max(size, 0)))


INCLUSION_MUTATIONS: dict[str, Callable[[Incl], Incl]] = {
    "index-plus-1": lambda c: replace(c, index=c.index + 1),
    "index-minus-1": lambda c: replace(c, index=c.index - 1),
    "index-xor-2": lambda c: replace(c, index=c.index ^ 2),
    "size-plus-1": lambda c: resized(c, c.size + 1),
    "size-minus-1": lambda c: resized(c, c.size - 1),
    "size-doubled": lambda c: resized(c, c.size * 2),
    "size-zero": lambda c: resized(c, 0),
    "proof-truncated": lambda c: replace(c, proof=c.proof[:-1]),
    "proof-extended": lambda c: replace(c, proof=[*c.proof, c.root]),
    "proof-prepended": lambda c: replace(c, proof=[c.leaf, *c.proof]),
    "proof-empty": lambda c: replace(c, proof=[]),
    "proof-first-bit-flipped": lambda c: replace(c, proof=[flip(c.proof[0]), *c.proof[1:]]),
    "proof-last-bit-flipped": lambda c: replace(c, proof=[*c.proof[:-1], flip(c.proof[-1], 7)]),
    "proof-entry-short": lambda c: replace(c, proof=[c.proof[0][:31], *c.proof[1:]]),
    "leaf-bit-flipped": lambda c: replace(c, leaf=flip(c.leaf)),
    "leaf-data-not-hash": lambda c: replace(c, leaf=LEAVES[c.index]),
    "root-bit-flipped": lambda c: replace(c, root=flip(c.root)),
    "root-empty": lambda c: replace(c, root=b""),
}

INCLUSION_CASES = [(0, 2), (1, 2), (0, 7), (6, 7), (3, 8), (4, 5), (12, 13), (37, 70), (999, 1000)]


@pytest.mark.parametrize("mutation", INCLUSION_MUTATIONS)
@pytest.mark.parametrize(("index", "size"), INCLUSION_CASES)
def test_inclusion_negative(index: int, size: int, mutation: str) -> None:
    honest = honest_inclusion(index, size)
    verify_inclusion(honest.leaf, honest.index, honest.size, honest.proof, honest.root)
    bad = INCLUSION_MUTATIONS[mutation](honest)
    with pytest.raises(VerificationFailure) as err:
        verify_inclusion(bad.leaf, bad.index, bad.size, bad.proof, bad.root)
    assert err.value.code == "inclusion_proof_invalid"


@dataclass(frozen=True)
class Cons:
    size1: int
    size2: int
    proof: list[bytes]
    root1: bytes
    root2: bytes


def honest_consistency(size1: int, size2: int) -> Cons:
    return Cons(
        size1,
        size2,
        consistency_proof(reader(size2), size1, size2),
        naive_root(size1),
        naive_root(size2),
    )


CONSISTENCY_MUTATIONS: dict[str, Callable[[Cons], Cons]] = {
    "size1-plus-1": lambda c: replace(c, size1=c.size1 + 1, root1=naive_root(c.size1 + 1)),
    "size1-minus-1": lambda c: replace(c, size1=c.size1 - 1, root1=naive_root(c.size1 - 1)),
    "size1-zero": lambda c: replace(c, size1=0, root1=EMPTY_ROOT),
    "size2-plus-1": lambda c: replace(c, size2=c.size2 + 1, root2=naive_root(c.size2 + 1)),
    "size2-minus-1": lambda c: replace(c, size2=c.size2 - 1, root2=naive_root(c.size2 - 1)),
    "sizes-swapped": lambda c: replace(c, size1=c.size2, size2=c.size1),
    "proof-truncated": lambda c: replace(c, proof=c.proof[:-1]),
    "proof-extended": lambda c: replace(c, proof=[*c.proof, c.root2]),
    "proof-prepended": lambda c: replace(c, proof=[c.root1, *c.proof]),
    "proof-empty": lambda c: replace(c, proof=[]),
    "proof-first-bit-flipped": lambda c: replace(c, proof=[flip(c.proof[0]), *c.proof[1:]]),
    "proof-last-bit-flipped": lambda c: replace(c, proof=[*c.proof[:-1], flip(c.proof[-1], 7)]),
    "proof-entry-long": lambda c: replace(c, proof=[c.proof[0] + b"\x00", *c.proof[1:]]),
    "roots-swapped": lambda c: replace(c, root1=c.root2, root2=c.root1),
    "root1-bit-flipped": lambda c: replace(c, root1=flip(c.root1)),
    "root2-bit-flipped": lambda c: replace(c, root2=flip(c.root2)),
}

CONSISTENCY_CASES = [
    (1, 2),
    (1, 8),
    (2, 5),
    (3, 8),
    (4, 7),
    (6, 8),
    (7, 70),
    (32, 33),
    (1000, 4097),
]


@pytest.mark.parametrize("mutation", CONSISTENCY_MUTATIONS)
@pytest.mark.parametrize(("size1", "size2"), CONSISTENCY_CASES)
def test_consistency_negative(size1: int, size2: int, mutation: str) -> None:
    honest = honest_consistency(size1, size2)
    verify_consistency(honest.size1, honest.size2, honest.proof, honest.root1, honest.root2)
    bad = CONSISTENCY_MUTATIONS[mutation](honest)
    with pytest.raises(VerificationFailure) as err:
        verify_consistency(bad.size1, bad.size2, bad.proof, bad.root1, bad.root2)
    assert err.value.code == "consistency_proof_invalid"


@settings(max_examples=60, deadline=None)
@given(size_and_index(), st.data())
def test_any_flipped_bit_breaks_an_inclusion_proof(
    case: tuple[int, int], data: st.DataObject
) -> None:
    size, index = case
    honest = honest_inclusion(index, size)
    hashes = [honest.leaf, *honest.proof, honest.root]
    which = data.draw(st.integers(0, len(hashes) - 1))
    byte = data.draw(st.integers(0, 31))
    bit = data.draw(st.integers(0, 7))
    h = bytearray(hashes[which])
    h[byte] ^= 1 << bit
    hashes[which] = bytes(h)
    with pytest.raises(VerificationFailure):
        verify_inclusion(hashes[0], index, size, hashes[1:-1], hashes[-1])


@settings(max_examples=60, deadline=None)
@given(two_sizes(), st.data())
def test_any_flipped_bit_breaks_a_consistency_proof(
    sizes: tuple[int, int], data: st.DataObject
) -> None:
    size1, size2 = sizes
    honest = honest_consistency(size1, size2)
    hashes = [honest.root1, *honest.proof, honest.root2]
    which = data.draw(st.integers(0, len(hashes) - 1))
    h = bytearray(hashes[which])
    h[data.draw(st.integers(0, 31))] ^= 1 << data.draw(st.integers(0, 7))
    hashes[which] = bytes(h)
    with pytest.raises(VerificationFailure):
        verify_consistency(size1, size2, hashes[1:-1], hashes[0], hashes[-1])


def test_failure_messages_are_precise() -> None:
    c = honest_inclusion(5, 8)
    with pytest.raises(VerificationFailure) as err:
        verify_inclusion(c.leaf, 5, 8, c.proof[:-1], c.root)
    assert "has 3 hashes; this one has 2" in err.value.message
    with pytest.raises(VerificationFailure) as err:
        verify_inclusion(c.leaf, 8, 8, c.proof, c.root)
    assert err.value.detail == {"index": 8, "size": 8}
    d = honest_consistency(3, 8)
    with pytest.raises(VerificationFailure) as err:
        verify_consistency(3, 8, d.proof, d.root1, flip(d.root2))
    assert "root given for 8 leaves" in err.value.message
    with pytest.raises(VerificationFailure) as err:
        verify_consistency(3, 8, d.proof, flip(d.root1), d.root2)
    assert "root given for 3 leaves" in err.value.message
