"""Declarative payload schemas: a table of fields per record type, checked fast.

A schema is a tree of small spec objects, each with ``check(value, path)``. It runs
on every submission (pre-check) and again at execution, so it does no more than
one pass over the payload and raises at the first fault, in a deterministic order
(missing fields, then unknown fields, then each field in the schema's order), so
every node reports the same code for the same bad payload.

Codes (all :class:`~carledger.errors.InvalidInput`, with ``field`` naming the
dotted path such as ``header.valid_until`` or ``items[2].code``):

- ``missing_field`` / ``unknown_field``: a required field is absent / a field the
  schema does not know is present (unknown fields are always refused);
- ``invalid_field``: wrong JSON type, string length or pattern, list length,
  duplicate list items, hex hash shape;
- ``invalid_enum``: a value outside the allowed set;
- ``out_of_range``: an integer outside its range (or a cross-field range);
- ``invalid_date`` / ``invalid_time``: not a real calendar date ``YYYY-MM-DD`` /
  UTC time ``YYYY-MM-DDTHH:MM:SS[.fff]Z``;
- anything a :class:`Custom` check raises (VINs: see :mod:`carledger.vehicle.vin`).

Usage::

    PURCHASE = Obj({"vin": VIN, "price": Int(0, MAX_KRW), "note": opt(Str(max_len=500))})
    PURCHASE(payload)            # raises InvalidInput or returns None
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from carledger.errors import InvalidInput

__all__ = [
    "AnyValue",
    "Bool",
    "Custom",
    "Date",
    "Enum",
    "Hex",
    "Int",
    "List",
    "Map",
    "Nullable",
    "Obj",
    "Spec",
    "Str",
    "Time",
    "opt",
]

_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIME_RE = re.compile(r"(\d{4}-\d{2}-\d{2})T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,3})?Z")


def _where(path: str) -> str:
    return f"payload.{path}" if path else "payload"


def _child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


class Spec(Protocol):
    """A checker for one JSON value; ``path`` is the dotted location for messages."""

    def check(self, value: Any, path: str) -> None: ...


class Str:
    """A string of ``min_len``-``max_len`` characters, optionally matching ``pattern``."""

    __slots__ = ("_hint", "_max", "_min", "_re")

    def __init__(
        self, min_len: int = 1, max_len: int = 200, pattern: str | None = None, hint: str = ""
    ) -> None:
        self._min, self._max = min_len, max_len
        self._re = re.compile(pattern) if pattern else None
        self._hint = hint

    def check(self, value: Any, path: str) -> None:
        if type(value) is not str:
            raise InvalidInput("invalid_field", f"{_where(path)} is a string.", field=path)
        if not self._min <= len(value) <= self._max:
            raise InvalidInput(
                "invalid_field",
                f"{_where(path)} has {self._min} to {self._max} characters.",
                field=path,
            )
        if self._re is not None and self._re.fullmatch(value) is None:
            hint = f" ({self._hint})" if self._hint else ""
            raise InvalidInput(
                "invalid_field", f"{_where(path)} is not well-formed{hint}.", field=path
            )


class Int:
    """An integer (never a boolean, never a float) in ``lo``..``hi`` inclusive."""

    __slots__ = ("hi", "lo")

    def __init__(self, lo: int, hi: int) -> None:
        self.lo, self.hi = lo, hi

    def check(self, value: Any, path: str) -> None:
        if type(value) is not int:
            raise InvalidInput("invalid_field", f"{_where(path)} is an integer.", field=path)
        if not self.lo <= value <= self.hi:
            raise InvalidInput(
                "out_of_range",
                f"{_where(path)} is between {self.lo:,} and {self.hi:,}; got {value:,}.",
                field=path,
            )


class Bool:
    __slots__ = ()

    def check(self, value: Any, path: str) -> None:
        if type(value) is not bool:
            raise InvalidInput("invalid_field", f"{_where(path)} is true or false.", field=path)


class Enum:
    """One of a fixed set of strings."""

    __slots__ = ("_text", "values")

    def __init__(self, *values: str) -> None:
        self.values = frozenset(values)
        self._text = "|".join(values)

    def check(self, value: Any, path: str) -> None:
        if type(value) is not str or value not in self.values:
            raise InvalidInput(
                "invalid_enum", f"{_where(path)} is one of {self._text}.", field=path
            )


class Date:
    """A real calendar date ``YYYY-MM-DD`` (``2025-02-30`` is refused)."""

    __slots__ = ()

    def check(self, value: Any, path: str) -> None:
        if type(value) is str and _DATE_RE.fullmatch(value):
            try:
                _dt.date.fromisoformat(value)
            except ValueError:
                pass
            else:
                return
        raise InvalidInput(
            "invalid_date", f"{_where(path)} is a date such as 2026-03-01.", field=path
        )


class Time:
    """A UTC time ``YYYY-MM-DDTHH:MM:SS[.fff]Z`` (the same shape as block times)."""

    __slots__ = ()

    def check(self, value: Any, path: str) -> None:
        if type(value) is str:
            m = _TIME_RE.fullmatch(value)
            if m is not None:
                try:
                    _dt.date.fromisoformat(m.group(1))
                except ValueError:
                    pass
                else:
                    return
        raise InvalidInput(
            "invalid_time",
            f"{_where(path)} is a UTC time such as 2026-03-01T09:30:00Z.",
            field=path,
        )


class Hex:
    """Lower-case hexadecimal of exactly ``length`` characters (a SHA-256 is 64)."""

    __slots__ = ("_len", "_re")

    def __init__(self, length: int = 64) -> None:
        self._len = length
        self._re = re.compile(f"[0-9a-f]{{{length}}}")

    def check(self, value: Any, path: str) -> None:
        if type(value) is not str or self._re.fullmatch(value) is None:
            raise InvalidInput(
                "invalid_field",
                f"{_where(path)} is {self._len} lower-case hexadecimal characters.",
                field=path,
            )


class Nullable:
    """``null`` or a value of ``spec``."""

    __slots__ = ("spec",)

    def __init__(self, spec: Spec) -> None:
        self.spec = spec

    def check(self, value: Any, path: str) -> None:
        if value is not None:
            self.spec.check(value, path)


class AnyValue:
    """Any JSON value (the envelope decoder already refused floats and deep nesting)."""

    __slots__ = ()

    def check(self, value: Any, path: str) -> None:
        del value, path


class Custom:
    """A function ``fn(value, path)`` that raises :class:`InvalidInput` (e.g. VINs)."""

    __slots__ = ("_fn",)

    def __init__(self, fn: Callable[[Any, str], object]) -> None:
        self._fn = fn

    def check(self, value: Any, path: str) -> None:
        self._fn(value, path)


class List:
    """A list of ``min_len``-``max_len`` items of ``item``; ``unique`` refuses repeats."""

    __slots__ = ("_max", "_min", "_unique", "item")

    def __init__(self, item: Spec, max_len: int, min_len: int = 0, unique: bool = False) -> None:
        self.item, self._min, self._max, self._unique = item, min_len, max_len, unique

    def check(self, value: Any, path: str) -> None:
        if type(value) is not list:
            raise InvalidInput("invalid_field", f"{_where(path)} is a list.", field=path)
        if not self._min <= len(value) <= self._max:
            raise InvalidInput(
                "invalid_field",
                f"{_where(path)} has {self._min} to {self._max} items; got {len(value)}.",
                field=path,
            )
        item = self.item
        for i, v in enumerate(value):
            item.check(v, f"{path}[{i}]")
        if self._unique:
            seen: set[Any] = set()
            for i, v in enumerate(value):
                marker = v if isinstance(v, str | int) else repr(v)
                if marker in seen:
                    raise InvalidInput(
                        "invalid_field",
                        f"{_where(path)} lists the same item twice.",
                        field=f"{path}[{i}]",
                    )
                seen.add(marker)


class Map:
    """An object whose keys are checked by ``keys`` (e.g. an :class:`Enum`) and values by
    ``values``; at most ``max_len`` entries."""

    __slots__ = ("_keys", "_max", "_min", "_values")

    def __init__(self, keys: Spec, values: Spec, max_len: int, min_len: int = 0) -> None:
        self._keys, self._values, self._max, self._min = keys, values, max_len, min_len

    def check(self, value: Any, path: str) -> None:
        if type(value) is not dict:
            raise InvalidInput("invalid_field", f"{_where(path)} is an object.", field=path)
        if not self._min <= len(value) <= self._max:
            raise InvalidInput(
                "invalid_field",
                f"{_where(path)} has {self._min} to {self._max} entries.",
                field=path,
            )
        for k, v in value.items():
            where = _child(path, k)
            self._keys.check(k, where)
            self._values.check(v, where)


class _Optional:
    __slots__ = ("spec",)

    def __init__(self, spec: Spec) -> None:
        self.spec = spec


def opt(spec: Spec) -> Any:
    """Mark a field of an :class:`Obj` as optional (absent is fine; ``null`` is not,
    unless the spec is :class:`Nullable`)."""
    return _Optional(spec)


Rule = Callable[[Mapping[str, Any], str], None]


class Obj:
    """An object with named fields; unknown fields are refused.

    ``fields`` maps a name to a spec, or to ``opt(spec)`` for an optional field.
    ``rule(value, path)`` runs last, for cross-field constraints (it may assume
    every present field is valid).
    """

    __slots__ = ("_order", "_required", "_rule", "fields")

    def __init__(self, fields: Mapping[str, Spec | _Optional], rule: Rule | None = None) -> None:
        self.fields: dict[str, Spec] = {}
        required: list[str] = []
        for name, spec in fields.items():
            if isinstance(spec, _Optional):
                self.fields[name] = spec.spec
            else:
                self.fields[name] = spec
                required.append(name)
        self._required = tuple(sorted(required))
        self._order = tuple(self.fields.items())
        self._rule = rule

    @property
    def required(self) -> tuple[str, ...]:
        return self._required

    def check(self, value: Any, path: str) -> None:
        if type(value) is not dict:
            raise InvalidInput("invalid_field", f"{_where(path)} is an object.", field=path)
        for name in self._required:
            if name not in value:
                where = _child(path, name)
                raise InvalidInput("missing_field", f"{_where(where)} is required.", field=where)
        fields = self.fields
        if len(value) > len(self._required):
            unknown = sorted(k for k in value if k not in fields)
            if unknown:
                where = _child(path, unknown[0])
                raise InvalidInput(
                    "unknown_field",
                    f"{_where(path)} has unknown field {unknown[0]!r}.",
                    field=where,
                )
        for name, spec in self._order:
            if name in value:
                spec.check(value[name], _child(path, name))
        if self._rule is not None:
            self._rule(value, path)

    def __call__(self, payload: Mapping[str, Any]) -> None:
        """Check a whole payload (the :attr:`Contract.validate` signature)."""
        self.check(payload, "")

    def check_fields(self, values: Any, path: str, immutable: Iterable[str] = ()) -> None:
        """Check a partial object (a correction's new field values) against this schema.

        Each key must be a field of the schema and not in ``immutable``; each value must
        pass its field's spec. Cross-field rules are not applied.
        """
        if type(values) is not dict or not values:
            raise InvalidInput(
                "invalid_field", f"{_where(path)} is a non-empty object.", field=path
            )
        frozen = set(immutable)
        for name in sorted(values):
            where = _child(path, name)
            if name not in self.fields:
                raise InvalidInput(
                    "unknown_field", f"{_where(where)} is not a field of the target.", field=where
                )
            if name in frozen:
                raise InvalidInput(
                    "field_not_correctable",
                    f"{name} identifies the record or its parties and cannot be corrected; "
                    "dispute the record instead.",
                    field=where,
                )
            self.fields[name].check(values[name], where)
