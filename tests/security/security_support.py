"""Helpers of the security tests: a demo chain with its member keys, signing as any of
them, hypothesis strategies for JSON and for the record schemas, and figures."""

from __future__ import annotations

import datetime as dt
import json
import os
import string
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from carledger.crypto.keys import SigningKey
from carledger.ledger.tx import Transaction, build_body, sign
from carledger.node.demo import DEMO_START
from carledger.vehicle import demo
from carledger.vehicle.schema import (
    AnyValue,
    Bool,
    Custom,
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
)

SEED = 13


def report_figures(name: str, figures: dict[str, Any]) -> None:
    """Print the figures of a run; append them to ``$CARLEDGER_FIGURES`` when set."""
    line = json.dumps({"test": name, **figures}, sort_keys=True)
    print(f"FIGURES {line}")
    target = os.environ.get("CARLEDGER_FIGURES")
    if target:
        with Path(target).open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")


def network(seed: int = SEED) -> demo.DemoNetwork:
    return demo.build_network(str(seed), DEMO_START)


def now_utc() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def signed(
    chain: str,
    type_: str,
    payload: dict[str, Any],
    keys: list[SigningKey],
    *,
    nonce: str | None = None,
    created: str | None = None,
) -> Transaction:
    body = build_body(
        chain=chain,
        type=type_,
        payload=payload,
        signers=[k.public_hex for k in keys],
        created=created or now_utc(),
        nonce=nonce,
    )
    return sign(body, keys)


# --- JSON ---------------------------------------------------------------------------------

SAFE = 2**53 - 1
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-SAFE, SAFE)
    | st.integers()
    | st.text(max_size=30)
    | st.sampled_from(["", "null", "0", "KMHLM41D0R0000001", "ＫＭＨ", "\u0000", "\ud7ff"])
)
#: Any JSON value (integers beyond the safe range included: they must be refused).
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=25,
)


def mostly(valid: st.SearchStrategy[Any], one_in: int = 12) -> st.SearchStrategy[Any]:
    """``valid``, except once in ``one_in`` draws any JSON value instead."""
    return st.integers(0, one_in - 1).flatmap(lambda i: valid if i else json_values)


# --- values shaped by a record schema -------------------------------------------------------


def _text_for(spec: Str) -> st.SearchStrategy[str]:
    lo, hi = spec._min, spec._max
    if spec._re is not None:
        return st.from_regex(spec._re, fullmatch=True).filter(lambda s: lo <= len(s) <= hi)
    return st.text(min_size=lo, max_size=min(hi, 40))


class SchemaStrategies:
    """Hypothesis strategies for values that mostly pass a record schema.

    ``vins``, ``ids`` and ``keys`` supply what no random generator would hit but the
    rules care about: existing VINs, record ids and member keys; ``refs`` and
    ``words`` the party references, organisations, markets and numbers of the chain;
    ``today`` the block's date (record dates cluster around it). One field in ten
    is replaced by an arbitrary JSON value, so type confusion reaches every field.
    """

    def __init__(
        self,
        vins: list[str],
        ids: list[str],
        keys: list[str],
        refs: list[str],
        words: list[str],
        today: dt.date,
    ) -> None:
        self.vins = vins
        self.ids = ids
        self.keys = keys
        self.refs = refs
        self.words = words
        self.today = today

    def of(self, spec: Any) -> st.SearchStrategy[Any]:
        return mostly(self._valid(spec))

    def _valid(self, spec: Any) -> st.SearchStrategy[Any]:
        if isinstance(spec, Obj):
            required = {n: self.of(s) for n, s in spec.fields.items() if n in spec.required}
            optional = {n: self.of(s) for n, s in spec.fields.items() if n not in spec.required}
            return st.fixed_dictionaries(required, optional=optional)
        if isinstance(spec, Str):
            return _text_for(spec) | st.sampled_from(self.refs + self.words)
        if isinstance(spec, Int):
            edges = [spec.lo, spec.hi, spec.lo - 1, spec.hi + 1, 0]
            return st.integers(spec.lo, min(spec.hi, spec.lo + 10**7)) | st.sampled_from(edges)
        if isinstance(spec, Bool):
            return st.booleans()
        if isinstance(spec, Enum):
            return st.sampled_from(sorted(spec.values))
        if isinstance(spec, Date):
            recent = st.integers(-400, 2).map(lambda d: str(self.today + dt.timedelta(days=d)))
            return recent | st.dates(dt.date(1990, 1, 1), dt.date(2035, 12, 31)).map(str)
        if isinstance(spec, Time):
            return st.datetimes(dt.datetime(2020, 1, 1), dt.datetime(2030, 1, 1)).map(
                lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")
            )
        if isinstance(spec, Hex):
            return st.sampled_from(self.ids + self.keys) | st.text(
                "0123456789abcdef", min_size=64, max_size=64
            )
        if isinstance(spec, Nullable):
            return st.none() | self._valid(spec.spec)
        if isinstance(spec, Custom):  # VINs
            return st.sampled_from(self.vins) | st.text(
                string.digits + "ABCDEFGHJKLMNPRSTUVWXYZ", min_size=17, max_size=17
            )
        if isinstance(spec, List):
            return st.lists(self.of(spec.item), max_size=min(spec._max, 4))
        if isinstance(spec, Map):
            return st.dictionaries(
                self._valid(spec._keys), self.of(spec._values), max_size=min(spec._max, 4)
            )
        if isinstance(spec, AnyValue):
            return json_values
        raise AssertionError(f"no strategy for {spec!r}")


#: Generators (never validators) for the membership records, whose checks are code.
MEMBERSHIP_SHAPES: dict[str, Obj] = {}


def _membership_shapes() -> dict[str, Obj]:
    from carledger.ledger.genesis import ROLES
    from carledger.vehicle.schema import opt

    if not MEMBERSHIP_SHAPES:
        key, name = Hex(64), Str(1, 64, r"[a-z0-9][a-z0-9-]{0,20}")
        roles = List(Enum(*sorted(ROLES), "admin"), 3)
        MEMBERSHIP_SHAPES.update(
            {
                "member.enrol": Obj(
                    {
                        "key": key,
                        "org": name,
                        "member": name,
                        "roles": roles,
                        "valid_until": opt(Date()),
                    }
                ),
                "member.revoke": Obj({"key": key, "reason": Str(1, 40)}),
                "key.rotate": Obj({"old": key, "new": key}),
                "org.admit": Obj(
                    {"id": name, "name": Str(1, 40), "roles": roles, "admins": List(key, 3)}
                ),
                "validator.add": Obj({"id": name, "org": name, "key": key}),
                "validator.remove": Obj({"id": name}),
            }
        )
    return MEMBERSHIP_SHAPES


def payloads_for(type_: str, validate: Any, schemas: SchemaStrategies) -> Any:
    """A strategy for a record type's payload: shaped by its schema (or, for membership
    records, by :data:`MEMBERSHIP_SHAPES`), sometimes any JSON at all."""
    shape = validate if isinstance(validate, Obj) else _membership_shapes().get(type_)
    if shape is None:
        return json_values
    return mostly(schemas.of(shape))


#: Examples per property test are multiplied by this under ``--run-slow`` (conftest).
SCALE = 1
