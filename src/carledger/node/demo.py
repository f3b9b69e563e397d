"""``carledger up --demo``: a node's data directory filled with a demo market.

The demo is the generated Seoul used-car market of :mod:`carledger.vehicle.demo`,
committed block by block through the same :meth:`Ledger.apply` every block takes.
Its keys are derived from a public seed, so they are test fixtures, never secrets:
a few of them are written, unencrypted, to ``DIR/demo-keys/`` for the README tour.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path
from typing import Any

from carledger.ledger.block import Proposal, RawTx
from carledger.ledger.genesis import Genesis
from carledger.node.home import Home, write_key_file
from carledger.vehicle import demo

__all__ = ["DEMO_START", "create_demo"]

#: Demo history starts here; live blocks follow at the clock's time.
DEMO_START = dt.date(2026, 3, 2)
DEMO_VALIDATOR = "node-1"
TOUR_MEMBERS = ("dealer-01", "inspector-1", "repair-1", "registry-01", "gate-1", "operator-01")


def _with_cars_for_sale(items: list[demo.DemoTx]) -> list[demo.DemoTx]:
    """The longest prefix of the market's history that ends with cars still for sale.

    The generated history runs until every car is sold; a market page of a demo is
    more useful with about one car in eight still listed. A prefix of the stream is
    itself a valid history (records come in commit order).
    """
    listed: set[str] = set()
    cars = len({vin for item in items for vin in item.vins})
    target = max(1, cars // 8)
    cut = len(items)
    for i, item in enumerate(items):
        if item.tx.type == "listing.open":
            listed.update(item.vins)
        elif item.tx.type in ("listing.close", "trade.sale"):
            listed.difference_update(item.vins)
        if len(listed) >= target:
            cut = i + 1
    return items[:cut]


def _span_days(vehicles: int, seed: int) -> int:
    """How many days the demo history (cut as below) covers; the same for any start."""
    network = demo.build_network(str(seed), DEMO_START)
    rng = random.Random(seed)  # noqa: S311 (reproducible demo data, not secrets)
    items = _with_cars_for_sale(list(demo.transactions(network, rng, vehicles=vehicles)))
    if not items:
        return 0
    last = dt.date.fromisoformat(items[-1].at[:10])
    return (last - DEMO_START).days


def create_demo(
    home: Home, *, vehicles: int, seed: int, ending_by: dt.date | None = None
) -> dict[str, Any]:
    """Create ``home`` with a demo chain of ``vehicles`` vehicles; return counts.

    The history starts on :data:`DEMO_START`, or, with ``ending_by`` (today, for a
    demo people look at), early enough to end the day before it: then the cars for
    sale carry inspections that are still valid.
    """
    start = DEMO_START
    if ending_by is not None:
        start = ending_by - dt.timedelta(days=_span_days(vehicles, seed) + 1)
    network = demo.build_network(str(seed), start)
    doc = dict(network.genesis)
    # One node serves the demo, so it is the only validator and certifies alone.
    doc["validators"] = [v for v in doc["validators"] if v["id"] == DEMO_VALIDATOR]
    genesis = Genesis.from_dict(doc)
    home.initialise(genesis, DEMO_VALIDATOR, network.validators[DEMO_VALIDATOR], None)
    keys = home.path / "demo-keys"
    index = {}
    for name in TOUR_MEMBERS:
        member = network.members[name]
        write_key_file(keys / f"{name}.key", member.key, None)
        index[name] = {
            "org": member.org,
            "roles": list(member.roles),
            "public_key": member.key.public_hex,
            "key_file": f"{name}.key",
        }
    (keys / "members.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    # A crash while seeding leaves a directory to delete, never a node to trust,
    # so the demo is loaded without an fsync per block.
    ledger = home.open_ledger(None, durable=False)
    records = blocks = 0
    try:
        rng = random.Random(seed)  # noqa: S311 (reproducible demo data, not secrets)
        items = _with_cars_for_sale(list(demo.transactions(network, rng, vehicles=vehicles)))
        for when, txs in demo.plan_blocks(items):
            proposal = Proposal(
                ledger.height + 1,
                when,
                DEMO_VALIDATOR,
                tuple(RawTx(t.body, t.signatures) for t in txs),
            )
            ledger.apply(proposal)
            records += len(txs)
            blocks += 1
    finally:
        ledger.store.close()
    (home.path / "demo-keys" / "README.txt").write_text(
        "Keys of demo members, derived from a public seed: for trying carledger only.\n"
        "See the tour in README.md, e.g. carledger submit odometer.reading "
        "'{...}' --key demo-keys/repair-1.key\n",
        encoding="utf-8",
    )
    return {
        "vehicles": vehicles,
        "records": records,
        "blocks": blocks,
        "path": str(Path(home.path)),
    }
