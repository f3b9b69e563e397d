"""The state root: a collapsed binary sparse Merkle tree, with proofs of inclusion and absence.

This module *is* the protocol definition other implementations follow
(``docs/vectors/smt.json`` has test vectors)::

    key_hash   = SHA-256(utf-8 key)            256 bits, most significant bit = depth 0
    value_hash = SHA-256(value bytes)
    EMPTY      = 32 zero bytes
    leaf(k, v) = SHA-256(0x00 || key_hash || value_hash)
    inner(l, r)= SHA-256(0x01 || l || r)

    hash(S, d) = EMPTY                       if |S| = 0
               = leaf(k, v) of its one leaf  if |S| = 1   (collapsed: a lone leaf sits high)
               = inner(hash(S0, d+1), hash(S1, d+1)) otherwise, S_b = leaves whose bit d is b
    root       = hash(all leaves, 0)

A proof for a key lists the sibling hashes along the key's path from depth 0 down to the
first subtree that holds at most one leaf, plus that subtree's lone leaf (or nothing).
It shows *inclusion* when that leaf is the key's, with the value's hash; *absence* when
there is no leaf, or the leaf is another key's that shares the key's first
``len(siblings)`` bits. The verifier folds the siblings bottom-up along the key's bits
(bit d = 0: ``inner(node, sibling[d])``, else ``inner(sibling[d], node)``) starting from
the leaf's hash (EMPTY for none) and compares the result with the root. Its JSON form
is ``{"siblings": [hex | null, ...], "leaf": {"key_hash": hex, "value_hash": hex} | null}``,
lowercase hex, with ``null`` for an EMPTY sibling (and only for it).

:class:`SparseMerkleTree` is the node's incremental implementation: the top
``bucket_depth`` levels live in memory, and the leaves under each depth-``bucket_depth``
node (a *bucket*) are read from a :class:`LeafSource` (the store's indexed state table)
only when that bucket changed or a proof needs it. ``bucket_depth`` changes memory and
speed, never the root. ``carledger.ledger.smt_naive`` is the reference it is tested
against.
"""

from __future__ import annotations

import hashlib
import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Protocol

from carledger.errors import Conflict, InvalidInput, StorageError, VerificationFailure

__all__ = [
    "EMPTY",
    "MAX_BUCKET_DEPTH",
    "MAX_SIBLINGS",
    "BucketRow",
    "LeafSource",
    "MemoryLeafSource",
    "SparseMerkleTree",
    "SparseProof",
    "StagedRoot",
    "inner_hash",
    "key_hash",
    "leaf_hash",
    "value_hash",
    "verify_absence",
    "verify_entry",
    "verify_hashed",
    "verify_inclusion",
]

EMPTY = bytes(32)
MAX_SIBLINGS = 256
# 2**20 buckets already take 64 MiB of hashes; deeper buys nothing at ledger scale.
MAX_BUCKET_DEPTH = 20

_LEAF = b"\x00"
_INNER = b"\x01"
_sha256 = hashlib.sha256
_HEX64 = re.compile(r"[0-9a-f]{64}")
_KEY_SPACE = 1 << 256
_LOWEST_KEY = bytes(32)

BucketRow = tuple[int, bytes, int]
"""``(bucket_index, hash, count_capped)``: one depth-``bucket_depth`` node.

``count_capped`` is the number of leaves under it capped at 2 (0, 1 or "2 or more");
with count 1 the hash is that leaf's ``leaf()`` hash, with count 0 it is EMPTY.
"""


def leaf_hash(key_hash: bytes, value_hash: bytes) -> bytes:
    """``SHA-256(0x00 || key_hash || value_hash)``."""
    return _sha256(_LEAF + key_hash + value_hash).digest()


def inner_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``."""
    return _sha256(_INNER + left + right).digest()


def key_hash(key: str) -> bytes:
    """SHA-256 of the key's UTF-8 bytes; raises InvalidInput ``invalid_key`` if it has none."""
    try:
        encoded = key.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput("invalid_key", "A state key must be encodable as UTF-8.") from exc
    return _sha256(encoded).digest()


