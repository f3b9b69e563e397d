"""The speed-ups of docs/performance.md give the same answers as the code they replace.

Each optimised function is checked against a naive reference kept here (the code
before the optimisation), with hypothesis, including values the fast paths refuse:
floats, huge integers, tuples, subclasses, astral keys, lone surrogates, deep nesting.
"""

from __future__ import annotations

import json
from typing import Any

import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from carledger.encoding import canonical
from carledger.errors import InvalidInput

SAFE = 2**53 - 1


def reference_is_fast(value: Any, depth: int) -> bool:
    """``canonical._is_fast`` as it was: one recursive call per value."""
    if depth > 64:
        return False
    if value is None or value is True or value is False or isinstance(value, str):
        return True
    if type(value) is int:
        return -SAFE <= value <= SAFE
    if isinstance(value, list):
        return all(reference_is_fast(v, depth + 1) for v in value)
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str) or (not k.isascii() and max(map(ord, k)) > 0xFFFF):
                return False
            if not reference_is_fast(v, depth + 1):
                return False
        return True
    return False


def reference_check_nesting(text: str, max_depth: int) -> None:
    """``canonical._check_nesting`` as it was: a scan character by character."""
    if text.count("[") + text.count("{") <= max_depth:
        return
    depth = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > max_depth:
                raise InvalidInput("too_deep", f"JSON nesting deeper than {max_depth} levels.")
        elif ch in "]}":
            depth -= 1


class Text(str):
    pass


class Obj(dict):  # type: ignore[type-arg]
    pass


_keys = st.sampled_from(["a", "b", "é", "\ue000", "\U0001f602", "", "Z"]) | st.text(max_size=3)
_leaves = (
    st.none()
    | st.booleans()
    | st.integers(-(2**60), 2**60)
    | st.sampled_from([SAFE, -SAFE, SAFE + 1, 1.5, float("nan"), (1, 2), b"x", Text("t")])
    | st.text(max_size=5)
)
_values = st.recursive(
    _leaves,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(_keys, inner, max_size=4)
        | st.dictionaries(_keys, inner, max_size=2).map(Obj)
    ),
    max_leaves=30,
)


def _nest(depth: int, leaf: Any) -> Any:
    for i in range(depth):
        leaf = [leaf] if i % 2 else {"k": leaf}
    return leaf


@settings(max_examples=1500)
@given(_values)
def test_is_fast_matches_the_reference(value: Any) -> None:
    assert canonical._is_fast(value, 0) == reference_is_fast(value, 0)


def test_is_fast_depth_limit_matches_the_reference() -> None:
    for depth in range(60, 70):
        for leaf in ("x", 1, [], {}, [1], None):
            value = _nest(depth, leaf)
            assert canonical._is_fast(value, 0) == reference_is_fast(value, 0), (depth, leaf)


def _outcome(fn: Any, *args: Any) -> Any:
    try:
        return ("ok", fn(*args))
    except InvalidInput as exc:
        return ("error", exc.code)


@settings(max_examples=1500)
@given(_values)
def test_encode_matches_the_standard_encoder_and_rfc8785(value: Any) -> None:
    got = _outcome(canonical.encode, value)
    if reference_is_fast(value, 0):
        try:
            expected = canonical._dumps(value).encode("utf-8")
        except UnicodeEncodeError:
            assert got == ("error", "invalid_string")
            return
        assert got == ("ok", expected)
        assert expected == rfc8785.dumps(value)


@settings(max_examples=1500)
@given(st.text(alphabet='[]{}"\\a,:\n', max_size=40), st.integers(0, 5))
def test_check_nesting_matches_the_reference(text: str, max_depth: int) -> None:
    assert _outcome(canonical._check_nesting, text, max_depth) == _outcome(
        reference_check_nesting, text, max_depth
    )


