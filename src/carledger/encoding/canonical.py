"""RFC 8785 (JSON Canonicalization Scheme) encoding and strict JSON decoding.

Signed data in carledger is JSON restricted to what every language encodes the same
way: objects with string keys, arrays, strings, integers in the IEEE 754 safe range
(|n| <= 2**53 - 1), ``true``, ``false`` and ``null``. Floats are refused everywhere:
amounts are KRW and distances km, both integers.

:func:`encode` is the general canonicaliser (it delegates to the ``rfc8785`` package
for anything outside the fast path). For plain values (see :func:`check_plain`) it
uses ``orjson`` with sorted keys, or the standard library's C encoder when orjson
refuses a value or is not installed; both produce the same bytes as RFC 8785 for such
values (strings are escaped minimally, keys sorted by code point, integers in the
safe range). ``tests/encoding`` cross-checks the paths with hypothesis and the RFC
vectors. orjson is about ten times faster on a vehicle's state, which every record
re-encodes (docs/performance.md).
"""

from __future__ import annotations

import json
import re
from typing import Any

import rfc8785

from carledger.errors import InvalidInput

try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - orjson is a dependency; this keeps a bare install working
    _orjson = None  # type: ignore[assignment]

__all__ = [
    "MAX_DEPTH",
    "MAX_SAFE_INTEGER",
    "check_plain",
    "decode",
    "decode_canonical",
    "encode",
]

MAX_SAFE_INTEGER = 2**53 - 1
MAX_DEPTH = 16

_STRICT_SORTED = 0 if _orjson is None else _orjson.OPT_SORT_KEYS | _orjson.OPT_STRICT_INTEGER

_dumps = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
).encode


def encode(value: Any) -> bytes:
    """Return the RFC 8785 canonical UTF-8 bytes of ``value``.

    Raises :class:`InvalidInput`: ``invalid_string`` for a lone surrogate,
    ``not_canonicalizable`` for other values JSON cannot carry exactly (NaN,
    infinities, integers beyond 2**53).

    Objects and arrays (a vehicle's state, every record) first try orjson with
    ``OPT_STRICT_INTEGER`` (it refuses integers beyond 2**53 - 1 itself), then
    :func:`_plain_tree` checks by exact type that nothing else was in them (keys
    outside the Basic Multilingual Plane show in the bytes); anything it does not
    admit takes :func:`_encode_general`, the path every value took before
    (``tests/bench/test_fast_paths.py`` keeps the two in step).
    """
    kind = type(value)
    if (kind is dict or kind is list) and _orjson is not None:
        try:
            data = _orjson.dumps(value, option=_STRICT_SORTED)
        except _orjson.JSONEncodeError:
            pass  # a big integer, a lone surrogate, a subclass key...: the general path says
        else:
            if not _has_astral(data) and _plain_tree(value):
                return data
    return _encode_general(value)


def _encode_general(value: Any) -> bytes:
    """:func:`encode` for any value: the fast check by walk, then orjson or the C encoder,
    else the ``rfc8785`` package."""
    if _is_fast(value, 0):
        if _orjson is not None:
            try:
                return _orjson.dumps(value, option=_orjson.OPT_SORT_KEYS)
            except _orjson.JSONEncodeError:
                pass  # a lone surrogate or a key of a str subclass: the C encoder says why
        try:
            return _dumps(value).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidInput(
                "invalid_string", "A string is not valid Unicode (lone surrogate)."
            ) from exc
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise InvalidInput(
            "not_canonicalizable", f"The value cannot be encoded as canonical JSON: {exc}"
        ) from exc


def _plain_tree(value: Any, depth: int = 0) -> bool:
    """For ``value``, an exact dict or list that orjson encoded with strict integers into
    bytes without characters beyond the Basic Multilingual Plane: whether
    :func:`_is_fast` holds, i.e. orjson's bytes are RFC 8785's.

    Containers and leaves must be of the exact types ``dict``, ``list``, ``str``,
    ``int``, ``bool`` and ``None`` (subclasses, floats, tuples and the like answer
    False: the general path handles them as before), non-empty containers no deeper
    than 63. Neither keys nor integers need a look here: orjson took the keys as
    strings and refused integers beyond 2**53 - 1, and the caller found no astral
    character in its output.
    """
    if depth >= 64:
        return not value
    for v in value.values() if type(value) is dict else value:
        t = type(v)
        if t in _LEAF_TYPES:
            continue
        if (t is dict or t is list) and _plain_tree(v, depth + 1):
            continue
        return False
    return True


