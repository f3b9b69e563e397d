"""The append-only log Merkle tree of RFC 9162 (Certificate Transparency v2), §2.1.

Hashing is domain-separated SHA-256: a leaf is ``SHA-256(0x00 || data)``, an
interior node ``SHA-256(0x01 || left || right)`` and the empty tree
``SHA-256("")``. The tree over ``n`` leaves splits at the largest power of two
``k < n``, so its left part is always perfect and only the right edge is ragged.

Addressing. A *perfect* node is ``(level, index)`` and covers the leaves
``[index * 2**level, (index + 1) * 2**level)``. Perfect nodes never change once
their last leaf is appended, so storage keeps exactly these and nothing else.
Every other node of a tree of some size lies on its right edge; it is
*ephemeral*, recomputed on demand from the perfect nodes under it. Any past
root and any proof can therefore be served from the perfect nodes alone.

Proof serving has two steps, so that storage can batch its reads:

1. :func:`inclusion_plan` / :func:`consistency_plan` (pure arithmetic) name the
   perfect nodes a proof needs and which of them fold into the one ephemeral
   node a proof may contain;
2. :meth:`ProofPlan.assemble` turns the fetched hashes into the proof.

:func:`inclusion_proof`, :func:`consistency_proof` and :func:`root_at` do both
steps against a :class:`NodeReader`. :class:`CompactRange` is the right edge of
the tree (one hash per set bit of the size) and is what the writer keeps in
memory to append leaves and compute the current root.

Verification (:func:`verify_inclusion`, :func:`verify_consistency`) needs no
storage and follows the algorithms of RFC 9162 §2.1.3.2 and §2.1.4.2 step by
step. It raises :class:`~carledger.errors.VerificationFailure` with the code
``inclusion_proof_invalid`` or ``consistency_proof_invalid``.

``merkle_naive`` holds the RFC's recursive definitions, against which the tests
check everything here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol, TypeAlias

from carledger.errors import InvalidInput, StorageError, VerificationFailure

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactRange",
    "NodeId",
    "NodeReader",
    "ProofPlan",
    "consistency_plan",
    "consistency_proof",
    "inclusion_plan",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root_at",
    "root_from_inclusion",
    "verify_consistency",
    "verify_inclusion",
]

NodeId: TypeAlias = tuple[int, int]
"""``(level, index)`` of a perfect node; see the module docstring."""

HASH_SIZE: Final = 32
EMPTY_ROOT: Final = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256
_LEAF_PREFIX: Final = b"\x00"
_NODE_PREFIX: Final = b"\x01"

_INCLUSION_INVALID: Final = "inclusion_proof_invalid"
_CONSISTENCY_INVALID: Final = "consistency_proof_invalid"
_BAD_REQUEST: Final = "invalid_proof_request"


def leaf_hash(data: bytes) -> bytes:
    """``SHA-256(0x00 || data)``: the hash of a leaf holding ``data``."""
    # update() rather than concatenation: leaf data can be a whole transaction.
    h = _sha256(_LEAF_PREFIX)
    h.update(data)
    return h.digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``: the hash of an interior node.

    The children are not checked (this is on the append path); callers pass
    32-byte node hashes.
    """
    return _sha256(_NODE_PREFIX + left + right).digest()


class NodeReader(Protocol):
    """Read access to stored perfect nodes (the storage adapter implements it)."""

    def get_nodes(self, ids: Sequence[NodeId]) -> list[bytes]:
        """Return the hash of every node in ``ids``, in the same order.

        Only perfect nodes of the stored tree are ever asked for. A node that is
        absent must raise (a :class:`~carledger.errors.LedgerError`), never be
        skipped or replaced by a placeholder.
        """
        ...


# --------------------------------------------------------------------------- plans