def _strict_canonical(data: bytes) -> Any:
    """What decode_canonical stands for: strict decode, then the bytes are canonical."""
    value = canonical.decode(data)
    if canonical.encode(value) != data:
        raise InvalidInput("not_canonical", "not canonical")
    return value


@settings(max_examples=1500)
@given(_values, st.booleans(), st.integers(0, 40), st.integers(0, 255))
def test_decode_canonical_accepts_only_what_strict_decoding_accepts(
    value: Any, sort: bool, at: int, byte: int
) -> None:
    try:
        text = json.dumps(value, sort_keys=sort, separators=(",", ":"), ensure_ascii=False)
        data = text.encode("utf-8")
    except (TypeError, ValueError, UnicodeEncodeError):
        return
    for candidate in (data, data[:at] + bytes([byte]) + data[at + 1 :]):
        fast = canonical.decode_canonical(candidate)
        strict = _outcome(_strict_canonical, candidate)
        if fast is not None:
            assert strict == ("ok", fast)
        elif strict[0] == "ok" and strict[1] is not None and not any(b >= 0xF0 for b in candidate):
            raise AssertionError(f"canonical bytes refused by the fast path: {candidate!r}")


@settings(max_examples=2000)
@given(_values)
def test_encode_matches_the_general_path(value: Any) -> None:
    """``encode``'s orjson-first path (strict integers, then a check by exact type) gives
    what the general path, every value's path before it, gives: bytes or error code."""
    assert _outcome(canonical.encode, value) == _outcome(canonical._encode_general, value)
    for wrapped in ([value], {"k": value}, {"\U0001f602": value, "a": [value, 1]}):
        assert _outcome(canonical.encode, wrapped) == _outcome(canonical._encode_general, wrapped)


def test_encode_depth_and_integer_limits_match_the_general_path() -> None:
    for depth in range(60, 70):
        for leaf in ("x", 1, [], {}, [1], None, SAFE + 1, -SAFE - 1, SAFE, 1.0, (1,)):
            value = _nest(depth, leaf)
            assert _outcome(canonical.encode, value) == _outcome(
                canonical._encode_general, value
            ), (depth, leaf)


def reference_plain_within(value: Any, max_depth: int, depth: int = 0) -> bool:
    """``canonical._plain_within`` as it was: integers range-checked in the walk."""
    kind = type(value)
    if kind is dict or kind is list:
        if depth >= max_depth:
            return False
        for v in value.values() if kind is dict else value:
            t = type(v)
            if t is str or t is bool or v is None:
                continue
            if t is int:
                if not -SAFE <= v <= SAFE:
                    return False
                continue
            if not reference_plain_within(v, max_depth, depth + 1):
                return False
        return True
    if kind is int:
        return bool(-SAFE <= value <= SAFE)
    return kind is str or kind is bool or value is None


def reference_decode_canonical(data: bytes, max_depth: int = canonical.MAX_DEPTH) -> Any:
    """``canonical.decode_canonical`` as it was (regular expression, walk, plain orjson)."""
    import re

    import orjson

    if re.search(rb"[\xf0-\xf4]", data) is not None:
        return None
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not reference_plain_within(value, max_depth):
        return None
    try:
        encoded = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        return None
    return value if encoded == data else None


@settings(max_examples=1500)
@given(_values, st.integers(0, 40), st.integers(0, 255), st.integers(1, 5))
def test_decode_canonical_matches_the_reference(
    value: Any, at: int, byte: int, max_depth: int
) -> None:
    try:
        data = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        raw = data.encode("utf-8")
    except (TypeError, ValueError, UnicodeEncodeError):
        return
    for candidate in (raw, raw[:at] + bytes([byte]) + raw[at + 1 :], b"9007199254740992"):
        for depth in (max_depth, canonical.MAX_DEPTH):
            got = canonical.decode_canonical(candidate, max_depth=depth)
            want = reference_decode_canonical(candidate, depth)
            assert (got is None) == (want is None)
            assert got == want
