"""Signed transactions: envelope rules, wire form, signatures, and docs/vectors.

The vectors are checked with libraries other than the ones the ledger uses
(``rfc8785`` directly and ``cryptography`` for Ed25519), so a vector file that
merely agrees with our own code would not pass.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from carledger.crypto.keys import SigningKey
from carledger.encoding import canonical
from carledger.errors import InvalidInput, VerificationFailure
from carledger.ledger.tx import MAX_BODY_BYTES, MAX_SIGNERS, Transaction, build_body, sign

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "docs" / "vectors" / "transactions.json"

ALICE = SigningKey(b"\x01" * 32)
BOB = SigningKey(b"\x02" * 32)
MALLORY = SigningKey(b"\x03" * 32)


def envelope(**overrides: Any) -> dict[str, Any]:
    env: dict[str, Any] = {
        "chain": "seoul-market",
        "created": "2026-11-22T09:30:00Z",
        "nonce": "n-1",
        "payload": {"vin": "KMHD341CBNU123456", "price": 18500000, "note": "무사고"},
        "signers": [ALICE.public_hex],
        "type": "trade.purchase",
    }
    env.update(overrides)
    return {k: v for k, v in env.items() if v is not _DROP}


_DROP = object()


def body_of(env: dict[str, Any]) -> bytes:
    """Canonical bytes of ``env`` without any envelope validation."""
    return rfc8785.dumps(env)


def signed(env: dict[str, Any], keys: list[SigningKey]) -> Transaction:
    return sign(body_of(env), keys)


# --- round trip and wire form -------------------------------------------------------------


def test_build_sign_wire_round_trip() -> None:
    body = build_body(
        chain="seoul-market",
        type="trade.sale",
        payload={"vin": "KMHD341CBNU123456", "price": 21900000},
        signers=[ALICE.public_hex, BOB.public_hex],
        created="2026-11-22T10:05:00.5Z",
        nonce="sale-1",
    )
    tx = sign(body, [ALICE, BOB])
    tx.verify_signatures()
    assert tx.bad_signers() == []
    assert tx.id == hashlib.sha256(body).hexdigest()
    assert tx.body == body
    assert (tx.chain, tx.type, tx.nonce, tx.created) == (
        "seoul-market",
        "trade.sale",
        "sale-1",
        "2026-11-22T10:05:00.5Z",
    )
    assert tx.signers == (ALICE.public_hex, BOB.public_hex)
    assert tx.payload == {"vin": "KMHD341CBNU123456", "price": 21900000}

    wire = tx.to_wire()
    assert set(wire) == {"body", "signatures"}
    assert base64.b64decode(wire["body"], validate=True) == body
    assert wire["signatures"] == [s.hex() for s in tx.signatures]
    assert all(len(s) == 128 and s == s.lower() for s in wire["signatures"])

    # Through real JSON text, as a client would send it.
    again = Transaction.from_wire(json.loads(json.dumps(wire)))
    assert (again.id, again.body, again.signatures) == (tx.id, tx.body, tx.signatures)
    again.verify_signatures()


def test_build_body_is_canonical_and_random_nonce_when_none() -> None:
    kwargs: dict[str, Any] = {
        "chain": "seoul-market",
        "type": "member.enrol",
        "payload": {"b": 1, "a": 2},
        "signers": [ALICE.public_hex],
        "created": "2026-11-22T09:30:00Z",
    }
    one, two = build_body(**kwargs), build_body(**kwargs)
    assert one != two
    env = json.loads(one)
    assert len(env["nonce"]) == 24
    assert one == rfc8785.dumps(env)


def test_build_body_refuses_floats() -> None:
    with pytest.raises(InvalidInput) as info:
        build_body(
            chain="seoul-market",
            type="trade.purchase",
            payload={"price": 1.5},
            signers=[ALICE.public_hex],
            created="2026-11-22T09:30:00Z",
            nonce="x",
        )
    assert info.value.code == "float_not_allowed"


def test_body_is_kept_as_received() -> None:
    # Korean text and an astral character: the bytes in, the bytes out, the same id.
    body = body_of(envelope(payload={"note": "장안평 \U0001f697", "km": 0}))
    wire = {"body": base64.b64encode(body).decode(), "signatures": [ALICE.sign(body).hex()]}
    tx = Transaction.from_wire(wire)
    assert tx.body == body
    assert tx.to_wire() == wire
    assert tx.id == hashlib.sha256(body).hexdigest()
    assert tx.payload == {"note": "장안평 \U0001f697", "km": 0}


# --- envelope errors ------------------------------------------------------------------------

_GOOD = body_of(envelope())
_BIG_NOTE = "x" * (MAX_BODY_BYTES + 1)
_NINE = [SigningKey(bytes([i]) * 32).public_hex for i in range(10, 10 + MAX_SIGNERS + 1)]

_ENVELOPE_CASES: list[tuple[str, bytes, int, str]] = [
    *[
        (f"missing-{f}", body_of(envelope(**{f: _DROP})), 1, "missing_field")
        for f in ("chain", "created", "nonce", "payload", "signers", "type")
    ],
    ("unknown-field", body_of(envelope(memo="hi")), 1, "unknown_field"),
    ("not-an-object", b"[]", 1, "invalid_envelope"),
    ("float-in-payload", body_of(envelope(payload={"price": 1.5})), 1, "float_not_allowed"),
    (
        "float-deep-in-payload",
        body_of(envelope(payload={"parts": [{"cost": 10, "ratio": 0.5}]})),
        1,
        "float_not_allowed",
    ),
    ("exponent-in-payload", _GOOD.replace(b"18500000", b"1.85e7"), 1, "float_not_allowed"),
    (
        "big-int-in-payload",
        _GOOD.replace(b"18500000", b"9007199254740992"),
        1,
        "integer_out_of_range",
    ),
    ("duplicate-key", _GOOD.replace(b'{"chain"', b'{"chain":"x","chain"'), 1, "duplicate_key"),
    ("invalid-utf8", _GOOD.replace("무사고".encode(), b"\xff\xfe"), 1, "invalid_utf8"),
    ("spaces", _GOOD.replace(b'"chain":', b'"chain": '), 1, "not_canonical"),
    ("newline-at-end", _GOOD + b"\n", 1, "not_canonical"),
    (
        "key-order",
        json.dumps(envelope(), ensure_ascii=False, separators=(",", ":")).encode(),
        1,
        "not_canonical",
    ),
    ("escaped-unicode", _GOOD.replace("무".encode(), b"\\ubb34"), 1, "not_canonical"),
    ("escaped-slash", body_of(envelope(nonce="a/b")).replace(b"a/b", b"a\\/b"), 1, "not_canonical"),
    (
        "uppercase-escape",
        body_of(envelope(nonce="n")).replace(b'"n"', b'"\\u006E"'),
        1,
        "not_canonical",
    ),
    *[
        (f"chain-{i}", body_of(envelope(chain=c)), 1, "invalid_chain")
        for i, c in enumerate(["", "Seoul", "-seoul", "seoul_market", "a" * 65, 7, None])
    ],
    *[
        (f"type-{i}", body_of(envelope(type=t)), 1, "invalid_type")
        for i, t in enumerate(
            ["trade", "Trade.sale", "trade.sale.", ".trade", "a.b.c.d.e", "trade.sa le", 1]
        )
    ],
    *[
        (f"payload-{i}", body_of(envelope(payload=p)), 1, "invalid_payload")
        for i, p in enumerate([[], "x", None, 3])
    ],
    *[
        (f"nonce-{i}", body_of(envelope(nonce=n)), 1, "invalid_nonce")
        for i, n in enumerate(["", "a b", "n" * 65, "é", "\t", 7])
    ],
    *[
        (f"created-{i}", body_of(envelope(created=c)), 1, "invalid_timestamp")
        for i, c in enumerate(
            [
                "2026-11-22 09:30:00Z",
                "2026-11-22T09:30:00",
                "2026-11-22T09:30:00+09:00",
                "2026-11-22T09:30:00.1234567Z",
                "2026-11-22T09:30Z",
                "2026-11-22",
                1795000000,
            ]
        )
    ],
    ("signers-empty", body_of(envelope(signers=[])), 0, "invalid_signers"),
    ("signers-too-many", body_of(envelope(signers=_NINE)), 9, "invalid_signers"),
    ("signers-not-list", body_of(envelope(signers=ALICE.public_hex)), 1, "invalid_signers"),
    (
        "signer-uppercase",
        body_of(envelope(signers=[ALICE.public_hex.upper()])),
        1,
        "invalid_public_key",
    ),
    ("signer-short", body_of(envelope(signers=[ALICE.public_hex[:-1]])), 1, "invalid_public_key"),
    ("signer-not-hex", body_of(envelope(signers=["z" * 64])), 1, "invalid_public_key"),
    ("signer-number", body_of(envelope(signers=[5])), 1, "invalid_public_key"),
    (
        "signer-duplicate",
        body_of(envelope(signers=[ALICE.public_hex, ALICE.public_hex])),
        2,
        "duplicate_signer",
    ),
    ("too-few-signatures", _GOOD, 0, "signature_count_mismatch"),
    ("too-many-signatures", _GOOD, 2, "signature_count_mismatch"),
    ("oversized", body_of(envelope(payload={"note": _BIG_NOTE})), 1, "body_too_large"),
]


@pytest.mark.parametrize(
    ("body", "nsigs", "code"),
    [(b, n, c) for _, b, n, c in _ENVELOPE_CASES],
    ids=[name for name, _, _, _ in _ENVELOPE_CASES],
)
def test_envelope_refused(body: bytes, nsigs: int, code: str) -> None:
    with pytest.raises(InvalidInput) as info:
        Transaction.from_body(body, [b"\x00" * 64] * nsigs)
    assert info.value.code == code, info.value.message
    # The wire path reports the same code.
    wire = {"body": base64.b64encode(body).decode(), "signatures": ["00" * 64] * nsigs}
    with pytest.raises(InvalidInput) as info:
        Transaction.from_wire(wire)
    assert info.value.code == code


def test_eight_signers_is_the_limit() -> None:
    keys = [SigningKey(bytes([i]) * 32) for i in range(20, 20 + MAX_SIGNERS)]
    tx = signed(envelope(signers=[k.public_hex for k in keys]), keys)
    tx.verify_signatures()
    assert len(tx.signers) == MAX_SIGNERS


def test_body_exactly_at_the_limit_is_accepted() -> None:
    base = len(body_of(envelope(payload={"note": ""})))
    body = body_of(envelope(payload={"note": "x" * (MAX_BODY_BYTES - base)}))
    assert len(body) == MAX_BODY_BYTES
    assert Transaction.from_body(body, [b"\0" * 64]).id == hashlib.sha256(body).hexdigest()


@pytest.mark.parametrize(
    "created",
    [
        "٢٠٢٦-١١-٢٢T09:30:00Z",  # Arabic-Indic digits match Python's Unicode \d
        "２０２６-11-22T09:30:00Z",  # fullwidth digits
        "2026-11-22T0९:30:00Z",  # a Devanagari nine
    ],
    ids=["arabic-indic", "fullwidth", "devanagari"],
)
def test_created_digits_are_ascii(created: str) -> None:
    # The documented format is ASCII digits; other languages' regexes (and every
    # ISO 8601 parser) refuse these, so accepting them would split implementations.
    with pytest.raises(InvalidInput) as info:
        Transaction.from_body(body_of(envelope(created=created)), [b"\0" * 64])
    assert info.value.code == "invalid_timestamp"


@pytest.mark.parametrize(
    "created", ["2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z", "2026-11-22T24:61:61Z"]
)
def test_created_is_a_real_utc_time(created: str) -> None:
    with pytest.raises(InvalidInput) as info:
        Transaction.from_body(body_of(envelope(created=created)), [b"\0" * 64])
    assert info.value.code == "invalid_timestamp"


# --- wire errors ----------------------------------------------------------------------------

_WIRE = {"body": base64.b64encode(_GOOD).decode(), "signatures": ["00" * 64]}

_WIRE_CASES: list[tuple[str, Any, str]] = [
    ("not-object", ["x"], "invalid_envelope"),
    ("unknown-field", {**_WIRE, "id": "x"}, "unknown_field"),
    ("no-body", {"signatures": []}, "missing_field"),
    ("body-not-string", {**_WIRE, "body": 5}, "missing_field"),
    ("base64-garbage", {**_WIRE, "body": "!!!!"}, "invalid_base64"),
    (
        "base64-urlsafe",
        {**_WIRE, "body": _WIRE["body"].replace("+", "-").replace("/", "_") + "-_"},
        "invalid_base64",
    ),
    (
        "base64-newline",
        {**_WIRE, "body": _WIRE["body"][:40] + "\n" + _WIRE["body"][40:]},
        "invalid_base64",
    ),
    (
        "base64-unpadded",
        {**_WIRE, "body": base64.b64encode(b"{}x").decode().rstrip("=") + "A"},
        "invalid_base64",
    ),
    ("base64-huge", {**_WIRE, "body": "A" * (MAX_BODY_BYTES * 2)}, "body_too_large"),
    ("signatures-not-list", {**_WIRE, "signatures": "00" * 64}, "invalid_signers"),
    ("signatures-nine", {**_WIRE, "signatures": ["00" * 64] * 9}, "invalid_signers"),
    ("signature-uppercase", {**_WIRE, "signatures": ["AB" * 64]}, "invalid_signature_encoding"),
    ("signature-short", {**_WIRE, "signatures": ["00" * 63]}, "invalid_signature_encoding"),
    (
        "signature-base64",
        {**_WIRE, "signatures": [base64.b64encode(b"\0" * 64).decode()]},
        "invalid_signature_encoding",
    ),
    ("no-signatures", {"body": _WIRE["body"], "signatures": []}, "signature_count_mismatch"),
]


@pytest.mark.parametrize(
    ("wire", "code"), [(w, c) for _, w, c in _WIRE_CASES], ids=[n for n, _, _ in _WIRE_CASES]
)
def test_wire_refused(wire: Any, code: str) -> None:
    with pytest.raises(InvalidInput) as info:
        Transaction.from_wire(wire)
    assert info.value.code == code, info.value.message


# --- signatures -----------------------------------------------------------------------------


def _bad(tx: Transaction) -> str:
    with pytest.raises(VerificationFailure) as info:
        tx.verify_signatures()
    assert info.value.code == "bad_signature"
    return str(info.value.detail["signer"])


def test_forged_signature_is_refused() -> None:
    env = envelope()
    body = body_of(env)
    forged = Transaction.from_body(body, [MALLORY.sign(body)])  # Mallory signs for Alice
    assert forged.bad_signers() == [ALICE.public_hex]
    assert _bad(forged) == ALICE.public_hex


def test_random_and_flipped_signatures_are_refused() -> None:
    tx = signed(envelope(), [ALICE])
    flipped = bytearray(tx.signatures[0])
    flipped[10] ^= 1
    for sig in (bytes(flipped), b"\x00" * 64, b"\xff" * 64):
        assert _bad(Transaction.from_body(tx.body, [sig])) == ALICE.public_hex


def test_missing_signature_of_a_co_signer() -> None:
    env = envelope(signers=[ALICE.public_hex, BOB.public_hex])
    body = body_of(env)
    with pytest.raises(InvalidInput) as info:
        Transaction.from_body(body, [ALICE.sign(body)])
    assert info.value.code == "signature_count_mismatch"
    # Padding the gap with a dummy does not help: the dummy does not verify.
    tx = Transaction.from_body(body, [ALICE.sign(body), b"\x00" * 64])
    assert tx.bad_signers() == [BOB.public_hex]


def test_extra_signature_is_refused() -> None:
    body = body_of(envelope())
    with pytest.raises(InvalidInput) as info:
        Transaction.from_body(body, [ALICE.sign(body), BOB.sign(body)])
    assert info.value.code == "signature_count_mismatch"
    with pytest.raises(InvalidInput) as info:
        Transaction.from_wire(
            {
                "body": base64.b64encode(body).decode(),
                "signatures": [ALICE.sign(body).hex(), BOB.sign(body).hex()],
            }
        )
    assert info.value.code == "signature_count_mismatch"


def test_signatures_follow_signers_order() -> None:
    body = body_of(envelope(signers=[ALICE.public_hex, BOB.public_hex]))
    good = Transaction.from_body(body, [ALICE.sign(body), BOB.sign(body)])
    good.verify_signatures()
    swapped = Transaction.from_body(body, [BOB.sign(body), ALICE.sign(body)])
    assert swapped.bad_signers() == [ALICE.public_hex, BOB.public_hex]
    with pytest.raises(VerificationFailure) as info:
        sign(body, [BOB, ALICE])
    assert info.value.code == "signer_key_mismatch"


def test_signature_over_another_chain_does_not_verify() -> None:
    other = signed(envelope(chain="busan-market"), [ALICE])
    body = body_of(envelope())  # same everything but the chain id
    moved = Transaction.from_body(body, other.signatures)
    assert _bad(moved) == ALICE.public_hex


def test_any_changed_byte_changes_the_id_and_breaks_the_signature() -> None:
    tx = signed(envelope(), [ALICE])
    altered = tx.body.replace(b"18500000", b"18500001")
    other = Transaction.from_body(altered, tx.signatures)
    assert other.id != tx.id
    _bad(other)


# --- docs/vectors/transactions.json -----------------------------------------------------------


def _vectors() -> list[dict[str, Any]]:
    data = json.loads(VECTORS.read_text(encoding="utf-8"))
    assert data["format"] == "carledger.tx-vectors.v1"
    vectors: list[dict[str, Any]] = data["vectors"]
    return vectors


def test_vector_file_has_the_promised_cases() -> None:
    vectors = _vectors()
    assert len(vectors) >= 4
    assert any(len(v["keys"]) > 1 for v in vectors), "no multi-signer vector"
    assert any(any("\uac00" <= ch <= "\ud7a3" for ch in v["canonical_body"]) for v in vectors), (
        "no vector with Korean text"
    )
    assert len({v["id"] for v in vectors}) == len(vectors)


@pytest.mark.parametrize("index", range(5))
def test_vector(index: int) -> None:
    vectors = _vectors()
    if index >= len(vectors):
        pytest.fail(f"expected at least {index + 1} vectors")
    v = vectors[index]
    body = bytes.fromhex(v["canonical_body_hex"])
    assert body == v["canonical_body"].encode("utf-8")
    # Canonical form, recomputed by the rfc8785 package from the envelope object.
    assert rfc8785.dumps(v["envelope"]) == body
    assert canonical.encode(v["envelope"]) == body
    assert canonical.decode(body) == v["envelope"]
    assert v["id"] == hashlib.sha256(body).hexdigest()
    assert v["envelope"]["signers"] == [k["public_key"] for k in v["keys"]]
    assert len(v["signatures"]) == len(v["keys"])
    for key, sig in zip(v["keys"], v["signatures"], strict=True):
        # Recomputed with pyca/cryptography (RFC 8032 signatures are deterministic).
        private = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(key["seed_hex"]))
        public = private.public_key().public_bytes_raw()
        assert public.hex() == key["public_key"]
        assert private.sign(body).hex() == sig
        private.public_key().verify(bytes.fromhex(sig), body)
        assert SigningKey(bytes.fromhex(key["seed_hex"])).public_hex == key["public_key"]
    assert v["wire"] == {
        "body": base64.b64encode(body).decode("ascii"),
        "signatures": v["signatures"],
    }
    tx = Transaction.from_wire(v["wire"])
    tx.verify_signatures()
    assert tx.id == v["id"]
    assert tx.envelope == v["envelope"]


def test_vectors_are_what_the_generator_makes() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make-vectors"), "--check"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
