"""A small etcd v3 client over etcd's JSON gateway (``/v3/...``), with member failover.

Only what consortium ordering needs: range, put, txn, delete-range, compaction,
leases and watches. Keys and values are bytes here and base64 on the wire; etcd's
int64 fields arrive as JSON strings and are turned into ints.

Failover is explicit. The client holds every member's URL and talks to one at a
time. A transport failure, a timeout, or an answer meaning "this member cannot serve
now" (no leader, leader changed, request timed out, unavailable) moves it to the next
member and retries there; after one pass over all members it raises
:class:`EtcdUnavailable` and the caller decides when to try again. A write that timed
out may still have been committed (etcd cannot tell): every caller in
:mod:`carledger.consortium` makes its writes idempotent or guards them with a
compare, so a retry never duplicates anything.

Watches surface compaction: a watch whose start revision was compacted ends with
:class:`WatchCompacted` carrying etcd's ``compact_revision``, and a stream that goes
quiet longer than ``idle_timeout`` simply ends (the caller re-creates it from the
last revision it saw), so a member that silently lost the cluster cannot stall a
watcher for long.

Errors::

    OrderingError (carledger.errors)
    ├── EtcdUnavailable     no member answered (code ``etcd_unavailable``)
    ├── EtcdRequestError    a member refused the request itself (too large, bad lease)
    └── WatchCompacted      the watch's start revision is compacted (``etcd_compacted``)
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from carledger.errors import OrderingError

__all__ = [
    "KV",
    "EtcdClient",
    "EtcdRequestError",
    "EtcdTLS",
    "EtcdUnavailable",
    "RangeResult",
    "TxnResult",
    "WatchCompacted",
    "WatchEvent",
    "prefix_end",
]

log = logging.getLogger(__name__)

#: gRPC status codes after which another member may succeed.
_RETRY_ELSEWHERE = {1, 4, 8, 10, 13, 14}
#: etcd error texts that mean "this member cannot serve now", whatever the code.
_MEMBER_TROUBLE = (
    "no leader",
    "leader changed",
    "request timed out",
    "too many requests",
    "not capable",
    "stopped",
)


class EtcdUnavailable(OrderingError):
    """No etcd member could serve the request."""


class EtcdRequestError(OrderingError):
    """An etcd member answered but refused the request (too large, unknown lease...)."""


class WatchCompacted(OrderingError):
    """The revision a watch asked for has been compacted away."""

    def __init__(self, compact_revision: int) -> None:
        super().__init__(
            "etcd_compacted",
            f"etcd compacted its history up to revision {compact_revision}; "
            "the watcher must re-read current keys.",
            compact_revision=compact_revision,
        )
        self.compact_revision = compact_revision


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str | None) -> bytes:
    return base64.b64decode(text) if text else b""


def prefix_end(prefix: bytes) -> bytes:
    """The ``range_end`` that selects every key starting with ``prefix``."""
    data = bytearray(prefix)
    while data:
        if data[-1] < 0xFF:
            data[-1] += 1
            return bytes(data)
        data.pop()
    return b"\x00"


@dataclass(frozen=True, slots=True)
class KV:
    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> KV:
        return cls(
            key=_unb64(doc.get("key")),
            value=_unb64(doc.get("value")),
            create_revision=int(doc.get("create_revision", 0)),
            mod_revision=int(doc.get("mod_revision", 0)),
            version=int(doc.get("version", 0)),
            lease=int(doc.get("lease", 0)),
        )


@dataclass(frozen=True, slots=True)
class RangeResult:
    kvs: list[KV]
    revision: int
    more: bool
    count: int


@dataclass(frozen=True, slots=True)
class TxnResult:
    succeeded: bool
    revision: int
    responses: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class WatchEvent:
    kind: str  # PUT | DELETE
    kv: KV


@dataclass(frozen=True, slots=True)
class EtcdTLS:
    """Client TLS for ``https://`` members: the CA that signed them, and our own cert."""

    ca_file: Path
    cert_file: Path | None = None
    key_file: Path | None = None

    def verify(self) -> Any:
        import ssl

        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        if self.cert_file is not None:
            ctx.load_cert_chain(str(self.cert_file), str(self.key_file) if self.key_file else None)
        return ctx


# --- request builders -------------------------------------------------------------


def compare(key: bytes, target: str, value: int | bytes, result: str = "EQUAL") -> dict[str, Any]:
    """A txn comparison: ``target`` is CREATE, MOD, VERSION or VALUE."""
    field = {
        "CREATE": "create_revision",
        "MOD": "mod_revision",
        "VERSION": "version",
        "VALUE": "value",
    }[target]
    wire: Any = _b64(value) if isinstance(value, bytes) else str(value)
    return {"key": _b64(key), "target": target, "result": result, field: wire}