@dataclass(frozen=True, slots=True)
class ProofPlan:
    """Which perfect nodes a proof needs, and how to turn their hashes into it.

    ``ids`` are in proof order, except that the nodes ``ids[ephemeral]`` (a
    contiguous run, ordered from the lowest level up) stand for a single proof
    entry: the ephemeral node on the right edge whose subtree they cover. An
    empty ``ephemeral`` range means the proof is exactly the hashes of ``ids``.
    Build plans with :func:`inclusion_plan` and :func:`consistency_plan`.
    """

    ids: tuple[NodeId, ...]
    ephemeral: range = range(0)

    def __post_init__(self) -> None:
        eph = self.ephemeral
        if eph.step != 1 or not 0 <= eph.start <= eph.stop <= len(self.ids):
            raise ValueError(f"ephemeral run {eph!r} does not fit {len(self.ids)} node ids")

    @property
    def proof_length(self) -> int:
        """Number of hashes in the assembled proof."""
        return len(self.ids) - max(len(self.ephemeral) - 1, 0)

    def assemble(self, hashes: Sequence[bytes]) -> list[bytes]:
        """Build the proof from ``hashes[i]``, the hash of node ``ids[i]``.

        Raises :class:`InvalidInput` (``invalid_proof_request``) when the number
        of hashes differs from the number of ids. Hash values are not checked:
        they come from the store, whose integrity the verifier checks.
        """
        if len(hashes) != len(self.ids):
            raise InvalidInput(
                _BAD_REQUEST,
                f"The proof plan needs {len(self.ids)} node hashes, got {len(hashes)}.",
                expected=len(self.ids),
                got=len(hashes),
            )
        start, stop = self.ephemeral.start, self.ephemeral.stop
        if stop - start < 2:
            return list(hashes)
        # The run lists the right edge's perfect nodes lowest first; the
        # ephemeral node is their right-leaning fold, as in RFC 9162's MTH.
        acc = hashes[start]
        for i in range(start + 1, stop):
            acc = node_hash(hashes[i], acc)
        proof = list(hashes[:start])
        proof.append(acc)
        proof.extend(hashes[stop:])
        return proof


def _range_ids(begin: int, end: int) -> list[NodeId]:
    """The fewest perfect nodes covering leaves ``[begin, end)``, left to right."""
    ids: list[NodeId] = []
    while begin < end:
        level = (end - begin).bit_length() - 1
        if begin:
            # A node starting at ``begin`` is at most as wide as begin's alignment.
            level = min(level, (begin & -begin).bit_length() - 1)
        ids.append((level, begin >> level))
        begin += 1 << level
    return ids


def _fork(level: int, index: int, size: int) -> int:
    """Height above ``(level, index)`` where its path and the right edge part.

    Below that height every sibling on the path is perfect; at it, the sibling
    (if any) is the ephemeral node; above it the path *is* the right edge, whose
    siblings are the perfect nodes left of it. Requires the node to be perfect
    in the tree of ``size`` leaves, i.e. ``(index + 1) << level <= size``.
    """
    return (index ^ (size >> level)).bit_length() - 1


def _path_length(level: int, index: int, size: int) -> int:
    """Length of the audit path of perfect node ``(level, index)`` in ``size`` leaves."""
    inner = _fork(level, index, size)
    fork_end = ((index >> inner) + 1) << (level + inner)
    return inner + (fork_end < size) + (index >> inner).bit_count()


def _path_plan(level: int, index: int, size: int, *, with_node: bool) -> ProofPlan:
    """Plan of the audit path of perfect node ``(level, index)`` in ``size`` leaves.

    With ``with_node`` the node itself comes first (consistency proofs need it).
    Requires ``(index + 1) << level <= size``.
    """
    ids: list[NodeId] = [(level, index)] if with_node else []
    inner = _fork(level, index, size)
    for height in range(inner):
        ids.append((level + height, (index >> height) ^ 1))
    fork_level, fork_index = level + inner, index >> inner
    fork_begin = fork_index << fork_level
    fork_end = fork_begin + (1 << fork_level)

    eph_start = len(ids)
    right = _range_ids(fork_end, size)
    right.reverse()
    ids.extend(right)
    eph_stop = len(ids)

    left = _range_ids(0, fork_begin)
    left.reverse()
    ids.extend(left)
    return ProofPlan(tuple(ids), range(eph_start, eph_stop))


def inclusion_plan(index: int, size: int) -> ProofPlan:
    """Plan the inclusion proof (RFC 9162 §2.1.3.1) of leaf ``index`` in ``size`` leaves.

    Requires ``0 <= index < size``; otherwise raises :class:`InvalidInput`
    (``invalid_proof_request``).
    """
    if not 0 <= index < size:
        raise InvalidInput(
            _BAD_REQUEST,
            f"No inclusion proof exists for leaf {index} in a tree of {size} leaves.",
            index=index,
            size=size,
        )
    return _path_plan(0, index, size, with_node=False)


