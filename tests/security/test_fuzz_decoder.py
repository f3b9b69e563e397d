"""Hostile bytes at the transaction decoder and at the API's submit path.

Whatever arrives, nothing but a :class:`LedgerError` escapes the decoder (strict
JSON, envelope, wire form), what it accepts is exactly canonical, and the HTTP API
answers every body with a problem below 500. Long runs: ``--run-slow``.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import security_support
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from security_support import json_values, report_figures

from carledger.crypto.keys import SigningKey
from carledger.encoding import canonical
from carledger.errors import LedgerError
from carledger.ledger.tx import Transaction
from tests_support import NodeProcess

KEY = SigningKey(b"F" * 32)
COUNTS: dict[str, int] = {}


def _count(name: str) -> None:
    COUNTS[name] = COUNTS.get(name, 0) + 1


def _fast(n: int) -> Any:
    # --run-slow multiplies the examples (security_support.SCALE, set by the conftest).
    return settings(
        max_examples=n * security_support.SCALE,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )


envelopes = st.fixed_dictionaries(
    {
        "chain": st.sampled_from(["carledger", "seoul-market", "Chain", ""]) | st.text(max_size=5),
        "created": st.sampled_from(["2026-11-22T00:00:00Z", "2026-13-01T00:00:00Z", "x"])
        | json_values,
        "nonce": st.text(max_size=70) | json_values,
        "payload": json_values,
        "signers": st.lists(
            st.sampled_from([KEY.public_hex, "00" * 32, "AB" * 32]) | json_values, max_size=10
        )
        | json_values,
        "type": st.sampled_from(["member.enrol", "trade.sale", "a.b", "A.B"]) | json_values,
    },
    optional={"extra": json_values},
)


def _check_accepted(tx: Transaction, body: bytes) -> None:
    # Whatever the decoder accepts is canonical, keeps the bytes and is named by them.
    assert canonical.encode(tx.envelope) == body
    assert tx.body == body
    assert tx.id == hashlib.sha256(body).hexdigest()


@_fast(400)
@given(st.binary(max_size=300))
def test_arbitrary_bytes(data: bytes) -> None:
    _count("bytes")
    try:
        tx = Transaction.from_body(data, [])
    except LedgerError:
        return
    _check_accepted(tx, data)


@_fast(400)
@given(envelopes, st.integers(0, 9))
def test_envelope_shaped_values(envelope: dict[str, Any], nsigs: int) -> None:
    _count("envelopes")
    try:
        body = canonical.encode(envelope)
    except LedgerError:
        return
    for candidate in (body, json.dumps(envelope).encode(), body + b" "):
        try:
            tx = Transaction.from_body(candidate, [b"\0" * 64] * nsigs)
        except LedgerError:
            continue
        _check_accepted(tx, candidate)


@_fast(300)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "body": st.binary(max_size=200).map(lambda b: base64.b64encode(b).decode())
            | json_values,
            "signatures": st.lists(st.text("0123456789abcdef", max_size=130), max_size=10)
            | json_values,
            "extra": json_values,
        },
    )
    | json_values
)
def test_wire_form(wire: Any) -> None:
    _count("wire")
    try:
        Transaction.from_wire(wire)
    except LedgerError:
        return


@_fast(400)
@given(st.text(max_size=200) | st.binary(max_size=200))
def test_strict_json(data: str | bytes) -> None:
    _count("json")
    try:
        value = canonical.decode(data)
    except LedgerError:
        return
    canonical.check_plain(value)


# --- the API's submit path, on a running node ----------------------------------------------------


@pytest.fixture(scope="module")
def api(demo_node: NodeProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=demo_node.url, timeout=30) as client:
        yield client


bodies = (
    st.binary(max_size=400)
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.lists(
        st.fixed_dictionaries(
            {"body": st.binary(max_size=120).map(lambda b: base64.b64encode(b).decode())},
            optional={"signatures": st.lists(st.text("0123456789abcdef", max_size=128))},
        ),
        max_size=3,
    ).map(lambda v: json.dumps(v).encode())
    | st.integers(1, 60).map(lambda n: b"[" * n + b"]" * n)
)


@_fast(300)
@given(bodies, st.sampled_from(["false", "true"]))
def test_submit_answers_a_problem_never_a_server_error(
    api: httpx.Client, body: bytes, wait: str
) -> None:
    _count("http_bodies")
    r = api.post("/v1/transactions", params={"wait": wait, "timeout": "1"}, content=body)
    assert r.status_code < 500, (body[:100], r.status_code, r.text[:300])
    if r.status_code >= 400:
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["code"]


def test_decoder_fuzz_figures() -> None:
    report_figures("fuzz.decoder", {"inputs": dict(sorted(COUNTS.items()))})
