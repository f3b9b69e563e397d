"""Hostile requests to a running node: each refused with its code, in bounded time and
memory.

Oversized bodies (declared and streamed), deep nesting, invalid UTF-8, huge integers,
a thousand signers or signatures, oversized batches, and VINs written with Unicode
look-alikes (Cyrillic, Greek, full-width, ligatures) are each sent to a ``carledger
up`` process; every answer is an RFC 9457 problem with the expected stable code. The
whole barrage is then repeated and the node's resident memory must not have grown
by more than :data:`RSS_BOUND`.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from security_support import network, report_figures, signed

from carledger.encoding import canonical
from tests_support import NodeProcess

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
#: How much the node's resident memory may grow over the second round of hostile input.
RSS_BOUND = 48 * MiB
#: No hostile request may take longer than this to be refused.
SLOWEST = 5.0

VIN = "KMHLM41D0R0000001"
LOOK_ALIKES = {
    "cyrillic K": "\u041a" + VIN[1:],
    "cyrillic M": "K\u041c" + VIN[2:],
    "greek H": "KM\u0397" + VIN[3:],
    "full-width KMH": "\uff2b\uff2d\uff28" + VIN[3:],
    "long s": VIN[:16] + "\u017f",
    "ff ligature": VIN[:15] + "\ufb00",
    "dotless i": VIN[:16] + "\u0131",
    "zero-width space": VIN[:8] + "\u200b" + VIN[8:],
    "arabic-indic digit": VIN[:16] + "\u0661",
}


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _wire(body: bytes, signatures: int = 1) -> dict[str, Any]:
    return {"body": base64.b64encode(body).decode(), "signatures": ["ab" * 64] * signatures}


def _envelope(**changes: Any) -> dict[str, Any]:
    key = network().key("hmc-01").public_hex
    envelope = {
        "chain": "seoul-market",
        "created": "2026-11-22T00:00:00Z",
        "nonce": "hostile-1",
        "payload": {"vin": VIN},
        "signers": [key],
        "type": "vehicle.register",
    }
    envelope.update(changes)
    return envelope


def _chunks(total: int) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        yield b"[" + b"1," * (MiB // 2 - 1) + b"1]"
        sent += MiB


Case = tuple[str, Callable[[httpx.Client], httpx.Response], int, str]


def _open_stream(path: str) -> Callable[[httpx.Client], httpx.Response]:
    """Open an event stream and close it at once (it must open, not replay the chain)."""

    def send(client: httpx.Client) -> httpx.Response:
        with client.stream("GET", path) as r:
            return r

    return send


def _cases() -> list[Case]:
    def post(content: bytes | Iterator[bytes], **headers: str) -> Callable[[httpx.Client], Any]:
        return lambda c: c.post(
            "/v1/transactions",
            content=content,
            headers={"content-type": "application/json", **headers},
        )

    def post_json(doc: Any) -> Callable[[httpx.Client], Any]:
        return lambda c: c.post("/v1/transactions", content=canonical.encode(doc))

    big = b"[" + b"1," * (9 * MiB // 2) + b"1]"
    cases: list[Case] = [
        ("9 MiB body", post(big), 413, "body_too_large"),
        (
            "9 MiB streamed without length",
            lambda c: c.post("/v1/transactions", content=_chunks(9 * MiB)),
            413,
            "body_too_large",
        ),
        ("100,000 open brackets", post(b"[" * 100_000), 400, "too_deep"),
        ("50,000 nested objects", post(b'{"a":' * 50_000 + b"1" + b"}" * 50_000), 400, "too_deep"),
        ("nesting inside the wire form", post_json({"body": [[[[["x"]]]]]}), 400, "too_deep"),
        ("invalid UTF-8", post(b'{"body": "\xff\xfe"}'), 400, "invalid_utf8"),
        ("overlong UTF-8 slash", post(b'{"body": "\xc0\xaf"}'), 400, "invalid_utf8"),
        ("UTF-8 encoded surrogate", post(b'{"body": "\xed\xa0\x80"}'), 400, "invalid_utf8"),
        ("lone surrogate escape", post(b'{"body": "\\ud800"}'), 400, "invalid_string"),
        (
            "5,000-digit integer",
            post(b'{"body": 1' + b"0" * 5000 + b"}"),
            400,
            "integer_out_of_range",
        ),
        ("2**53", post(b'{"body": 9007199254740992}'), 400, "integer_out_of_range"),
        ("1e400", post(b'{"body": 1e400}'), 400, "float_not_allowed"),
        ("NaN", post(b'{"body": NaN}'), 400, "invalid_json"),
        ("duplicate keys", post(b'{"body": "e30=", "body": "e30="}'), 400, "duplicate_key"),
        (
            "2**60 inside the signed body",
            post_json(
                _wire(
                    canonical.encode(_envelope(payload={"price": 2**50})).replace(
                        b"1125899906842624", b"1152921504606846976"
                    )
                )
            ),
            400,
            "integer_out_of_range",
        ),
        ("a thousand signatures", post_json(_wire(b"{}", 1000)), 400, "invalid_signers"),
        (
            "a thousand signers (over 64 KiB)",
            post_json(
                _wire(canonical.encode(_envelope(signers=[f"{i:064x}" for i in range(1000)])), 1)
            ),
            400,
            "body_too_large",
        ),
        (
            "nine hundred short signers",
            post_json(_wire(canonical.encode(_envelope(signers=["a"] * 900)), 1)),
            400,
            "invalid_signers",
        ),
        (
            "nine signers",
            post_json(
                _wire(canonical.encode(_envelope(signers=[f"{i:064x}" for i in range(9)])), 9)
            ),
            400,
            "invalid_signers",
        ),
        ("1,001 transactions in a batch", post_json([_wire(b"{}")] * 1001), 400, "batch_too_large"),
        ("a 65 KiB body", post_json(_wire(b" " * (65 * 1024))), 400, "body_too_large"),
        (
            "huge limit",
            lambda c: c.get("/v1/vehicles", params={"limit": 10**30}),
            400,
            "invalid_request",
        ),
        ("huge height", lambda c: c.get(f"/v1/blocks/{10**30}"), 404, "unknown_block"),
        (
            "huge history cursor",
            lambda c: c.get(f"/v1/vehicles/{VIN}/history", params={"after": 10**30}),
            200,
            "",
        ),
        ("huge event height", _open_stream(f"/v1/events?from_height={10**30}"), 200, ""),
    ]
    for name, vin in LOOK_ALIKES.items():
        code = "invalid_vin_character"
        cases.append((f"VIN with {name}", lambda c, v=vin: c.get(f"/v1/vehicles/{v}"), 400, code))
        cases.append(
            (
                f"VIN with {name} in a report request",
                lambda c, v=vin: c.get(f"/v1/vehicles/{v}/report"),
                400,
                code,
            )
        )
    return cases  # fmt: skip


def _signed_look_alike_registers() -> list[tuple[str, dict[str, Any]]]:
    net = network()
    out = []
    for name, vin in LOOK_ALIKES.items():
        tx_payload = {
            "vin": vin,
            "prev": None,
            "make": "Hyundai",
            "model": "Avante",
            "model_year": 2024,
            "trim": "Smart",
            "color": "white",
            "fuel": "gasoline",
            "transmission": "automatic",
            "engine_code": "G4FL",
            "plant": "Ulsan",
            "manufactured_on": "2024-01-15",
            "country": "KR",
        }
        tx = signed(net.chain, "vehicle.register", tx_payload, [net.key("hmc-01")])
        out.append((name, tx.to_wire()))
    return out


def _barrage(client: httpx.Client) -> dict[str, float]:
    times: dict[str, float] = {}
    for name, send, status, code in _cases():
        started = time.monotonic()
        r = send(client)
        times[name] = time.monotonic() - started
        assert r.status_code == status, (name, r.status_code, r.text[:300])
        if not code:
            continue
        assert r.headers["content-type"].startswith("application/problem+json"), name
        assert r.json()["code"] == code, (name, r.json())
    for name, wire in _signed_look_alike_registers():
        started = time.monotonic()
        r = client.post("/v1/transactions", json=wire)
        times[f"signed vehicle.register, VIN with {name}"] = time.monotonic() - started
        assert r.status_code == 400, (name, r.text)
        assert r.json()["code"] == "invalid_vin_character", (name, r.json())
    return times


def test_hostile_input_is_refused_with_codes_in_bounded_memory(demo_node: NodeProcess) -> None:
    with httpx.Client(base_url=demo_node.url, timeout=60) as client:
        times = _barrage(client)  # first round: warms every code path
        before = _rss(demo_node.proc.pid)
        for _ in range(3):
            times = _barrage(client)
        after = _rss(demo_node.proc.pid)
        assert client.get("/healthz").json()["status"] == "ok"
    slowest = max(times, key=lambda k: times[k])
    assert times[slowest] < SLOWEST, (slowest, times[slowest])
    assert after - before < RSS_BOUND, f"RSS grew by {(after - before) / MiB:.1f} MiB"
    report_figures(
        "hostile_input",
        {
            "kinds": len(times),
            "requests": 4 * len(times),
            "rss_growth_mib": round((after - before) / MiB, 1),
            "rss_mib": round(after / MiB, 1),
            "slowest": slowest,
            "slowest_s": round(times[slowest], 3),
        },
    )
