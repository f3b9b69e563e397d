"""Fan-out of committed blocks to followers (the server-sent event stream).

Each subscriber gets a bounded queue. A subscriber that falls too far behind is
dropped (it receives ``None``) rather than letting the node's memory grow; it
resumes from the store with its last event id, so nothing is lost to it.
"""

from __future__ import annotations

import contextlib
import queue
import threading

from carledger.ledger.ledger import CommittedBlock

__all__ = ["EventHub"]


class EventHub:
    def __init__(self, depth: int = 1024) -> None:
        self.depth = depth
        self._subscribers: set[queue.Queue[CommittedBlock | None]] = set()
        self._lock = threading.Lock()

    def subscribe(self) -> queue.Queue[CommittedBlock | None]:
        q: queue.Queue[CommittedBlock | None] = queue.Queue(maxsize=self.depth)
        with self._lock:
            self._subscribers.add(q)
        return q

    def unsubscribe(self, q: queue.Queue[CommittedBlock | None]) -> None:
        with self._lock:
            self._subscribers.discard(q)

    def publish(self, block: CommittedBlock) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for q in subscribers:
            try:
                q.put_nowait(block)
            except queue.Full:
                self.unsubscribe(q)
                # Make room for the end-of-stream marker so the reader notices.
                with contextlib.suppress(queue.Empty):
                    q.get_nowait()
                q.put_nowait(None)

    def close(self) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
            self._subscribers.clear()
        for q in subscribers:
            with contextlib.suppress(queue.Full):
                q.put_nowait(None)