def value_hash(value: bytes) -> bytes:
    """SHA-256 of the value bytes (canonical JSON in the ledger, but any bytes hash)."""
    return _sha256(value).digest()


# --------------------------------------------------------------------------- proofs


def _is_hash(value: object) -> bool:
    return type(value) is bytes and len(value) == 32


def _invalid_proof(message: str) -> InvalidInput:
    return InvalidInput("invalid_proof", message)


@dataclass(frozen=True, slots=True)
class SparseProof:
    """Siblings from depth 0 downward along a key's path, and what the path ends at.

    ``leaf`` is ``(key_hash, value_hash)`` of the lone leaf where the path stops, or
    ``None`` when it stops at an empty subtree. EMPTY siblings are the 32 zero bytes.
    Raises InvalidInput ``invalid_proof`` unless every hash is 32 ``bytes`` and there
    are at most 256 siblings (the path of a 256-bit key has no more levels).
    """

    siblings: tuple[bytes, ...]
    leaf: tuple[bytes, bytes] | None

    def __post_init__(self) -> None:
        if type(self.siblings) is not tuple or len(self.siblings) > MAX_SIBLINGS:
            raise _invalid_proof(f"A proof has a tuple of at most {MAX_SIBLINGS} siblings.")
        if not all(_is_hash(s) for s in self.siblings):
            raise _invalid_proof("Every sibling of a proof is a 32-byte hash.")
        if self.leaf is not None and not (
            type(self.leaf) is tuple and len(self.leaf) == 2 and all(map(_is_hash, self.leaf))
        ):
            raise _invalid_proof("A proof's leaf is a (key_hash, value_hash) pair of 32 bytes.")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form; EMPTY siblings become ``null`` (and only they do)."""
        return {
            "siblings": [None if s == EMPTY else s.hex() for s in self.siblings],
            "leaf": None
            if self.leaf is None
            else {"key_hash": self.leaf[0].hex(), "value_hash": self.leaf[1].hex()},
        }

    @classmethod
    def from_dict(cls, data: object) -> SparseProof:
        """Parse the JSON form strictly, so each proof has exactly one encoding.

        Hashes are 64 lowercase hex digits; EMPTY is written ``null``, never as zeros;
        unknown fields are refused. Raises InvalidInput ``invalid_proof``.
        """
        if not isinstance(data, Mapping) or set(data) != {"siblings", "leaf"}:
            raise _invalid_proof('A proof is an object with exactly "siblings" and "leaf".')
        raw_siblings, raw_leaf = data["siblings"], data["leaf"]
        if not isinstance(raw_siblings, list) or len(raw_siblings) > MAX_SIBLINGS:
            raise _invalid_proof(f"siblings is a list of at most {MAX_SIBLINGS} entries.")
        siblings = tuple(
            EMPTY if s is None else _parse_hex(s, f"siblings[{i}]", allow_empty=False)
            for i, s in enumerate(raw_siblings)
        )
        if raw_leaf is None:
            return cls(siblings, None)
        if not isinstance(raw_leaf, Mapping) or set(raw_leaf) != {"key_hash", "value_hash"}:
            raise _invalid_proof('leaf is null or an object with "key_hash" and "value_hash".')
        leaf = (
            _parse_hex(raw_leaf["key_hash"], "leaf.key_hash", allow_empty=True),
            _parse_hex(raw_leaf["value_hash"], "leaf.value_hash", allow_empty=True),
        )
        return cls(siblings, leaf)


def _parse_hex(value: object, where: str, *, allow_empty: bool) -> bytes:
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise _invalid_proof(f"{where} is 64 lowercase hexadecimal digits.")
    raw = bytes.fromhex(value)
    if raw == EMPTY and not allow_empty:
        raise _invalid_proof(f"{where} is the empty subtree, which is written null.")
    return raw


def _fail(message: str, **detail: Any) -> VerificationFailure:
    return VerificationFailure("state_proof_invalid", message, **detail)


def verify_hashed(
    root: bytes, hashed_key: bytes, hashed_value: bytes | None, proof: SparseProof
) -> None:
    """Check ``proof`` shows ``hashed_key -> hashed_value`` (or, with ``None``, absence).

    The hashed form of :func:`verify_entry`, for callers that hold only the hashes.
    Inclusion needs the proof's leaf to be exactly ``(hashed_key, hashed_value)``. Absence
    needs no leaf, or a leaf of another key sharing the key's first ``len(siblings)``
    bits (it then occupies the only place the key could be). Either way the siblings
    folded bottom-up along the key's bits must give ``root``.
    Raises VerificationFailure ``state_proof_invalid`` saying which check failed.
    """
    if not _is_hash(root):
        raise _fail("The state root to verify against is not a 32-byte hash.")
    if not _is_hash(hashed_key) or (hashed_value is not None and not _is_hash(hashed_value)):
        raise _fail("The key hash and value hash to verify are 32-byte hashes.")
    depth = len(proof.siblings)
    found = proof.leaf
    if hashed_value is not None:
        if found is None:
            raise _fail(
                "The proof ends at an empty subtree: it shows the key is absent, not present.",
                depth=depth,
            )
        if found[0] != hashed_key:
            raise _fail(
                "The proof ends at another key's leaf: it shows the key is absent, not present.",
                depth=depth,
            )
        if found[1] != hashed_value:
            raise _fail("The proof holds a different value for this key.", depth=depth)
    elif found is not None:
        if found[0] == hashed_key:
            raise _fail("The proof holds a leaf for this very key, so it is not absent.")
        diff = int.from_bytes(found[0], "big") ^ int.from_bytes(hashed_key, "big")
        if diff >> (256 - depth):
            raise _fail(
                f"The proof's leaf does not share the key's first {depth} bits, "
                "so it does not stand where the key would be.",
                depth=depth,
            )
    node = EMPTY if found is None else leaf_hash(found[0], found[1])
    path = int.from_bytes(hashed_key, "big")
    for d in range(depth - 1, -1, -1):
        sibling = proof.siblings[d]
        if (path >> (255 - d)) & 1:
            node = _sha256(_INNER + sibling + node).digest()
        else:
            node = _sha256(_INNER + node + sibling).digest()
    if node != root:
        raise _fail(
            "The proof does not lead to the state root.",
            expected_root=root.hex(),
            computed_root=node.hex(),
        )


def verify_inclusion(root: bytes, key: str, value: bytes, proof: SparseProof) -> None:
    """Check the state under ``root`` maps ``key`` to exactly ``value``; see verify_hashed."""
    verify_hashed(root, key_hash(key), value_hash(value), proof)


def verify_absence(root: bytes, key: str, proof: SparseProof) -> None:
    """Check the state under ``root`` has no entry for ``key``; see verify_hashed."""
    verify_hashed(root, key_hash(key), None, proof)


def verify_entry(root: bytes, key: str, value: bytes | None, proof: SparseProof) -> None:
    """Inclusion of ``value`` under ``key``, or absence of ``key`` when ``value`` is None."""
    verify_hashed(root, key_hash(key), None if value is None else value_hash(value), proof)


# --------------------------------------------------------------------------- leaf sources


class LeafSource(Protocol):
    """Where the tree reads leaves: the store's state table, or :class:`MemoryLeafSource`."""

    def leaves_in_range(self, lo: bytes, hi: bytes | None) -> Iterable[tuple[bytes, bytes]]:
        """Every ``(key_hash, value_hash)`` with ``lo <= key_hash < hi``, ascending.

        ``lo`` and ``hi`` are 32 bytes compared as big-endian numbers; ``hi=None``
        means "to the end of the key space" (the bound 2**256 has no 32-byte form).
        """
        ...