_LEAF_TYPES = frozenset({str, int, bool, type(None)})


def _has_astral(data: bytes) -> bool:
    """Whether UTF-8 ``data`` holds a character beyond the Basic Multilingual Plane
    (a lead byte F0-F4; five ``memchr`` scans, far faster than a regular expression)."""
    return any(lead in data for lead in _ASTRAL_LEADS)


_ASTRAL_LEADS = (b"\xf0", b"\xf1", b"\xf2", b"\xf3", b"\xf4")


def _is_fast(value: Any, depth: int) -> bool:
    """True when the C encoder's output equals RFC 8785 for ``value``.

    That holds for strings, safe integers, booleans, null, and objects whose keys
    have no character outside the Basic Multilingual Plane (where UTF-16 and code
    point order differ), nested at most 64 levels. Every record re-encodes its
    vehicle's state (hundreds of values), so strings and integers, most of the
    leaves, are checked in the loop instead of by a call each.
    """
    if depth > 64:
        return False
    kind = type(value)
    if kind is dict or (kind is not list and isinstance(value, dict)):
        if value and depth >= 64:
            return False
        for k, v in value.items():
            if type(k) is not str and not isinstance(k, str):
                return False
            if not k.isascii() and max(map(ord, k)) > 0xFFFF:
                return False
            if type(v) is str:
                continue
            if type(v) is int:
                if not -MAX_SAFE_INTEGER <= v <= MAX_SAFE_INTEGER:
                    return False
                continue
            if not _is_fast(v, depth + 1):
                return False
        return True
    if kind is list or isinstance(value, list):
        if value and depth >= 64:
            return False
        for v in value:
            if type(v) is str:
                continue
            if type(v) is int:
                if not -MAX_SAFE_INTEGER <= v <= MAX_SAFE_INTEGER:
                    return False
                continue
            if not _is_fast(v, depth + 1):
                return False
        return True
    if value is None or value is True or value is False or isinstance(value, str):
        return True
    if kind is int:
        return bool(-MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER)
    return False


def decode_canonical(data: bytes, *, max_depth: int = MAX_DEPTH) -> Any | None:
    """The value of ``data`` when ``data`` is exactly :func:`encode` of a plain value; else None.

    The fast way to take in signed bodies, which must be canonical anyway: parse
    with orjson, check the value is plain JSON no deeper than ``max_depth``, and
    compare its canonical bytes with ``data``. ``None`` says nothing about why:
    :func:`decode` (strict, with its error codes) is then the way to find out.
    Bytes with characters beyond the Basic Multilingual Plane always take that way,
    and so does the document ``null`` (its value is None).
    """
    if _orjson is None or _has_astral(data):
        return None
    try:
        value = _orjson.loads(data)
    except _orjson.JSONDecodeError:
        return None
    if not _plain_within(value, max_depth):
        return None
    try:
        encoded = _orjson.dumps(value, option=_STRICT_SORTED)
    except _orjson.JSONEncodeError:
        return None  # an integer beyond 2**53 - 1, among others
    return value if encoded == data else None


def parse_checked(data: bytes) -> Any:
    """The value of ``data`` that :func:`decode_canonical` or :func:`decode` accepted before,
    in another process: parsed again, not checked again (orjson, about 4x cheaper than
    the check). Where orjson would refuse bytes the strict decoder takes (an escaped
    lone surrogate), the strict decoder parses them.
    """
    if _orjson is not None:
        try:
            return _orjson.loads(data)
        except _orjson.JSONDecodeError:
            pass
    return decode(data)


def _plain_within(value: Any, max_depth: int, depth: int = 0) -> bool:
    """Whether orjson's parse of a document is plain JSON of at most ``max_depth`` levels.

    Integers are not range-checked here: the caller re-encodes with orjson's strict
    integers, which refuses those beyond 2**53 - 1.
    """
    kind = type(value)
    if kind is dict or kind is list:
        if depth >= max_depth:
            return False
        for v in value.values() if kind is dict else value:
            t = type(v)
            if t in _LEAF_TYPES:
                continue
            if (t is dict or t is list) and _plain_within(v, max_depth, depth + 1):
                continue
            return False
        return True
    return kind in _LEAF_TYPES


def _no_float(text: str) -> Any:
    raise InvalidInput(
        "float_not_allowed",
        f"The number {text} is not an integer; amounts and distances are whole KRW and km.",
    )


