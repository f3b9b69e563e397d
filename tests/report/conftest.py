"""One generated demo chain for all report tests (built once, read-only; copies for writers)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from report_support import SEED, VEHICLES, DemoChain, network

from carledger.node.demo import create_demo
from carledger.node.home import Home


@pytest.fixture(scope="session")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoChain]:
    base = tmp_path_factory.mktemp("report-chain")
    path = base / "node"
    create_demo(Home(path), vehicles=VEHICLES, seed=SEED)
    pristine = base / "pristine"
    shutil.copytree(path, pristine)
    home = Home(path)
    ledger = home.open_ledger(None)
    try:
        rows = ledger.store.state_prefix("vehicle/", limit=1000)  # type: ignore[attr-defined]
        demo_chain = DemoChain(
            path=path,
            pristine=pristine,
            genesis=home.genesis(),
            ledger=ledger,
            network=network(),
            vins=[key.split("/", 1)[1] for key, _ in rows],
        )
        for vin in demo_chain.vins:
            demo_chain.report(vin)
        yield demo_chain
    finally:
        ledger.store.close()
