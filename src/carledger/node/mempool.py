"""The bounded queue of checked transactions waiting for a block.

It refuses to grow past its capacity (``mempool_full``, with a retry delay the API
turns into ``503 Retry-After``) instead of exhausting memory under load, and refuses
a transaction already waiting (``duplicate_transaction``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

from carledger.errors import Conflict, LedgerError, OrderingError
from carledger.ledger.tx import Transaction

__all__ = ["Mempool"]


class Mempool:
    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be positive")
        self.capacity = capacity
        self._txs: OrderedDict[str, Transaction] = OrderedDict()
        self._cond = threading.Condition()
        self._wakes = 0

    def __len__(self) -> int:
        return len(self._txs)

    def __contains__(self, tx_id: object) -> bool:
        return tx_id in self._txs

    def add_many(self, txs: Sequence[Transaction]) -> list[LedgerError | None]:
        """Queue ``txs`` in order; per transaction, None or the error that refused it."""
        out: list[LedgerError | None] = []
        with self._cond:
            for tx in txs:
                if tx.id in self._txs:
                    out.append(
                        Conflict("duplicate_transaction", "This transaction is already pending.")
                    )
                elif len(self._txs) >= self.capacity:
                    out.append(
                        OrderingError(
                            "mempool_full",
                            "The node has too many pending transactions; retry shortly.",
                            retry_after=1,
                        )
                    )
                else:
                    self._txs[tx.id] = tx
                    out.append(None)
            self._cond.notify_all()
        return out

    def requeue(self, txs: Sequence[Transaction]) -> None:
        """Put ``txs`` back at the front (a block that failed to commit), ignoring capacity."""
        with self._cond:
            for tx in reversed(txs):
                self._txs[tx.id] = tx
                self._txs.move_to_end(tx.id, last=False)
            self._cond.notify_all()

    def take(self, limit: int) -> list[Transaction]:
        """Remove and return up to ``limit`` transactions, oldest first."""
        with self._cond:
            batch: list[Transaction] = []
            while self._txs and len(batch) < limit:
                batch.append(self._txs.popitem(last=False)[1])
            return batch

    def wait(self, count: int, timeout: float) -> int:
        """Block until ``count`` are pending, ``timeout`` seconds pass, or :meth:`wake`."""
        with self._cond:
            woken = self._wakes
            self._cond.wait_for(
                lambda: len(self._txs) >= count or self._wakes != woken, timeout=timeout
            )
            return len(self._txs)

    def wake(self) -> None:
        """End every current :meth:`wait` (used to stop the block cutter)."""
        with self._cond:
            self._wakes += 1
            self._cond.notify_all()
