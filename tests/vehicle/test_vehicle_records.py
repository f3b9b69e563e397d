"""Table-driven checks of every record type: a valid case, each missing required field,
each wrong type, enum and range, each role that must not sign. State rules are in
``test_vehicle_rules.py``."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import vehicle_payloads as P
from vehicle_payloads import Car

from carledger.crypto.keys import SigningKey
from carledger.errors import InvalidInput, LedgerError
from carledger.ledger.genesis import ROLES
from carledger.vehicle import contracts
from carledger.vehicle.records import (
    corrections,
    gate,
    liens,
    lifecycle,
    parts,
    recalls,
    theft,
    trading,
    use,
)
from carledger.vehicle.records import inspection as inspection_records
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

Signers = tuple[str | SigningKey, ...]
#: A case brings a fresh ledger to the point where the record is valid and returns
#: (a function giving the full payload at submission time, the signers).
Case = Callable[[Any], tuple[Callable[[], dict[str, Any]], Signers]]


def _vin_case(
    setup: Callable[[Car], None], body: Callable[[Car], dict[str, Any]], *signers: Any
) -> Case:
    def case(ledger: Any) -> tuple[Callable[[], dict[str, Any]], Signers]:
        car = Car(ledger)
        setup(car)
        resolved = tuple(s(car) if callable(s) else s for s in signers)
        return (lambda: car.full(body(car))), resolved

    return case


def _nothing(car: Car) -> None:
    del car


def _born(car: Car) -> None:
    car.born()


def _serviced(car: Car) -> None:
    car.born()
    car.do("service.record", P.service(car.today), "repair-1")


def _disputed(car: Car) -> None:
    _serviced(car)
    car.do("record.dispute", P.dispute(car.state["head"]), "dealer-01")


def _listed(car: Car) -> None:
    car.in_market()
    car.listed()


def _recalled(car: Car) -> None:
    car.born()
    body = P.recall_issue("HMC-1", car.today, [{"vin": car.vin, "prev": car.state["head"]}])
    car.ledger.do("recall.issue", body, car.ledger.key("hmc-01"))


def _installed(car: Car) -> None:
    car.born()
    car.do("part.install", P.part("BP0001", car.today), "repair-1")


def _with_lien(car: Car) -> None:
    car.born()
    car.do("lien.register", P.lien_register("L-1", car.today), "hana-01")


def _stolen(car: Car) -> None:
    car.born()
    car.do("theft.report", P.theft(car.today), "police-01")


def _leased(car: Car) -> None:
    car.born()
    car.do("usage.start", P.usage_start(car.today), "lotte-01")


def _in_market(car: Car) -> None:
    car.in_market()


def _registered(car: Car) -> None:
    car.do("vehicle.register", P.register("2022-01-03"), "hmc-01")


def _recall_case(ledger: Any) -> tuple[Callable[[], dict[str, Any]], Signers]:
    cars = [Car(ledger, 1).born(), Car(ledger, 2).born()]

    def payload() -> dict[str, Any]:
        vehicles = [{"vin": c.vin, "prev": ledger.head(c.vin)} for c in cars]
        return P.recall_issue("HMC-1", ledger.today, vehicles)

    return payload, ("hmc-01",)


def _market_case(ledger: Any) -> tuple[Callable[[], dict[str, Any]], Signers]:
    del ledger
    return (lambda: {"id": "dongdaemun", "name": "동대문 중고차시장", "gated": True}), (
        "operator-01",
    )


def _head(car: Car) -> str:
    return str(car.state["head"])


CASES: dict[str, Case] = {
    "vehicle.register": _vin_case(_nothing, lambda c: P.register("2022-01-03"), "hmc-01"),
    "registration.record": _vin_case(
        _registered, lambda c: P.registration(c.today, c.plate), "registry-01"
    ),
    "ownership.transfer": _vin_case(
        _born, lambda c: P.transfer(c.owner_ref, c.buyer_ref, c.today), "registry-01"
    ),
    "vehicle.scrap": _vin_case(_born, lambda c: P.scrap(c.today), "scrap-01"),
    "trade.purchase": _vin_case(_born, lambda c: P.purchase(c.owner_ref, c.today), "dealer-01"),
    "inspection.record": _vin_case(_born, lambda c: P.inspection(c.today), "inspector-1"),
    "listing.open": _vin_case(_in_market, lambda c: P.listing_open(), "dealer-01"),
    "listing.close": _vin_case(_listed, lambda c: {"reason": "withdrawn"}, "dealer-01"),
    "trade.sale": _vin_case(
        _in_market,
        lambda c: P.sale(c.buyer_ref, c.today),
        "dealer-01",
        lambda c: c.buyer_key,
    ),
    "gate.entry": _vin_case(_born, lambda c: P.gate(c.ledger.block_time), "gate-1"),
    "gate.exit": _vin_case(_born, lambda c: P.gate(c.ledger.block_time), "gate-1"),
    "odometer.reading": _vin_case(_born, lambda c: P.reading(40_000, c.today), "repair-1"),
    "service.record": _vin_case(_born, lambda c: P.service(c.today), "repair-1"),
    "accident.record": _vin_case(_born, lambda c: P.accident(c.today), "samsung-fire-01"),
    "insurance.claim": _vin_case(_born, lambda c: P.claim(c.today), "samsung-fire-01"),
    "battery.report": _vin_case(_born, lambda c: P.battery(c.today), "repair-1"),
    "usage.start": _vin_case(_born, lambda c: P.usage_start(c.today), "lotte-01"),
    "usage.end": _vin_case(_leased, lambda c: P.usage_end(c.today), "lotte-01"),
    "part.install": _vin_case(_born, lambda c: P.part("BP0001", c.today), "repair-1"),
    "part.remove": _vin_case(_installed, lambda c: P.part("BP0001", c.today), "repair-1"),
    "recall.issue": _recall_case,
    "recall.complete": _vin_case(
        _recalled, lambda c: P.recall_complete("HMC-1", c.today), "repair-1"
    ),
    "lien.register": _vin_case(_born, lambda c: P.lien_register("L-1", c.today), "hana-01"),
    "lien.release": _vin_case(_with_lien, lambda c: P.lien_release("L-1", c.today), "hana-01"),
    "theft.report": _vin_case(_born, lambda c: P.theft(c.today), "police-01"),
    "theft.recover": _vin_case(_stolen, lambda c: {"date": c.today}, "police-01"),
    "record.correct": _vin_case(
        _serviced, lambda c: P.correct(_head(c), {"odometer_km": 31_500}), "repair-1"
    ),
    "record.dispute": _vin_case(_serviced, lambda c: P.dispute(_head(c)), "dealer-01"),
    "dispute.resolve": _vin_case(_disputed, lambda c: P.resolve(_head(c)), "registry-01"),
    "odometer.exception": _vin_case(
        _born, lambda c: P.exception(c.today, 50_000), "repair-1", "registry-01"
    ),
    "market.register": _market_case,
}

REGISTRY = {c.type: c for c in contracts()}


def test_every_record_type_has_a_case() -> None:
    assert set(CASES) == set(REGISTRY)


def _setup(ledger: Any, type_: str) -> tuple[dict[str, Any], list[SigningKey]]:
    payload_of, signers = CASES[type_](ledger)
    keys = [s if isinstance(s, SigningKey) else ledger.key(s) for s in signers]
    return payload_of(), keys


@pytest.mark.parametrize("type_", sorted(CASES))
def test_valid_record_is_accepted(ledger: Any, type_: str) -> None:
    payload, keys = _setup(ledger, type_)
    tx = ledger.tx(type_, payload, *keys)
    effects = ledger.submit(tx)
    for vin in effects.vins:
        assert ledger.vehicle(vin)["head"] == tx.id
        assert ledger.vehicle(vin)["log"][tx.id]["status"] == "valid"
    if "vin" in payload:
        assert effects.vins == (payload["vin"],)


# --- schema: missing, unknown, wrong type / enum / range --------------------------


def _walk(
    spec: Any, value: Any, path: tuple[Any, ...]
) -> Iterator[tuple[tuple[Any, ...], Any, Any]]:
    """Every (path, spec, value) present in a valid payload, depth first."""
    if isinstance(spec, Nullable):
        if value is not None:
            yield from _walk(spec.spec, value, path)
        return
    if isinstance(spec, Obj):
        for name, sub in spec.fields.items():
            if name in value:
                yield (*path, name), sub, value[name]
                yield from _walk(sub, value[name], (*path, name))
    elif isinstance(spec, List) and value:
        item = spec.item
        yield (*path, 0), item, value[0]
        yield from _walk(item, value[0], (*path, 0))


def _dotted(path: tuple[Any, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _set(payload: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(payload)
    node: Any = out
    for part in path[:-1]:
        node = node[part]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return out


_DELETE = object()


def _wrong_values(spec: Any, value: Any) -> list[tuple[Any, str]]:
    if isinstance(spec, Nullable):
        spec = spec.spec
    if isinstance(spec, Str):
        return [(12345, "invalid_field"), ("", "invalid_field")]
    if isinstance(spec, Int):
        return [("1", "invalid_field"), (True, "invalid_field"), (spec.hi + 1, "out_of_range")]
    if isinstance(spec, Bool):
        return [("true", "invalid_field"), (1, "invalid_field")]
    if isinstance(spec, Enum):
        return [("no-such-value", "invalid_enum"), (3, "invalid_enum")]
    if isinstance(spec, Date):
        return [("2026-02-30", "invalid_date"), ("2026-3-1", "invalid_date")]
    if isinstance(spec, Time):
        return [("2026-03-02 09:00:00", "invalid_time")]
    if isinstance(spec, Hex):
        return [("XYZ", "invalid_field"), ("A" * 64, "invalid_field")]
    if isinstance(spec, List):
        return [("x", "invalid_field")]
    if isinstance(spec, Map | Obj):
        return [(["x"], "invalid_field")]
    if isinstance(spec, Custom):  # VINs
        return [
            (value.lower(), "vin_not_canonical"),
            (value[:16], "invalid_vin_length"),
            (value[:-1] + "O", "invalid_vin_character"),
            (7, "invalid_vin"),
        ]
    assert isinstance(spec, AnyValue)
    return []


def _schema(type_: str) -> Obj:
    validate = REGISTRY[type_].validate
    assert isinstance(validate, Obj)
    return validate


def _code(fn: Callable[[], None]) -> tuple[str, Any]:
    with pytest.raises(InvalidInput) as info:
        fn()
    return info.value.code, info.value.detail.get("field")


@pytest.mark.parametrize("type_", sorted(CASES))
def test_each_missing_required_field(ledger: Any, type_: str) -> None:
    payload, _ = _setup(ledger, type_)
    schema = _schema(type_)
    checked = 0
    for path, spec, _value in [((), schema, payload), *_walk(schema, payload, ())]:
        if not isinstance(spec, Obj):
            continue
        for name in spec.required:
            full = (*path, name)
            broken = _set(payload, full, _DELETE)
            assert _code(lambda b=broken: schema(b)) == ("missing_field", _dotted(full)), full
            checked += 1
    assert checked >= 2


@pytest.mark.parametrize("type_", sorted(CASES))
def test_each_wrong_type_enum_and_range(ledger: Any, type_: str) -> None:
    payload, _ = _setup(ledger, type_)
    schema = _schema(type_)
    schema(payload)
    checked = 0
    for path, spec, value in _walk(schema, payload, ()):
        for wrong, code in _wrong_values(spec, value):
            broken = _set(payload, path, wrong)
            assert _code(lambda b=broken: schema(b)) == (code, _dotted(path)), (path, wrong)
            checked += 1
    assert checked >= 4


@pytest.mark.parametrize("type_", sorted(CASES))
def test_unknown_fields_are_refused(ledger: Any, type_: str) -> None:
    payload, _ = _setup(ledger, type_)
    schema = _schema(type_)
    assert _code(lambda: schema({**payload, "zzz": 1})) == ("unknown_field", "zzz")
    for path, spec, value in _walk(schema, payload, ()):
        if isinstance(spec, Obj):
            broken = _set(payload, path, {**value, "zzz": 1})
            assert _code(lambda b=broken: schema(b)) == ("unknown_field", _dotted((*path, "zzz")))


def test_payload_check_is_fast(ledger: Any) -> None:
    import time

    payload, _ = _setup(ledger, "trade.purchase")
    schema = _schema("trade.purchase")
    rounds = 2000
    start = time.perf_counter()
    for _ in range(rounds):
        schema(payload)
    per_call = (time.perf_counter() - start) / rounds
    assert per_call < 100e-6  # measured about 10 µs; the bound only catches pathologies


# --- roles --------------------------------------------------------------------------

ALLOWED: dict[str, frozenset[str]] = {
    rec.type: frozenset(rec.roles + rec.cosign)
    for family in (
        lifecycle,
        trading,
        inspection_records,
        gate,
        use,
        parts,
        recalls,
        liens,
        theft,
        corrections,
    )
    for rec in family.RECORDS
}
ALLOWED["recall.issue"] = frozenset({"manufacturer"})
ALLOWED["market.register"] = frozenset({"market_operator"})
#: A role that may sign but not alone / not in this situation gets a more specific code.
SPECIFIC = {
    ("ownership.transfer", "manufacturer"): "owner_signature_required",
    ("odometer.exception", "registry"): "unauthorized_role",
    ("vehicle.scrap", "lender"): "unauthorized_role",
}


def _member_with_only(ledger: Any, role: str) -> SigningKey:
    if role == "admin":
        return ledger.network.admins["seoul-citizens"]
    member = next(m for m in ledger.network.with_role(role) if m.roles == (role,))
    return member.key


ROLE_CASES = [
    (type_, role)
    for type_ in sorted(CASES)
    for role in sorted(ROLES)
    if role not in ALLOWED[type_] or (type_, role) in SPECIFIC
    if ALLOWED[type_] != frozenset(ROLES)
]


@pytest.mark.parametrize(("type_", "role"), ROLE_CASES)
def test_each_role_that_must_not_sign(ledger: Any, type_: str, role: str) -> None:
    payload, keys = _setup(ledger, type_)
    wrong = _member_with_only(ledger, role)
    # The wrong member takes the place of the first (authoring) signer; parties such
    # as the buyer of a sale stay.
    signers = [wrong, *keys[1:]] if (type_, role) not in SPECIFIC else [wrong]
    if type_ == "odometer.exception" and role != "registry":
        signers = [wrong, keys[1]]
    error = ledger.refused(type_, payload, *signers)
    assert error.code == SPECIFIC.get((type_, role), "unauthorized_role"), error


def test_role_table_covers_every_type() -> None:
    covered = {t for t, _ in ROLE_CASES}
    assert covered == set(CASES) - {"record.correct", "record.dispute"}


def test_refusals_leave_no_trace(ledger: Any) -> None:
    payload, keys = _setup(ledger, "trade.purchase")
    error = ledger.refused("trade.purchase", {**payload, "market": "nowhere"}, *keys)
    assert isinstance(error, LedgerError)
    assert error.code == "unknown_market"
