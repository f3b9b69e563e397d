"""RFC 8785 encoding and strict decoding (carledger.encoding.canonical).

Three kinds of evidence: the RFC author's own vectors (the general path, floats
included), hypothesis cross-checking ``encode`` against the ``rfc8785`` package on
plain signed-data JSON (which exercises the C-encoder fast path), and a table of
hostile inputs that ``decode`` must refuse with their own code in bounded time.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from carledger.encoding import canonical
from carledger.errors import InvalidInput

VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "vectors" / "rfc8785"
SAFE = 2**53 - 1


def _vector_names() -> list[str]:
    return sorted(p.name for p in (VECTORS / "input").glob("*.json"))


def test_rfc8785_vectors_are_present() -> None:
    # A missing vector folder must fail the suite, never silently skip it.
    assert (VECTORS / "input").is_dir(), f"RFC 8785 vectors not found at {VECTORS}"
    names = _vector_names()
    assert len(names) >= 6, names
    for name in names:
        assert (VECTORS / "output" / name).is_file(), f"no expected output for {name}"


@pytest.mark.parametrize("name", _vector_names() or ["<vectors missing>"])
def test_rfc8785_vector(name: str) -> None:
    source = VECTORS / "input" / name
    assert source.is_file(), f"RFC 8785 vectors not found at {VECTORS}"
    expected = (VECTORS / "output" / name).read_bytes()
    # The vectors contain floats, which decode() refuses by design: json.loads here.
    assert canonical.encode(json.loads(source.read_bytes())) == expected
    hexed = (VECTORS / "outhex" / name.replace(".json", ".txt")).read_text().split()
    assert bytes(int(h, 16) for h in hexed) == expected


# --- encode == rfc8785 on plain JSON --------------------------------------------------

# Everything except lone surrogates: control characters, the BMP's private-use and
# specials area (U+E000..U+FFFF, where UTF-16 and code-point order disagree with
# astral characters), and astral characters themselves.
_chars = st.characters(exclude_categories=("Cs",))
_tricky = st.sampled_from(
    ["\x00", "\x1f", "\x7f", "\u2028", "\ue000", "\uffff", "\U0001f602", "\U00010000", "a", "é"]
)
_text = st.text(st.one_of(_chars, _tricky), max_size=12)
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-SAFE, SAFE),
    st.sampled_from([0, -1, SAFE, -SAFE, 2**31, 10**15]),
    _text,
)
_plain = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(_text, inner, max_size=6)),
    max_leaves=40,
)


@settings(max_examples=400, deadline=None)
@given(_plain)
def test_encode_matches_rfc8785_on_plain_json(value: Any) -> None:
    assert canonical.encode(value) == rfc8785.dumps(value)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(_tricky, min_size=1, max_size=3), st.integers(0, 9), min_size=2))
def test_key_order_is_utf16_even_with_astral_keys(value: dict[str, int]) -> None:
    assert canonical.encode(value) == rfc8785.dumps(value)


def test_astral_key_sorts_before_high_bmp_key() -> None:
    # U+1F602 is D83D DE02 in UTF-16, which sorts before U+E000; code points say otherwise.
    assert canonical.encode({"\ue000": 1, "\U0001f602": 2}) == (
        '{"\U0001f602":2,"\ue000":1}'.encode()
    )


def test_control_characters_are_escaped_as_rfc8785_says() -> None:
    value = {"s": '\b\t\n\f\r\x00\x1f\x7f"\\/\u2028'}
    assert (
        canonical.encode(value) == b'{"s":"\\b\\t\\n\\f\\r\\u0000\\u001f\x7f\\"\\\\/\xe2\x80\xa8"}'
    )


def test_deep_values_take_the_general_path_with_the_same_result() -> None:
    value: Any = 1
    for _ in range(80):
        value = [value]
    assert canonical.encode(value) == rfc8785.dumps(value)


@pytest.mark.parametrize(
    "value",
    [float("nan"), float("inf"), 2**64, {"a": -(2**70)}],
    ids=["nan", "inf", "big-int", "big-negative-int"],
)
def test_encode_refuses_what_json_cannot_carry(value: Any) -> None:
    with pytest.raises(InvalidInput) as info:
        canonical.encode(value)
    assert info.value.code == "not_canonicalizable"


def test_encode_refuses_lone_surrogates() -> None:
    with pytest.raises(InvalidInput) as info:
        canonical.encode({"a": "x\ud800"})
    assert info.value.code in {"invalid_string", "not_canonicalizable"}


@settings(max_examples=200, deadline=None)
@given(_plain)
def test_decode_inverts_encode(value: Any) -> None:
    data = canonical.encode(value)
    # Hypothesis may nest deeper than the default limit; allow it here.
    assert canonical.decode(data, max_depth=64) == value


# --- strict decode ----------------------------------------------------------------------

_HOSTILE: list[tuple[str, bytes, str]] = [
    ("fraction", b'{"price":1.5}', "float_not_allowed"),
    ("zero-fraction", b"[1.0]", "float_not_allowed"),
    ("exponent", b"[1e5]", "float_not_allowed"),
    ("exponent-upper", b"[1E+2]", "float_not_allowed"),
    ("nan", b"[NaN]", "invalid_json"),
    ("infinity", b"[Infinity]", "invalid_json"),
    ("minus-infinity", b"[-Infinity]", "invalid_json"),
    ("duplicate-key", b'{"a":1,"a":2}', "duplicate_key"),
    ("duplicate-nested-key", b'{"x":{"k":1,"k":1}}', "duplicate_key"),
    ("invalid-utf8", b'{"a":"\xff"}', "invalid_utf8"),
    ("overlong-utf8", b'{"a":"\xc0\xaf"}', "invalid_utf8"),
    ("utf8-encoded-surrogate", b'{"a":"\xed\xa0\x80"}', "invalid_utf8"),
    ("escaped-lone-surrogate", b'{"a":"\\ud800"}', "invalid_string"),
    ("escaped-lone-low-surrogate-key", b'{"\\udc00":1}', "invalid_string"),
    ("int-above-safe", b"[9007199254740992]", "integer_out_of_range"),
    ("int-below-safe", b"[-9007199254740992]", "integer_out_of_range"),
    ("int-huge", b"[123456789012345678901234567890]", "integer_out_of_range"),
    ("deep-arrays", b"[" * 100_000, "too_deep"),
    ("deep-objects", b'{"a":' * 100_000, "too_deep"),
    ("deep-closed", b"[" * 17 + b"]" * 17, "too_deep"),
    ("trailing-garbage", b"{} x", "invalid_json"),
    ("truncated", b'{"a":', "invalid_json"),
    ("single-quotes", b"{'a':1}", "invalid_json"),
    ("bom", b'\xef\xbb\xbf{"a":1}', "invalid_json"),
]


@pytest.mark.parametrize(
    ("data", "code"), [(d, c) for _, d, c in _HOSTILE], ids=[n for n, _, _ in _HOSTILE]
)
def test_decode_refuses(data: bytes, code: str) -> None:
    start = time.perf_counter()
    with pytest.raises(InvalidInput) as info:
        canonical.decode(data)
    assert info.value.code == code, info.value.message
    assert time.perf_counter() - start < 1.0


def test_decode_refuses_integers_beyond_pythons_digit_limit() -> None:
    # 5,000 digits fit easily in a 64 KiB transaction body. Python refuses to parse
    # more than sys.get_int_max_str_digits() digits with a ValueError, which must
    # still come out as the documented InvalidInput, never as a foreign exception.
    digits = max(sys.get_int_max_str_digits(), 4300) + 700
    for text in ("[" + "9" * digits + "]", '{"km":-' + "1" * digits + "}"):
        with pytest.raises(InvalidInput) as info:
            canonical.decode(text.encode())
        assert info.value.code == "integer_out_of_range"


def test_decode_accepts_the_safe_integer_edges() -> None:
    assert canonical.decode(b"[9007199254740991,-9007199254740991,0]") == [SAFE, -SAFE, 0]


def test_decode_depth_limit_is_inclusive() -> None:
    assert canonical.decode(b"[" * 16 + b"]" * 16) is not None
    assert canonical.decode(b"[" * 3 + b"]" * 3, max_depth=3) == [[[]]]


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    text = '{"note":"' + "[{" * 500 + '"}'
    assert canonical.decode(text.encode()) == {"note": "[{" * 500}


def test_decode_accepts_str_and_returns_plain_values() -> None:
    value = canonical.decode('{"b":[true,false,null],"a":"\U0001f697 중고차"}')
    assert value == {"a": "\U0001f697 중고차", "b": [True, False, None]}


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ({"a": 1.0}, "float_not_allowed"),
        ({"a": 2**53}, "integer_out_of_range"),
        ({1: "a"}, "invalid_json"),
        ({"a": (1, 2)}, "invalid_json"),
        ({"a": "\udfff"}, "invalid_string"),
    ],
    ids=["float", "big-int", "int-key", "tuple", "lone-surrogate"],
)
def test_check_plain_refuses(value: Any, code: str) -> None:
    with pytest.raises(InvalidInput) as info:
        canonical.check_plain(value)
    assert info.value.code == code
