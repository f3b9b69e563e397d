"""The demo generator: reproducible, and every record it makes is accepted in order."""

from __future__ import annotations

import datetime
import random
from typing import Any

from carledger.encoding import canonical
from carledger.ledger.genesis import Genesis
from carledger.vehicle import demo
from carledger.vehicle.facts import facts
from carledger.vehicle.fold import replay
from carledger.vehicle.history import history
from carledger.vehicle.vin import check_canonical

START = datetime.date(2026, 3, 2)


def _run(new_ledger: Any, vehicles: int, seed: int = 7) -> tuple[Any, list[demo.DemoTx]]:
    ledger = new_ledger(dealers=60)
    items = list(demo.transactions(ledger.network, random.Random(seed), vehicles=vehicles))
    for block_time, txs in demo.plan_blocks(items, max_txs=50):
        ledger.set_time(block_time)
        for tx in txs:
            ledger.submit(tx)
    return ledger, items


def test_demo_records_are_all_accepted_and_replay(new_ledger: Any) -> None:
    ledger, items = _run(new_ledger, 30)
    assert len(items) > 300
    for vin, records in ledger.records.items():
        state = replay(vin, records)
        assert canonical.encode(state) == canonical.encode(ledger.vehicle(vin))


def test_demo_cases_are_accepted_and_flagged(new_ledger: Any) -> None:
    ledger, _items = _run(new_ledger, 12, seed=11)
    vins = list(ledger.records)
    as_of = ledger.block_time

    def codes(i: int) -> set[str]:
        return {f["code"] for f in facts(ledger.vehicle(vins[i]), as_of)}

    assert {"odometer_rollback", "inspection_odometer_below_earlier"} <= codes(0)
    assert "car_not_present" in codes(1)
    assert "void_record" in codes(2)
    assert "inspection_missed_frame_damage" in codes(3)
    assert ledger.vehicle(vins[4])["status"] == "scrapped"
    assert {"scrapped", "flood", "total_loss"} <= codes(5)
    corrected = [v for v in ledger.vehicle(vins[6])["log"].values() if v["status"] == "corrected"]
    assert len(corrected) == 1 and "odometer_implausible" not in codes(6)
    assert "odometer_exception" in codes(7) and "odometer_rollback" not in codes(7)
    assert ledger.vehicle(vins[8])["thefts"][0]["recovered"] is not None
    ev = ledger.vehicle(vins[9])
    assert ev["battery"] and ev["parts"] and ev["recalls"]
    assert all(r["done"] for r in ev["recalls"].values())
    for vin in vins:
        statuses = {e["id"]: e["status"] for e in history(ledger.attributed[vin])}
        assert statuses == {k: v["status"] for k, v in ledger.vehicle(vin)["log"].items()}


def test_demo_genesis_is_valid_and_keys_follow_the_seed() -> None:
    network = demo.build_network("s", START)
    genesis = Genesis.from_dict(network.genesis)
    assert len([o for o in genesis.orgs if o["roles"] == ["dealer"]]) == 60
    assert {m["id"] for m in genesis.markets} == {"janganpyeong", "gangseo"}
    again = demo.build_network("s", START)
    assert network.key("dealer-07").public_hex == again.key("dealer-07").public_hex
    assert (
        network.key("dealer-07").public_hex
        != demo.build_network("t", START).key("dealer-07").public_hex
    )


def test_demo_vins_and_plates_are_valid_and_unique() -> None:
    network = demo.build_network("s", START, dealers=5)
    vins_seen: set[str] = set()
    for item in demo.transactions(network, random.Random(5), vehicles=40):
        payload = item.tx.payload
        if item.tx.type == "vehicle.register":
            check_canonical(payload["vin"])
            assert payload["vin"] not in vins_seen
            vins_seen.add(payload["vin"])
    assert any(v[0] in "12345" for v in vins_seen)  # some North-American VINs
    assert len(vins_seen) == 40


def test_plan_blocks_keeps_times_in_order() -> None:
    network = demo.build_network("s", START, dealers=5)
    items = list(demo.transactions(network, random.Random(5), vehicles=20))
    blocks = list(demo.plan_blocks(items, max_txs=10, max_seconds=600))
    assert sum(len(txs) for _, txs in blocks) == len(items)
    times = [t for t, _ in blocks]
    assert times == sorted(times)
    by_id = {i.tx.id: i.at for i in items}
    for block_time, txs in blocks:
        assert len(txs) <= 10
        assert all(by_id[tx.id] <= block_time for tx in txs)


def test_same_seed_same_transactions() -> None:
    network = demo.build_network("s", START, dealers=5)
    a = [d.tx.body for d in demo.transactions(network, random.Random(3), vehicles=12)]
    b = [d.tx.body for d in demo.transactions(network, random.Random(3), vehicles=12)]
    c = [d.tx.body for d in demo.transactions(network, random.Random(4), vehicles=12)]
    assert a == b
    assert a != c


def test_replaying_the_same_blocks_on_a_fresh_store_gives_the_same_state(new_ledger: Any) -> None:
    first, items = _run(new_ledger, 10, seed=3)
    second = new_ledger(dealers=60)
    for block_time, txs in demo.plan_blocks(items, max_txs=7):
        second.set_time(block_time)
        for tx in txs:
            second.submit(tx)
    assert second.state.data == first.state.data
