"""The declarative payload schema helper."""

from __future__ import annotations

import pytest

from carledger.errors import InvalidInput
from carledger.vehicle.schema import (
    Bool,
    Date,
    Enum,
    Hex,
    Int,
    List,
    Map,
    Nullable,
    Obj,
    Str,
    Time,
    opt,
)

SCHEMA = Obj(
    {
        "name": Str(1, 5, r"[a-z]+"),
        "count": Int(0, 10),
        "flag": opt(Bool()),
        "kind": Enum("a", "b"),
        "on": Date(),
        "at": opt(Time()),
        "hash": opt(Hex(8)),
        "tags": opt(List(Str(1, 3), 2, unique=True)),
        "map": opt(Map(Enum("x", "y"), Int(0, 1), 2)),
        "inner": opt(Obj({"a": Int(0, 1), "b": opt(Nullable(Str()))})),
    }
)
VALID = {"name": "abc", "count": 3, "kind": "a", "on": "2024-02-29"}


def _error(payload: object) -> tuple[str, object]:
    with pytest.raises(InvalidInput) as info:
        SCHEMA(payload)  # type: ignore[arg-type]
    return info.value.code, info.value.detail.get("field")


def test_valid_payloads() -> None:
    SCHEMA(VALID)
    SCHEMA(
        {
            **VALID,
            "flag": False,
            "at": "2026-03-02T09:30:00.123Z",
            "hash": "0123abcd",
            "tags": ["x", "yy"],
            "map": {"x": 1},
            "inner": {"a": 0, "b": None},
        }
    )


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"name": None}, ("invalid_field", "name")),
        ({"name": "ABC"}, ("invalid_field", "name")),
        ({"name": "abcdef"}, ("invalid_field", "name")),
        ({"count": 11}, ("out_of_range", "count")),
        ({"count": -1}, ("out_of_range", "count")),
        ({"count": 1.0}, ("invalid_field", "count")),
        ({"count": False}, ("invalid_field", "count")),
        ({"flag": 0}, ("invalid_field", "flag")),
        ({"kind": "c"}, ("invalid_enum", "kind")),
        ({"on": "2023-02-29"}, ("invalid_date", "on")),
        ({"on": "20240229"}, ("invalid_date", "on")),
        ({"at": "2026-03-02T24:00:00Z"}, ("invalid_time", "at")),
        ({"at": "2026-03-02T09:30:00+09:00"}, ("invalid_time", "at")),
        ({"hash": "0123ABCD"}, ("invalid_field", "hash")),
        ({"tags": ["x", "x"]}, ("invalid_field", "tags[1]")),
        ({"tags": ["x", "y", "z"]}, ("invalid_field", "tags")),
        ({"tags": ["xxxx"]}, ("invalid_field", "tags[0]")),
        ({"map": {"z": 1}}, ("invalid_enum", "map.z")),
        ({"map": {"x": 2}}, ("out_of_range", "map.x")),
        ({"inner": {"b": "x"}}, ("missing_field", "inner.a")),
        ({"inner": {"a": 0, "c": 1}}, ("unknown_field", "inner.c")),
        ({"inner": {"a": 0, "b": 5}}, ("invalid_field", "inner.b")),
        ({"zz": 1, "aa": 2}, ("unknown_field", "aa")),
    ],
)
def test_faults_name_their_field(change: dict[str, object], expected: tuple[str, str]) -> None:
    assert _error({**VALID, **change}) == expected


def test_missing_fields_come_first_in_name_order() -> None:
    assert _error({"zz": 1}) == ("missing_field", "count")
    assert _error("not an object") == ("invalid_field", "")


def test_check_fields_for_corrections() -> None:
    SCHEMA.check_fields({"count": 4}, "fields")
    with pytest.raises(InvalidInput) as info:
        SCHEMA.check_fields({"name": "abc"}, "fields", immutable=("name",))
    assert (info.value.code, info.value.detail["field"]) == ("field_not_correctable", "fields.name")
    with pytest.raises(InvalidInput) as info:
        SCHEMA.check_fields({"count": 99}, "fields")
    assert (info.value.code, info.value.detail["field"]) == ("out_of_range", "fields.count")