def op_put(key: bytes, value: bytes, lease: int = 0) -> dict[str, Any]:
    req: dict[str, Any] = {"key": _b64(key), "value": _b64(value)}
    if lease:
        req["lease"] = str(lease)
    return {"request_put": req}


def op_delete(key: bytes, range_end: bytes | None = None) -> dict[str, Any]:
    req = {"key": _b64(key)}
    if range_end is not None:
        req["range_end"] = _b64(range_end)
    return {"request_delete_range": req}


def op_range(key: bytes, range_end: bytes | None = None) -> dict[str, Any]:
    req = {"key": _b64(key)}
    if range_end is not None:
        req["range_end"] = _b64(range_end)
    return {"request_range": req}


class EtcdClient:
    """Thread-safe client of one etcd cluster given by its members' client URLs."""

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        timeout: float = 5.0,
        tls: EtcdTLS | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not endpoints:
            raise ValueError("etcd needs at least one endpoint")
        self.endpoints = [e.rstrip("/") for e in endpoints]
        self.timeout = timeout
        self._tls = tls
        self._transport = transport
        self._current = 0
        self._lock = threading.Lock()
        self._http = self._new_http()
        self._closed = False
        #: Counts switches to another member (exported as a metric by the caller).
        self.failovers = 0
        #: Called with (path, seconds) after each unary call a member answered, refusals
        #: included (the caller exports it as a histogram by operation).
        self.observe: Callable[[str, float], None] | None = None

    def _new_http(self) -> httpx.Client:
        verify: Any = self._tls.verify() if self._tls else True
        return httpx.Client(
            timeout=httpx.Timeout(self.timeout, connect=min(2.0, self.timeout)),
            verify=verify,
            transport=self._transport,
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
        )

    @property
    def endpoint(self) -> str:
        return self.endpoints[self._current]

    def close(self) -> None:
        self._closed = True
        self._http.close()

    def _fail_over(self, bad: int) -> None:
        with self._lock:
            if self._current == bad and len(self.endpoints) > 1:
                self._current = (bad + 1) % len(self.endpoints)
                self.failovers += 1
                log.warning(
                    "etcd member %s unavailable; switching to %s",
                    self.endpoints[bad],
                    self.endpoints[self._current],
                )

    # -- unary calls ---------------------------------------------------------------------

    def call(self, path: str, body: Mapping[str, Any], *, timeout: float | None = None) -> Any:
        """POST ``body`` to ``/v3/<path>`` on a member, failing over as described above."""
        last: str = "no member tried"
        for _ in range(len(self.endpoints)):
            index = self._current
            url = f"{self.endpoints[index]}/v3/{path}"
            started = time.perf_counter()
            try:
                response = self._http.post(
                    url, content=json.dumps(body), timeout=timeout or self.timeout
                )
                if self.observe is not None:
                    self.observe(path, time.perf_counter() - started)
            except httpx.HTTPError as exc:
                if self._closed:
                    raise EtcdUnavailable("etcd_closed", "The etcd client is closed.") from exc
                last = f"{type(exc).__name__} from {url}"
                self._fail_over(index)
                continue
            try:
                doc = response.json()
            except ValueError:
                doc = {"error": response.text[:200], "code": 2}
            if response.status_code == 200 and "error" not in doc:
                return doc
            message = str(doc.get("error") or doc.get("message") or response.reason_phrase)
            code = int(doc.get("code", 2))
            if code in _RETRY_ELSEWHERE or any(t in message for t in _MEMBER_TROUBLE):
                last = f"{message} from {url}"
                self._fail_over(index)
                continue
            raise EtcdRequestError(
                "etcd_request_refused", f"etcd refused {path}: {message}.", grpc_code=code
            )
        raise EtcdUnavailable(
            "etcd_unavailable",
            f"No etcd member could serve the request (last: {last}).",
        )

    def range(
        self,
        key: bytes,
        range_end: bytes | None = None,
        *,
        limit: int = 0,
        sort_target: str | None = None,
        sort_order: str = "ASCEND",
        revision: int = 0,
        keys_only: bool = False,
        count_only: bool = False,
    ) -> RangeResult:
        body: dict[str, Any] = {"key": _b64(key)}
        if range_end is not None:
            body["range_end"] = _b64(range_end)
        if limit:
            body["limit"] = str(limit)
        if sort_target:
            body["sort_target"] = sort_target
            body["sort_order"] = sort_order
        if revision:
            body["revision"] = str(revision)
        if keys_only:
            body["keys_only"] = True
        if count_only:
            body["count_only"] = True
        doc = self.call("kv/range", body)
        return RangeResult(
            kvs=[KV.from_json(kv) for kv in doc.get("kvs", [])],
            revision=int(doc["header"]["revision"]),
            more=bool(doc.get("more", False)),
            count=int(doc.get("count", 0)),
        )

    def get(self, key: bytes) -> KV | None:
        kvs = self.range(key).kvs
        return kvs[0] if kvs else None

    def put(self, key: bytes, value: bytes, *, lease: int = 0) -> int:
        body: dict[str, Any] = {"key": _b64(key), "value": _b64(value)}
        if lease:
            body["lease"] = str(lease)
        return int(self.call("kv/put", body)["header"]["revision"])

    def txn(
        self,
        compares: Sequence[Mapping[str, Any]],
        success: Sequence[Mapping[str, Any]],
        failure: Sequence[Mapping[str, Any]] = (),
    ) -> TxnResult:
        doc = self.call(
            "kv/txn",
            {"compare": list(compares), "success": list(success), "failure": list(failure)},
        )
        return TxnResult(
            succeeded=bool(doc.get("succeeded", False)),
            revision=int(doc["header"]["revision"]),
            responses=list(doc.get("responses", [])),
        )

    def delete_range(self, key: bytes, range_end: bytes | None = None) -> tuple[int, int]:
        """Delete ``[key, range_end)``; return (revision, keys deleted)."""
        body: dict[str, Any] = {"key": _b64(key)}
        if range_end is not None:
            body["range_end"] = _b64(range_end)
        doc = self.call("kv/deleterange", body)
        return int(doc["header"]["revision"]), int(doc.get("deleted", 0))

    def compact(self, revision: int) -> None:
        """Drop history before ``revision`` (current values stay). Compacting again is a no-op."""
        try:
            self.call("kv/compaction", {"revision": str(revision), "physical": False})
        except EtcdRequestError as exc:
            if "compacted" not in exc.message:
                raise

    # -- leases --------------------------------------------------------------------------

    def lease_grant(self, ttl: int) -> tuple[int, int]:
        doc = self.call("lease/grant", {"TTL": str(ttl)})
        if doc.get("error"):
            raise EtcdRequestError("etcd_request_refused", str(doc["error"]))
        return int(doc["ID"]), int(doc["TTL"])

    def lease_keepalive(self, lease: int) -> int:
        """Refresh ``lease``; its remaining TTL, 0 when it has expired."""
        doc = self.call("lease/keepalive", {"ID": str(lease)})
        result = doc.get("result", doc)
        return int(result.get("TTL", 0))

    def lease_revoke(self, lease: int) -> None:
        with contextlib.suppress(EtcdRequestError):  # already expired
            self.call("lease/revoke", {"ID": str(lease)}, timeout=2.0)

    # -- watches -------------------------------------------------------------------------

    def watch(
        self,
        key: bytes,
        range_end: bytes | None,
        start_revision: int,
        *,
        idle_timeout: float = 3.0,
    ) -> Iterator[list[WatchEvent]]:
        """Yield batches of events from ``start_revision`` on, until the stream ends.

        Ends quietly after ``idle_timeout`` seconds without a message (re-watch from
        the next revision), raises :class:`WatchCompacted` if ``start_revision`` is
        compacted, :class:`EtcdUnavailable` if the member cannot be reached (after
        switching to the next member for the caller's retry).
        """
        create: dict[str, Any] = {"key": _b64(key), "start_revision": str(start_revision)}
        if range_end is not None:
            create["range_end"] = _b64(range_end)
        index = self._current
        url = f"{self.endpoints[index]}/v3/watch"
        timeout = httpx.Timeout(idle_timeout, connect=min(2.0, self.timeout))
        try:
            with self._http.stream(
                "POST", url, content=json.dumps({"create_request": create}), timeout=timeout
            ) as response:
                if response.status_code != 200:
                    self._fail_over(index)
                    raise EtcdUnavailable(
                        "etcd_unavailable", f"watch on {url} answered {response.status_code}."
                    )
                for line in response.iter_lines():
                    if not line.strip():
                        continue
                    doc = json.loads(line)
                    if "error" in doc:
                        self._fail_over(index)
                        raise EtcdUnavailable(
                            "etcd_unavailable", f"watch on {url} failed: {doc['error']}."
                        )
                    result = doc.get("result", {})
                    compact_rev = int(result.get("compact_revision", 0))
                    if compact_rev:
                        raise WatchCompacted(compact_rev)
                    if result.get("canceled"):
                        return
                    events = [
                        WatchEvent(ev.get("type", "PUT"), KV.from_json(ev.get("kv", {})))
                        for ev in result.get("events", [])
                    ]
                    if events:
                        yield events
        except httpx.ReadTimeout:
            return
        except httpx.HTTPError as exc:
            if self._closed:
                return
            self._fail_over(index)
            raise EtcdUnavailable(
                "etcd_unavailable", f"watch on {url} failed: {type(exc).__name__}."
            ) from exc
