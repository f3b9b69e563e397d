"""A node outvoted by a certified quorum serves no report as verified."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from carledger.api.app import create_app
from carledger.node.demo import create_demo
from carledger.node.home import Home
from carledger.node.service import Node


def test_a_diverged_node_refuses_reports(tmp_path: Path) -> None:
    home = Home(tmp_path / "demo")
    create_demo(home, vehicles=3, seed=5)
    ledger = home.open_ledger()
    node = Node(ledger)

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=create_app(node))
        async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
            vehicles = (await client.get("/v1/vehicles", params={"limit": 1})).json()
            vin = vehicles["vehicles"][0]["vin"]
            assert (await client.get(f"/v1/vehicles/{vin}/report")).status_code == 200
            node.diverged = True
            refused = await client.get(f"/v1/vehicles/{vin}/report")
            assert refused.status_code == 503
            assert refused.json()["code"] == "node_diverged"
            assert refused.headers["retry-after"] == "60"

    try:
        asyncio.run(scenario())
    finally:
        ledger.store.close()