class MemoryLeafSource:
    """An in-memory :class:`LeafSource` for tests and for nodes without a store.

    Leaves live in sorted blocks of a few hundred keys, with values in parallel
    blocks (a B+-tree of height two): a write costs one bisect and a short list
    insert, a range read one bisect and a slice, at any size.
    """

    def __init__(
        self, leaves: Mapping[bytes, bytes] | None = None, *, block_size: int = 512
    ) -> None:
        """Start with ``leaves`` (``{key_hash: value_hash}``); ``block_size`` only tunes speed.

        Raises InvalidInput ``invalid_key_hash`` unless every hash is 32 bytes.
        """
        if block_size < 2:
            raise ValueError("block_size must be at least 2")
        items = sorted((leaves or {}).items())
        for k, v in items:
            if not _is_hash(k) or not _is_hash(v):
                raise InvalidInput("invalid_key_hash", "Leaf key and value hashes are 32 bytes.")
        self._block = block_size  # a block is split in two when it reaches twice this
        starts = range(0, len(items), block_size)
        self._key_blocks = [[k for k, _ in items[i : i + block_size]] for i in starts]
        self._value_blocks = [[v for _, v in items[i : i + block_size]] for i in starts]
        self._firsts = [block[0] for block in self._key_blocks]
        self._size = len(items)

    def __len__(self) -> int:
        return self._size

    def _block_of(self, key: bytes) -> int:
        """The block whose key span would hold ``key`` (the first for smaller keys)."""
        return max(bisect_right(self._firsts, key) - 1, 0)

    def get(self, key_hash: bytes) -> bytes | None:
        if not self._firsts:
            return None
        b = self._block_of(key_hash)
        keys = self._key_blocks[b]
        i = bisect_left(keys, key_hash)
        return self._value_blocks[b][i] if i < len(keys) and keys[i] == key_hash else None

    def set(self, key_hash: bytes, value_hash: bytes | None) -> None:
        """Insert or replace a leaf, or delete it with ``None``.

        Raises InvalidInput ``invalid_key_hash`` unless the hashes are 32 bytes.
        """
        if not _is_hash(key_hash) or (value_hash is not None and not _is_hash(value_hash)):
            raise InvalidInput("invalid_key_hash", "Leaf key and value hashes are 32 bytes.")
        if not self._firsts:
            if value_hash is not None:
                self._key_blocks, self._value_blocks = [[key_hash]], [[value_hash]]
                self._firsts, self._size = [key_hash], 1
            return
        b = self._block_of(key_hash)
        keys, values = self._key_blocks[b], self._value_blocks[b]
        i = bisect_left(keys, key_hash)
        present = i < len(keys) and keys[i] == key_hash
        if value_hash is None:
            if present:
                del keys[i], values[i]
                self._size -= 1
                if keys:
                    self._firsts[b] = keys[0]
                else:
                    del self._key_blocks[b], self._value_blocks[b], self._firsts[b]
        elif present:
            values[i] = value_hash
        else:
            keys.insert(i, key_hash)
            values.insert(i, value_hash)
            self._size += 1
            self._firsts[b] = keys[0]
            if len(keys) >= 2 * self._block:
                half = self._block
                self._key_blocks[b : b + 1] = [keys[:half], keys[half:]]
                self._value_blocks[b : b + 1] = [values[:half], values[half:]]
                self._firsts.insert(b + 1, keys[half])

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """Every leaf in key order."""
        for keys, values in zip(self._key_blocks, self._value_blocks, strict=True):
            yield from zip(keys, values, strict=True)

    def leaves_in_range(self, lo: bytes, hi: bytes | None) -> list[tuple[bytes, bytes]]:
        found: list[tuple[bytes, bytes]] = []
        if not self._firsts:
            return found
        b = self._block_of(lo)
        start = bisect_left(self._key_blocks[b], lo)
        while b < len(self._key_blocks):
            keys = self._key_blocks[b]
            end = len(keys) if hi is None else bisect_left(keys, hi, start)
            found.extend(zip(keys[start:end], self._value_blocks[b][start:end], strict=True))
            if end < len(keys):
                break
            b, start = b + 1, 0
        return found