def _no_constant(text: str) -> Any:
    raise InvalidInput("invalid_json", f"{text} is not a JSON value.")


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise InvalidInput("duplicate_key", f"The key {key!r} appears twice in one object.")
        obj[key] = value
    return obj


_decoder = json.JSONDecoder(
    object_pairs_hook=_unique_object, parse_float=_no_float, parse_constant=_no_constant
)


def decode(data: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse JSON strictly and return plain Python values.

    Refuses, each with its own code: bytes that are not UTF-8 (``invalid_utf8``),
    malformed JSON (``invalid_json``), duplicate keys (``duplicate_key``), any
    number with a fraction or exponent (``float_not_allowed``), integers beyond
    the safe range (``integer_out_of_range``), nesting deeper than ``max_depth``
    (``too_deep``) and lone surrogates (``invalid_string``).
    """
    if isinstance(data, bytes | bytearray | memoryview):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput("invalid_utf8", "The input is not valid UTF-8.") from exc
    else:
        text = data
    _check_nesting(text, max_depth)
    try:
        value = _decoder.decode(text)
    except InvalidInput:
        raise
    except (json.JSONDecodeError, RecursionError) as exc:
        raise InvalidInput("invalid_json", f"The input is not valid JSON: {exc}") from exc
    except ValueError as exc:
        # Python refuses to convert integers of more than 4,300 digits.
        raise InvalidInput(
            "integer_out_of_range", "An integer is far outside the safe range of +/-(2**53 - 1)."
        ) from exc
    check_plain(value, max_depth=max_depth)
    return value


# A JSON string as the bracket scan sees it: from a quote to the next unescaped quote,
# or to the end of the text when it never closes (with a dangling backslash).
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.S)
_BRACKETS = re.compile(r"[\[\]{}]")


def _check_nesting(text: str, max_depth: int) -> None:
    # A cheap scan before parsing, so hostile input such as 100,000 '[' never
    # reaches the recursive parser. Brackets inside strings only over-count, and a
    # document that is truly too deep is refused either way by check_plain.
    # Strings are cut out by a regular expression and only the brackets left are
    # walked: a request of a thousand transactions is scanned in C, not per character.
    if text.count("[") + text.count("{") <= max_depth:
        return
    depth = 0
    for ch in _BRACKETS.findall(_STRING.sub("", text)):
        if ch in "[{":
            depth += 1
            if depth > max_depth:
                raise InvalidInput("too_deep", f"JSON nesting deeper than {max_depth} levels.")
        else:
            depth -= 1


def check_plain(value: Any, *, max_depth: int = MAX_DEPTH, path: str = "$") -> None:
    """Check ``value`` is plain signed-data JSON; raise :class:`InvalidInput` if not."""
    stack: list[tuple[Any, str, int]] = [(value, path, 0)]
    while stack:
        item, where, depth = stack.pop()
        if depth >= max_depth and isinstance(item, list | dict):
            # A container at depth d is the (d+1)-th level of nesting, as decode counts.
            raise InvalidInput("too_deep", f"JSON nesting deeper than {max_depth} levels.")
        if item is None or item is True or item is False:
            continue
        if isinstance(item, str):
            if not _valid_unicode(item):
                raise InvalidInput(
                    "invalid_string", f"{where} is not valid Unicode (lone surrogate).", at=where
                )
            continue
        if type(item) is int:
            if not -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER:
                raise InvalidInput(
                    "integer_out_of_range",
                    f"{where} is outside the safe integer range of +/-(2**53 - 1).",
                    at=where,
                )
            continue
        if isinstance(item, float):
            raise InvalidInput(
                "float_not_allowed", f"{where} is a float; only integers are allowed.", at=where
            )
        if isinstance(item, list):
            stack.extend((v, f"{where}[{i}]", depth + 1) for i, v in enumerate(item))
            continue
        if isinstance(item, dict):
            for k, v in item.items():
                if not isinstance(k, str):
                    raise InvalidInput("invalid_json", f"{where} has a non-string key.", at=where)
                if not _valid_unicode(k):
                    raise InvalidInput(
                        "invalid_string", f"A key in {where} is not valid Unicode.", at=where
                    )
                stack.append((v, f"{where}.{k}", depth + 1))
            continue
        raise InvalidInput(
            "invalid_json", f"{where} has a value of type {type(item).__name__}.", at=where
        )


def _valid_unicode(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
