"""RFC 9162 §2.1 Merkle tree, transcribed from the recursive definitions.

A reference for tests only: it recomputes whole subtrees on every call and is
written to be checked against the RFC line by line, not to be fast. It shares no
code with :mod:`carledger.ledger.merkle`, so the two can vouch for each other.
Inputs are lists of leaf *data* ``D_n = [d[0], ..., d[n-1]]``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = ["mth", "path", "proof"]


def _hash(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _split(n: int) -> int:
    """k: the largest power of two smaller than ``n`` (requires ``n > 1``)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(d: Sequence[bytes]) -> bytes:
    """MTH(D_n), RFC 9162 §2.1.1."""
    n = len(d)
    if n == 0:
        return _hash(b"")
    if n == 1:
        return _hash(b"\x00" + d[0])
    k = _split(n)
    return _hash(b"\x01" + mth(d[:k]) + mth(d[k:]))


def path(m: int, d: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D_n), the inclusion proof of leaf ``m``, RFC 9162 §2.1.3.1.

    Requires ``0 <= m < n``; raises :class:`ValueError` otherwise.
    """
    n = len(d)
    if not 0 <= m < n:
        raise ValueError(f"PATH needs 0 <= m < n, got m={m}, n={n}")
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return [*path(m, d[:k]), mth(d[k:])]
    return [*path(m - k, d[k:]), mth(d[:k])]


def proof(m: int, d: Sequence[bytes]) -> list[bytes]:
    """PROOF(m, D_n), the consistency proof from ``m`` leaves, RFC 9162 §2.1.4.1.

    The RFC defines it for ``0 < m < n``; ``m == n`` yields the empty proof, as
    SUBPROOF's base case does. Raises :class:`ValueError` outside ``0 < m <= n``.
    """
    if not 0 < m <= len(d):
        raise ValueError(f"PROOF needs 0 < m <= n, got m={m}, n={len(d)}")
    return _subproof(m, d, b=True)


def _subproof(m: int, d: Sequence[bytes], *, b: bool) -> list[bytes]:
    """SUBPROOF(m, D_n, b); ``b`` says whether D[0:m] is the original old tree."""
    n = len(d)
    if m == n:
        return [] if b else [mth(d)]
    k = _split(n)
    if m <= k:
        return [*_subproof(m, d[:k], b=b), mth(d[k:])]
    return [*_subproof(m - k, d[k:], b=False), mth(d[:k])]