# --------------------------------------------------------------------------- hashing sorted leaves


def _lift(node: bytes, top: int, to: int, path: int) -> bytes:
    """Hash of the node at depth ``to`` above a subtree rooted at depth ``top``.

    Precondition: nothing else lives between the two depths, so each level in between
    is ``inner`` of the subtree and EMPTY, on the side named by ``path``'s bit.
    """
    for d in range(top - 1, to - 1, -1):
        if (path >> (255 - d)) & 1:
            node = _sha256(_INNER + EMPTY + node).digest()
        else:
            node = _sha256(_INNER + node + EMPTY).digest()
    return node


def _subtree(leaves: Sequence[tuple[bytes, bytes]], depth: int) -> tuple[bytes, int]:
    """``(hash(leaves, depth), min(len(leaves), 2))`` for leaves sorted by key_hash.

    Precondition: the leaves share their first ``depth`` bits. One pass with a stack:
    two neighbours in sorted order meet at the inner node at the depth of their first
    differing bit, so a stack of subtrees whose split depths increase towards the top
    builds the tree bottom-up with one hash per node. (This is the hot loop of
    :meth:`SparseMerkleTree.stage`; it is written for speed.)
    Raises StorageError ``state_source_invalid`` if the leaves are not strictly
    ascending or stray outside the subtree (the source broke its contract).
    """
    n = len(leaves)
    if n == 0:
        return EMPTY, 0
    sha, leaf_tag, inner_tag, from_bytes = _sha256, _LEAF, _INNER, int.from_bytes
    if n == 1:
        kh, vh = leaves[0]
        return sha(leaf_tag + kh + vh).digest(), 1
    # Entries (split, hash, top, path): ``split`` is the first bit where this subtree's
    # keys differ from the entry below it (-1 at the bottom); ``top`` the depth of its
    # root, -1 for a lone leaf, which is never lifted; ``path`` one of its keys.
    stack: list[tuple[int, bytes, int, int]] = []
    prev = -1
    for kh, vh in leaves:
        path = from_bytes(kh, "big")
        if path <= prev:
            raise StorageError("state_source_invalid", "State leaves came unsorted or twice.")
        split = 256 - (path ^ prev).bit_length() if stack else -1
        while stack[-1][0] > split if stack else False:
            at, right, right_top, right_path = stack.pop()
            below, left, left_top, left_path = stack[-1]
            if left_top > at + 1:
                left = _lift(left, left_top, at + 1, left_path)
            if right_top > at + 1:
                right = _lift(right, right_top, at + 1, right_path)
            stack[-1] = (below, sha(inner_tag + left + right).digest(), at, left_path)
        stack.append((split, sha(leaf_tag + kh + vh).digest(), -1, path))
        prev = path
    while len(stack) > 1:
        at, right, right_top, right_path = stack.pop()
        below, left, left_top, left_path = stack[-1]
        if left_top > at + 1:
            left = _lift(left, left_top, at + 1, left_path)
        if right_top > at + 1:
            right = _lift(right, right_top, at + 1, right_path)
        stack[-1] = (below, sha(inner_tag + left + right).digest(), at, left_path)
    _, node, top, path = stack[0]
    if top < depth:
        raise StorageError("state_source_invalid", "State leaves came from outside the range.")
    return _lift(node, top, depth, path), 2