def consistency_plan(size1: int, size2: int) -> ProofPlan:
    """Plan the consistency proof (RFC 9162 §2.1.4.1) from ``size1`` to ``size2`` leaves.

    Requires ``0 < size1 <= size2`` (``size1 == size2`` gives the empty proof).
    ``size1 == 0`` is refused, as RFC 9162 and :func:`verify_consistency` do:
    every tree extends the empty one, so such a proof would prove nothing.
    Raises :class:`InvalidInput` (``invalid_proof_request``) otherwise.
    """
    if not 0 < size1 <= size2:
        raise InvalidInput(
            _BAD_REQUEST,
            f"No consistency proof exists from {size1} to {size2} leaves; "
            "it needs 0 < size1 <= size2.",
            size1=size1,
            size2=size2,
        )
    if size1 == size2:
        return ProofPlan(())
    # The largest perfect subtree ending at size1 is where the old tree's right
    # edge meets the new tree; the proof is its audit path in the new tree,
    # preceded by the node itself unless it is the whole old tree (whose root the
    # verifier already holds).
    level = (size1 & -size1).bit_length() - 1
    index = (size1 - 1) >> level
    return _path_plan(level, index, size2, with_node=index != 0)


# -------------------------------------------------------------------- from storage


def _fetch(reader: NodeReader, ids: Sequence[NodeId]) -> list[bytes]:
    hashes = reader.get_nodes(ids)
    if len(hashes) != len(ids) or any(len(h) != HASH_SIZE for h in hashes):
        raise StorageError(
            "merkle_node_invalid",
            f"The node store answered {len(hashes)} hashes for {len(ids)} Merkle nodes, "
            f"or a hash that is not {HASH_SIZE} bytes long.",
            requested=len(ids),
            returned=len(hashes),
        )
    return hashes


def inclusion_proof(reader: NodeReader, index: int, size: int) -> list[bytes]:
    """The inclusion proof of leaf ``index`` in the tree of ``size`` leaves.

    Preconditions and errors are those of :func:`inclusion_plan`; raises
    :class:`StorageError` (``merkle_node_invalid``) if ``reader`` answers
    the wrong number of hashes or a malformed one.
    """
    plan = inclusion_plan(index, size)
    return plan.assemble(_fetch(reader, plan.ids))


def consistency_proof(reader: NodeReader, size1: int, size2: int) -> list[bytes]:
    """The consistency proof from ``size1`` to ``size2`` leaves.

    Preconditions and errors are those of :func:`consistency_plan`; raises
    :class:`StorageError` (``merkle_node_invalid``) as :func:`inclusion_proof` does.
    """
    plan = consistency_plan(size1, size2)
    return plan.assemble(_fetch(reader, plan.ids))


def _fold_right(hashes: Sequence[bytes]) -> bytes:
    """Root over perfect subtrees given left to right (the shape of a compact range)."""
    if not hashes:
        return EMPTY_ROOT
    acc = hashes[-1]
    for i in range(len(hashes) - 2, -1, -1):
        acc = node_hash(hashes[i], acc)
    return acc


def root_at(reader: NodeReader, size: int) -> bytes:
    """The root hash of the tree when it had ``size`` leaves (MTH of RFC 9162).

    Reads one perfect node per set bit of ``size``. Requires ``size >= 0``, else
    raises :class:`InvalidInput` (``invalid_proof_request``); ``size`` beyond the
    stored tree makes ``reader`` raise. Raises :class:`StorageError` as
    :func:`inclusion_proof` does.
    """
    if size < 0:
        raise InvalidInput(_BAD_REQUEST, f"A tree cannot have {size} leaves.", size=size)
    return _fold_right(_fetch(reader, _range_ids(0, size)))


# -------------------------------------------------------------------- verification


def _check_proof_hashes(proof: Sequence[bytes], code: str) -> None:
    for i, h in enumerate(proof):
        if len(h) != HASH_SIZE:
            raise VerificationFailure(
                code,
                f"Proof hash {i} is {len(h)} bytes long; a SHA-256 hash is {HASH_SIZE}.",
                position=i,
                length=len(h),
            )


def _inclusion_length_failure(index: int, size: int, got: int) -> VerificationFailure:
    want = _path_length(0, index, size)
    return VerificationFailure(
        _INCLUSION_INVALID,
        f"The inclusion proof of leaf {index} in a tree of {size} leaves has {want} "
        f"hashes; this one has {got}.",
        index=index,
        size=size,
        expected=want,
        got=got,
    )


