"""The etcd gateway client against an in-process fake transport: failover and errors."""

from __future__ import annotations

import json

import httpx
import pytest

from carledger.consortium.etcd import (
    EtcdClient,
    EtcdRequestError,
    EtcdUnavailable,
    WatchCompacted,
    compare,
)

HEADER = {"header": {"revision": "7"}}


def client(handler: httpx.MockTransport, n: int = 2) -> EtcdClient:
    return EtcdClient([f"http://m{i}:2379" for i in range(n)], transport=handler, timeout=1)


def test_fails_over_to_the_next_member() -> None:
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.host)
        if request.url.host == "m0":
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, json={**HEADER, "kvs": [], "count": "0"})

    c = client(httpx.MockTransport(handle))
    assert c.range(b"k").revision == 7
    assert c.range(b"k").revision == 7
    assert seen == ["m0", "m1", "m1"]  # it stays on the member that answered
    assert c.failovers == 1


@pytest.mark.parametrize("error", ["etcdserver: no leader", "etcdserver: request timed out"])
def test_member_trouble_moves_on_then_gives_up(error: str) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, json={"error": error, "code": 14})

    with pytest.raises(EtcdUnavailable) as info:
        client(httpx.MockTransport(handle)).put(b"k", b"v")
    assert info.value.code == "etcd_unavailable"


def test_a_refused_request_is_not_retried_elsewhere() -> None:
    calls = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.host)
        return httpx.Response(400, json={"error": "etcdserver: request is too large", "code": 3})

    with pytest.raises(EtcdRequestError):
        client(httpx.MockTransport(handle)).put(b"k", b"v" * 10)
    assert calls == ["m0"]


def test_txn_reports_success_and_encodes_compares() -> None:
    bodies = []

    def handle(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json={**HEADER, "succeeded": True, "responses": []})

    result = client(httpx.MockTransport(handle)).txn([compare(b"head", "MOD", 0)], [])
    assert result.succeeded
    assert result.revision == 7
    assert bodies[0]["compare"][0] == {
        "key": "aGVhZA==",
        "target": "MOD",
        "result": "EQUAL",
        "mod_revision": "0",
    }


def test_watch_surfaces_compaction() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        lines = [
            {"result": {**HEADER, "created": True}},
            {"result": {"header": {}, "canceled": True, "compact_revision": "5"}},
        ]
        return httpx.Response(200, content="\n".join(json.dumps(x) for x in lines).encode())

    with pytest.raises(WatchCompacted) as info:
        list(client(httpx.MockTransport(handle)).watch(b"a", b"b", 2))
    assert info.value.compact_revision == 5


def test_watch_yields_events() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        event = {"kv": {"key": "YQ==", "value": "dg==", "mod_revision": "9"}}
        line = {"result": {**HEADER, "events": [event]}}
        return httpx.Response(200, content=json.dumps(line).encode())

    [[event]] = list(client(httpx.MockTransport(handle)).watch(b"a", b"b", 2))
    assert (event.kind, event.kv.key, event.kv.value, event.kv.mod_revision) == (
        "PUT",
        b"a",
        b"v",
        9,
    )