def _node_range(depth: int, index: int) -> tuple[bytes, bytes | None]:
    """The ``leaves_in_range`` bounds of the node ``index`` at ``depth``."""
    shift = 256 - depth
    hi = (index + 1) << shift
    return (index << shift).to_bytes(32, "big"), None if hi == _KEY_SPACE else hi.to_bytes(
        32, "big"
    )


# --------------------------------------------------------------------------- the tree


@dataclass(frozen=True, slots=True)
class StagedRoot:
    """The state root after a block's writes, not yet applied to the tree.

    ``bucket_rows`` are the buckets whose row changed; persist them in the same
    database transaction as the leaves. A row with count 0 is a bucket that became
    empty: delete it or keep it, :meth:`SparseMerkleTree.load_buckets` reads both.
    Then :meth:`SparseMerkleTree.commit` it, or drop it to forget the block. It holds
    only the nodes that change, so its size follows the block, not the tree.
    """

    root: bytes
    bucket_rows: tuple[BucketRow, ...]
    _token: object = field(repr=False, compare=False)
    _generation: int = field(repr=False, compare=False)
    # Per level, the nodes that change: index -> (hash, count_capped).
    _changes: tuple[dict[int, tuple[bytes, int]], ...] = field(repr=False, compare=False)


class SparseMerkleTree:
    """The state tree of a node: top levels in memory, bucket leaves in a LeafSource.

    Levels ``0..bucket_depth`` are kept as one ``bytearray`` of 32-byte hashes and one
    of capped counts per level (about ``2**bucket_depth * 66`` bytes in all). A node's
    count (0, 1, 2 = "two or more") tells the parent whether to collapse: a node of
    count 1 already carries its lone leaf's hash, so collapse crosses bucket borders.

    Cost: staging rehashes every leaf of each dirty bucket, so pick ``bucket_depth``
    near ``log2(leaves) - 2`` (a handful of leaves per bucket). 16 suits up to a few
    hundred thousand leaves; at a million, 18 halves the staging cost for 17 MiB.

    Not thread-safe: the node serialises ``stage``/``commit``/``prove``/``root``.
    """

    def __init__(self, bucket_depth: int = 16) -> None:
        if not 0 <= bucket_depth <= MAX_BUCKET_DEPTH:
            raise InvalidInput(
                "invalid_bucket_depth", f"bucket_depth is between 0 and {MAX_BUCKET_DEPTH}."
            )
        self._depth = bucket_depth
        self._token = object()
        self._generation = 0
        self._hashes = [bytearray(32 << d) for d in range(bucket_depth + 1)]
        self._counts = [bytearray(1 << d) for d in range(bucket_depth + 1)]

    @property
    def bucket_depth(self) -> int:
        return self._depth

    @property
    def root(self) -> bytes:
        return bytes(self._hashes[0][:32])

    def _node(self, depth: int, index: int) -> tuple[bytes, int]:
        at = index * 32
        return bytes(self._hashes[depth][at : at + 32]), self._counts[depth][index]

    def _reset(self) -> None:
        self._generation += 1
        for d in range(self._depth + 1):
            self._hashes[d] = bytearray(32 << d)
            self._counts[d] = bytearray(1 << d)

    def _fill_upper_levels(self) -> None:
        for d in range(self._depth - 1, -1, -1):
            hashes, counts = self._hashes[d], self._counts[d]
            below_h, below_c = self._hashes[d + 1], self._counts[d + 1]
            for i in range(1 << d):
                c0, c1 = below_c[2 * i], below_c[2 * i + 1]
                if c0 + c1 == 0:
                    continue
                at = 64 * i
                node: bytes | bytearray
                if c0 + c1 == 1:
                    node = below_h[at : at + 32] if c0 else below_h[at + 32 : at + 64]
                    counts[i] = 1
                else:
                    node = _sha256(_INNER + below_h[at : at + 64]).digest()
                    counts[i] = 2
                hashes[32 * i : 32 * i + 32] = node

    def bucket_rows(self) -> list[BucketRow]:
        """Every non-empty bucket, ascending: what :meth:`load_buckets` needs."""
        hashes, counts = self._hashes[self._depth], self._counts[self._depth]
        return [(i, bytes(hashes[32 * i : 32 * i + 32]), c) for i, c in enumerate(counts) if c]

    def rebuild(self, source: LeafSource) -> list[BucketRow]:
        """Recompute the whole tree from every leaf in ``source`` (one full scan).

        For first start and audits. Returns :meth:`bucket_rows`: they *replace* every
        persisted row (buckets now empty have no row). Invalidates every outstanding
        :class:`StagedRoot`. Raises StorageError ``state_source_invalid`` if the
        source returns leaves out of order.
        """
        self._reset()
        shift = 256 - self._depth
        hashes, counts = self._hashes[self._depth], self._counts[self._depth]
        for bucket, leaves in _group_by_bucket(source.leaves_in_range(_LOWEST_KEY, None), shift):
            node, count = _subtree(leaves, self._depth)
            hashes[32 * bucket : 32 * bucket + 32] = node
            counts[bucket] = count
        self._fill_upper_levels()
        return self.bucket_rows()

    def load_buckets(self, rows: Iterable[BucketRow]) -> None:
        """Restore the tree from persisted bucket rows instead of scanning every leaf.

        Buckets without a row are empty. Raises InvalidInput ``invalid_bucket_row``
        for an index out of range, a repeated index, a hash that is not 32 bytes, or a
        count that disagrees with its hash (count 0 exactly when the hash is EMPTY).
        Invalidates every outstanding :class:`StagedRoot`.
        """
        self._reset()
        hashes, counts = self._hashes[self._depth], self._counts[self._depth]
        for row in rows:
            try:
                index, node, count = row
            except (TypeError, ValueError) as exc:
                self._reset()
                raise InvalidInput("invalid_bucket_row", "A bucket row has three fields.") from exc
            if not (
                type(index) is int
                and 0 <= index < len(counts)
                and _is_hash(node)
                and count in (0, 1, 2)
                and (count == 0) == (node == EMPTY)
            ):
                self._reset()
                raise InvalidInput("invalid_bucket_row", f"Bucket row {index!r} is malformed.")
            if counts[index]:
                self._reset()
                raise InvalidInput("invalid_bucket_row", f"Bucket {index} appears twice.")
            hashes[32 * index : 32 * index + 32] = node
            counts[index] = count
        self._fill_upper_levels()

    def stage(self, changed: Iterable[bytes], source: LeafSource) -> StagedRoot:
        """The root after the leaves under ``changed`` key hashes were written.

        Precondition: ``source`` already holds the new leaves (inserted, updated or
        deleted) and otherwise matches the committed tree. Only the buckets of the
        changed keys are re-read and rehashed, and each of their ancestors is hashed
        once. The tree itself is not touched until :meth:`commit`.
        Raises InvalidInput ``invalid_key_hash`` if a changed key hash is not 32 bytes.
        """
        depth = self._depth
        shift = 256 - depth
        dirty: set[int] = set()
        for kh in changed:
            if not _is_hash(kh):
                raise InvalidInput("invalid_key_hash", "A changed key hash is not 32 bytes.")
            dirty.add(int.from_bytes(kh, "big") >> shift)
        changes: list[dict[int, tuple[bytes, int]]] = [{} for _ in range(depth + 1)]
        level = changes[depth]
        hashes, counts = self._hashes[depth], self._counts[depth]
        for first, last in _runs(sorted(dirty)):
            lo, hi = _node_range(depth, first)
            if first == last:
                found = {first: list(source.leaves_in_range(lo, hi))}
            else:
                hi = _node_range(depth, last)[1]
                found = dict(_group_by_bucket(source.leaves_in_range(lo, hi), shift))
            for bucket in range(first, last + 1):
                node = _subtree(found.get(bucket, ()), depth)
                if node[1] != counts[bucket] or node[0] != hashes[32 * bucket : 32 * bucket + 32]:
                    level[bucket] = node
        rows = tuple((i, h, c) for i, (h, c) in sorted(level.items()))
        # Each level's changed nodes name the parents to rehash, each parent once.
        sha, inner_tag = _sha256, _INNER
        for d in range(depth - 1, -1, -1):
            below, level = level, changes[d]
            below_h, below_c, get = self._hashes[d + 1], self._counts[d + 1], below.get
            for parent in {i >> 1 for i in below}:
                left, at = 2 * parent, 64 * parent
                h0: bytes | bytearray
                h1: bytes | bytearray
                changed_left, changed_right = get(left), get(left + 1)
                if changed_left is None:
                    h0, c0 = below_h[at : at + 32], below_c[left]
                else:
                    h0, c0 = changed_left
                if changed_right is None:
                    h1, c1 = below_h[at + 32 : at + 64], below_c[left + 1]
                else:
                    h1, c1 = changed_right
                if c0 + c1 >= 2:
                    level[parent] = (sha(inner_tag + h0 + h1).digest(), 2)
                elif c0 + c1 == 1:
                    level[parent] = (bytes(h0 if c0 else h1), 1)
                else:
                    level[parent] = (EMPTY, 0)
        root = changes[0][0][0] if changes[0] else self.root
        return StagedRoot(root, rows, self._token, self._generation, tuple(changes))

    def commit(self, staged: StagedRoot) -> None:
        """Apply a staged root, once its block's database transaction has committed.

        Raises Conflict ``stale_staged_root`` if ``staged`` was made by another tree or
        before a later commit, rebuild or load (its changes would corrupt the tree).
        """
        if staged._token is not self._token or staged._generation != self._generation:
            raise Conflict(
                "stale_staged_root", "This staged state root is not based on the current tree."
            )
        self._generation += 1
        for d, level in enumerate(staged._changes):
            hashes, counts = self._hashes[d], self._counts[d]
            for i, (node, count) in level.items():
                hashes[32 * i : 32 * i + 32] = node
                counts[i] = count

    def prove(self, key: str | bytes, source: LeafSource) -> SparseProof:
        """The inclusion or absence proof for ``key`` (a key string or its 32-byte hash).

        Precondition: ``source`` matches the committed tree. Raises StorageError
        ``state_source_invalid`` when it visibly does not, and InvalidInput
        ``invalid_key_hash`` for a key hash that is not 32 bytes.
        """
        kh = key_hash(key) if isinstance(key, str) else key
        if not _is_hash(kh):
            raise InvalidInput("invalid_key_hash", "A key hash is 32 bytes.")
        path = int.from_bytes(kh, "big")
        siblings: list[bytes] = []
        for d in range(self._depth + 1):
            index = path >> (256 - d)
            node, count = self._node(d, index)
            if count <= 1:
                return SparseProof(tuple(siblings), self._lone_leaf(d, index, node, source))
            if d < self._depth:
                sibling_index = (index << 1) | (1 - ((path >> (255 - d)) & 1))
                siblings.append(self._node(d + 1, sibling_index)[0])
        # The path reached a bucket of two or more leaves: continue below it in memory.
        d = self._depth
        bucket = path >> (256 - d)
        leaves = list(source.leaves_in_range(*_node_range(d, bucket)))
        if _subtree(leaves, d)[0] != self._node(d, bucket)[0]:
            raise StorageError(
                "state_source_invalid", "The state leaves do not match the state tree."
            )
        while len(leaves) > 1:
            cut = next(
                (i for i, (k, _) in enumerate(leaves) if (k[d >> 3] >> (7 - (d & 7))) & 1),
                len(leaves),
            )
            if (path >> (255 - d)) & 1:
                siblings.append(_subtree(leaves[:cut], d + 1)[0])
                leaves = leaves[cut:]
            else:
                siblings.append(_subtree(leaves[cut:], d + 1)[0])
                leaves = leaves[:cut]
            d += 1
        return SparseProof(tuple(siblings), (leaves[0][0], leaves[0][1]) if leaves else None)

    def _lone_leaf(
        self, depth: int, index: int, node: bytes, source: LeafSource
    ) -> tuple[bytes, bytes] | None:
        """The leaf under a node of count <= 1, checked against the node's hash."""
        if node == EMPTY:
            return None
        found = list(islice(source.leaves_in_range(*_node_range(depth, index)), 2))
        if len(found) != 1 or leaf_hash(*found[0]) != node:
            raise StorageError(
                "state_source_invalid", "The state leaves do not match the state tree."
            )
        return found[0][0], found[0][1]


def _runs(ordered: list[int]) -> Iterator[tuple[int, int]]:
    """Maximal runs of consecutive integers as ``(first, last)``: one range read each."""
    start = prev = -2
    for i in ordered:
        if i != prev + 1:
            if start >= 0:
                yield start, prev
            start = i
        prev = i
    if start >= 0:
        yield start, prev


def _group_by_bucket(
    leaves: Iterable[tuple[bytes, bytes]], shift: int
) -> Iterator[tuple[int, list[tuple[bytes, bytes]]]]:
    """Consecutive leaves grouped by bucket (their key's top ``256 - shift`` bits)."""
    current = -1
    group: list[tuple[bytes, bytes]] = []
    for leaf in leaves:
        bucket = int.from_bytes(leaf[0], "big") >> shift
        if bucket != current:
            if bucket < current:
                raise StorageError("state_source_invalid", "State leaves came unsorted.")
            if group:
                yield current, group
            current, group = bucket, []
        group.append(leaf)
    if group:
        yield current, group
