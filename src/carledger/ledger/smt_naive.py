"""Reference state root and proofs, straight from the definition in ``carledger.ledger.smt``.

Slow on purpose (it re-splits the leaf list at every level) and independent of the
optimised code: it does its own hashing and bit reading, sharing only the proof class.
Tests hold :class:`~carledger.ledger.smt.SparseMerkleTree` to it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from carledger.ledger.smt import SparseProof

__all__ = ["naive_proof", "naive_root"]

_EMPTY = bytes(32)

_Leaves = list[tuple[bytes, bytes]]


def _bit(key_hash: bytes, depth: int) -> int:
    """Bit ``depth`` of the key hash, most significant bit of byte 0 first."""
    return (key_hash[depth // 8] >> (7 - depth % 8)) & 1


def _split(leaves: _Leaves, depth: int) -> tuple[_Leaves, _Leaves]:
    return (
        [leaf for leaf in leaves if _bit(leaf[0], depth) == 0],
        [leaf for leaf in leaves if _bit(leaf[0], depth) == 1],
    )


def _hash(leaves: _Leaves, depth: int) -> bytes:
    """hash(S, d) of the definition; ``leaves`` share their first ``depth`` bits."""
    if not leaves:
        return _EMPTY
    if len(leaves) == 1:
        kh, vh = leaves[0]
        return hashlib.sha256(b"\x00" + kh + vh).digest()
    zeros, ones = _split(leaves, depth)
    return hashlib.sha256(b"\x01" + _hash(zeros, depth + 1) + _hash(ones, depth + 1)).digest()


def naive_root(leaves: Mapping[bytes, bytes]) -> bytes:
    """The root over ``{key_hash: value_hash}`` (keys 32 bytes, distinct by construction)."""
    return _hash(sorted(leaves.items()), 0)


def naive_proof(leaves: Mapping[bytes, bytes], key_hash: bytes) -> SparseProof:
    """The proof for ``key_hash``: siblings down its path to a subtree of at most one leaf."""
    current = sorted(leaves.items())
    siblings: list[bytes] = []
    depth = 0
    while len(current) > 1:
        zeros, ones = _split(current, depth)
        if _bit(key_hash, depth):
            siblings.append(_hash(zeros, depth + 1))
            current = ones
        else:
            siblings.append(_hash(ones, depth + 1))
            current = zeros
        depth += 1
    return SparseProof(tuple(siblings), current[0] if current else None)
