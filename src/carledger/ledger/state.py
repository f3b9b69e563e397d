"""State values and the per-block write overlay.

The state is a map from string keys (``member/<key>``, ``vehicle/<VIN>``, ...) to
JSON values stored as RFC 8785 canonical bytes; the state root commits to
``sha256(value bytes)`` of each key (see :mod:`carledger.ledger.smt`). During a
block, an :class:`Overlay` layers the writes of accepted transactions over the
committed state so later transactions in the same block see them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from carledger.encoding import canonical

_loads: Callable[[bytes], Any]
try:
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - orjson is a dependency
    _loads = json.loads

__all__ = ["Overlay", "StateReader", "decode_value", "encode_value"]


class StateReader(Protocol):
    """Committed state, by key, as canonical bytes."""

    def get_state(self, key: str) -> bytes | None: ...


def encode_value(value: Any) -> bytes:
    return canonical.encode(value)


def decode_value(data: bytes) -> Any:
    # Values in the state were written by encode_value, so the fast, lenient
    # decoder is enough here; strict decoding is for untrusted input.
    # orjson gives the same values as json.loads for canonical JSON, about three
    # times faster.
    return _loads(data)


class Overlay:
    """Pending writes of one block over a :class:`StateReader`.

    Values are held as canonical bytes and decoded on every ``get``, so a
    contract can never alter pending state by mutating an object it read. Bytes read
    from the base are remembered for the overlay's life (one block: the base does not
    change under it), so the member and market entries most records read cost one
    query a block, not one a record.
    """

    def __init__(self, base: StateReader) -> None:
        self._base = base
        self._writes: dict[str, bytes | None] = {}
        self._reads: dict[str, bytes | None] = {}

    def get(self, key: str) -> Any:
        data = self.get_bytes(key)
        return None if data is None else decode_value(data)

    def get_bytes(self, key: str) -> bytes | None:
        if key in self._writes:
            return self._writes[key]
        try:
            return self._reads[key]
        except KeyError:
            data = self._reads[key] = self._base.get_state(key)
            return data

    def prefetch(self, keys: Iterable[str]) -> None:
        """Read many committed entries at once when the base can (one query, not one each).

        Only fills the read cache: what ``get`` returns is the same either way.
        """
        batch = getattr(self._base, "get_states", None)
        wanted = [k for k in keys if k not in self._reads and k not in self._writes]
        if batch is not None and wanted:
            self._reads.update(batch(wanted))

    def apply(self, writes: Mapping[str, Any]) -> None:
        # Encode everything first so a value that cannot be encoded leaves the
        # overlay untouched (the transaction is refused as a whole).
        encoded = {k: None if v is None else encode_value(v) for k, v in writes.items()}
        self._writes.update(encoded)

    @property
    def writes(self) -> dict[str, bytes | None]:
        """Every key written in this block and its final bytes (None: deleted)."""
        return self._writes