def root_from_inclusion(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root that ``proof`` implies for leaf ``index`` of a ``size``-leaf tree.

    This is RFC 9162 §2.1.3.2 up to, not including, the final root comparison.
    Raises :class:`VerificationFailure` (``inclusion_proof_invalid``) unless
    ``0 <= index < size``, ``leaf_hash`` and every proof entry are 32 bytes
    long, and the proof has exactly the length the position requires. The
    length check on ``leaf_hash`` catches passing leaf *data* by mistake.
    """
    if not 0 <= index < size:
        raise VerificationFailure(
            _INCLUSION_INVALID,
            f"Leaf index {index} is not inside a tree of {size} leaves.",
            index=index,
            size=size,
        )
    if len(leaf_hash) != HASH_SIZE:
        raise VerificationFailure(
            _INCLUSION_INVALID,
            f"The leaf hash is {len(leaf_hash)} bytes long; a SHA-256 hash is {HASH_SIZE}.",
            length=len(leaf_hash),
        )
    _check_proof_hashes(proof, _INCLUSION_INVALID)
    # RFC 9162 §2.1.3.2, steps 2-5. fn walks the leaf's path, sn the right edge.
    fn, sn = index, size - 1
    r = leaf_hash
    for p in proof:
        if sn == 0:
            raise _inclusion_length_failure(index, size, len(proof))
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            # On the right edge the RFC tree skips levels with no right sibling.
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise _inclusion_length_failure(index, size, len(proof))
    return r


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``proof`` shows ``leaf_hash`` at ``index`` in the tree with ``root``.

    RFC 9162 §2.1.3.2. Raises :class:`VerificationFailure`
    (``inclusion_proof_invalid``) for everything :func:`root_from_inclusion`
    refuses and when the computed root differs from ``root``.
    """
    computed = root_from_inclusion(leaf_hash, index, size, proof)
    if computed != root:
        raise VerificationFailure(
            _INCLUSION_INVALID,
            f"The inclusion proof of leaf {index} leads to a root that is not the root "
            f"given for {size} leaves.",
            index=index,
            size=size,
            computed_root=computed.hex(),
        )


def _consistency_length_failure(size1: int, size2: int, got: int) -> VerificationFailure:
    want = consistency_plan(size1, size2).proof_length
    return VerificationFailure(
        _CONSISTENCY_INVALID,
        f"The consistency proof from {size1} to {size2} leaves has {want} hashes; "
        f"this one has {got}.",
        size1=size1,
        size2=size2,
        expected=want,
        got=got,
    )


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Check that the tree (``size2``, ``root2``) extends the tree (``size1``, ``root1``).

    RFC 9162 §2.1.4.2, which requires ``0 < size1 < size2``. Equal sizes are
    consistent exactly when the proof is empty and the roots are equal. Raises
    :class:`VerificationFailure` (``consistency_proof_invalid``) when
    ``size1 > size2``, when ``size1 == 0`` (a proof from the empty tree proves
    nothing, so it is refused rather than trivially accepted), when a proof
    entry is not 32 bytes, when the proof length is wrong for the two sizes,
    and when either computed root differs from the one given.
    """
    if not 0 < size1 <= size2:
        raise VerificationFailure(
            _CONSISTENCY_INVALID,
            f"Sizes {size1} and {size2} admit no consistency proof; it needs 0 < size1 <= size2.",
            size1=size1,
            size2=size2,
        )
    _check_proof_hashes(proof, _CONSISTENCY_INVALID)
    if size1 == size2:
        if proof:
            raise _consistency_length_failure(size1, size2, len(proof))
        if root1 != root2:
            raise VerificationFailure(
                _CONSISTENCY_INVALID,
                f"Two roots for the same size {size1} differ.",
                size1=size1,
                size2=size2,
            )
        return
    # Step 1.
    if not proof:
        raise _consistency_length_failure(size1, size2, 0)
    # Step 2: when size1 is a power of two the old root is the path's start.
    path: Sequence[bytes] = [root1, *proof] if size1 & (size1 - 1) == 0 else proof
    # Steps 3-4.
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # Step 5.
    fr = sr = path[0]
    # Step 6.
    for i in range(1, len(path)):
        c = path[i]
        if sn == 0:
            raise _consistency_length_failure(size1, size2, len(proof))
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    # Step 7.
    if sn != 0:
        raise _consistency_length_failure(size1, size2, len(proof))
    if fr != root1:
        raise VerificationFailure(
            _CONSISTENCY_INVALID,
            f"The consistency proof does not lead to the root given for {size1} leaves.",
            size1=size1,
            size2=size2,
            computed_root=fr.hex(),
        )
    if sr != root2:
        raise VerificationFailure(
            _CONSISTENCY_INVALID,
            f"The consistency proof does not lead to the root given for {size2} leaves.",
            size1=size1,
            size2=size2,
            computed_root=sr.hex(),
        )


# ------------------------------------------------------------------- compact range


class CompactRange:
    """The right edge of the tree: what an appender needs, O(log size) hashes.

    Holds the hashes of the perfect nodes covering leaves ``[0, size)``, one per
    set bit of ``size``, left to right (largest subtree first). Not thread-safe:
    one writer owns it.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        """A range for a tree of ``size`` leaves with the given edge ``hashes``.

        ``hashes`` are those of the nodes ``_range_ids(0, size)``, i.e. one per
        set bit of ``size``, left to right. Raises :class:`InvalidInput`
        (``invalid_compact_range``) if ``size < 0``, the count is not the number
        of set bits of ``size``, or a hash is not 32 bytes long.
        """
        if size < 0 or len(hashes) != size.bit_count():
            raise InvalidInput(
                "invalid_compact_range",
                f"A tree of {size} leaves has {max(size, 0).bit_count()} edge hashes; "
                f"got {len(hashes)}.",
                size=size,
                got=len(hashes),
            )
        for h in hashes:
            if len(h) != HASH_SIZE:
                raise InvalidInput(
                    "invalid_compact_range",
                    f"An edge hash is {len(h)} bytes long; a SHA-256 hash is {HASH_SIZE}.",
                    length=len(h),
                )
        self._size = size
        self._hashes = list(hashes)

    @classmethod
    def from_reader(cls, reader: NodeReader, size: int) -> CompactRange:
        """Rebuild the range of the tree at ``size`` leaves from stored nodes.

        Raises :class:`InvalidInput` (``invalid_compact_range``) if ``size < 0``
        and :class:`StorageError` as :func:`inclusion_proof` does.
        """
        if size < 0:
            raise InvalidInput(
                "invalid_compact_range", f"A tree cannot have {size} leaves.", size=size
            )
        return cls(size, _fetch(reader, _range_ids(0, size)))

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """The edge hashes, left to right (see the class docstring)."""
        return tuple(self._hashes)

    def ids(self) -> list[NodeId]:
        """Node ids of :attr:`hashes`, in the same order."""
        return _range_ids(0, self._size)

    def append(self, leaf_hash: bytes) -> list[tuple[int, int, bytes]]:
        """Append a leaf and return the perfect nodes it completes.

        The result is ``(level, index, hash)`` for the leaf itself (level 0)
        followed by every parent it completes, bottom up: exactly the nodes the
        store must persist for this append, each computed once and never again.
        Raises :class:`InvalidInput` (``invalid_leaf_hash``) if ``leaf_hash`` is
        not 32 bytes long (leaf *data* passed by mistake would otherwise be
        stored silently).
        """
        if len(leaf_hash) != HASH_SIZE:
            raise InvalidInput(
                "invalid_leaf_hash",
                f"A leaf hash is {HASH_SIZE} bytes long, got {len(leaf_hash)}.",
                length=len(leaf_hash),
            )
        index = self._size
        hashes = self._hashes
        h = leaf_hash
        completed = [(0, index, h)]
        # Each trailing one bit of the old size is a left sibling now complete.
        level, i = 0, index
        while i & 1:
            h = _sha256(_NODE_PREFIX + hashes.pop() + h).digest()
            level += 1
            i >>= 1
            completed.append((level, i, h))
        hashes.append(h)
        self._size = index + 1
        return completed

    def root(self) -> bytes:
        """The root hash of the tree of :attr:`size` leaves (``EMPTY_ROOT`` if 0)."""
        return _fold_right(self._hashes)

    def __repr__(self) -> str:
        return f"CompactRange(size={self._size}, root={self.root().hex()})"
