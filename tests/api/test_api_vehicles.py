"""Vehicle, history and listing reads over HTTP on a demo chain: pagination and filters."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests_support import start_node

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    node = start_node(
        tmp_path_factory.mktemp("vehicles") / "demo", "--demo", "--demo-vehicles", "40"
    )
    try:
        yield node.url
    finally:
        node.stop()


def _pages(url: str, path: str, key: str, cursor: str, **params: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    after: Any = None
    while True:
        query = dict(params)
        if after is not None:
            query[cursor] = after
        page = httpx.get(f"{url}{path}", params=query).json()
        out.extend(page[key])
        after = page["next"]
        if after is None:
            return out


def test_vehicles_paginate_without_gaps(url: str) -> None:
    everything = httpx.get(f"{url}/v1/vehicles", params={"limit": 500}).json()["vehicles"]
    paged = _pages(url, "/v1/vehicles", "vehicles", "after", limit=7)
    assert [v["vin"] for v in paged] == [v["vin"] for v in everything]
    assert len(everything) >= 40


def test_history_paginates_and_normalises_the_vin(url: str) -> None:
    vehicles = httpx.get(f"{url}/v1/vehicles", params={"limit": 500}).json()["vehicles"]
    vin = max(vehicles, key=lambda v: v["records"])["vin"]
    full = httpx.get(f"{url}/v1/vehicles/{vin}/history", params={"limit": 500}).json()
    assert full["next"] is None and len(full["records"]) >= 5
    paged = _pages(url, f"/v1/vehicles/{vin}/history", "records", "after", limit=2)
    assert [r["id"] for r in paged] == [r["id"] for r in full["records"]]
    seqs = [r["seq"] for r in paged]
    assert seqs == sorted(seqs)
    lower = httpx.get(f"{url}/v1/vehicles/{vin.lower()}").json()
    assert lower["vin"] == vin and lower["records"] == len(full["records"])
    assert all(r["signers"][0]["org"] for r in full["records"])


def test_bad_and_unknown_vins(url: str) -> None:
    short = httpx.get(f"{url}/v1/vehicles/KMH123")
    assert short.status_code == 400 and short.json()["code"] == "invalid_vin_length"
    letters = httpx.get(f"{url}/v1/vehicles/KMHOO41DBFU000001")
    assert letters.status_code == 400 and letters.json()["code"] == "invalid_vin_character"
    unknown = httpx.get(f"{url}/v1/vehicles/KMHZZ41DBFU000001")
    assert unknown.status_code == 404 and unknown.json()["code"] == "unknown_vehicle"
    history = httpx.get(f"{url}/v1/vehicles/KMHZZ41DBFU000001/history")
    assert history.status_code == 404


def test_listings_filters_and_pages(url: str) -> None:
    listings = httpx.get(f"{url}/v1/listings", params={"limit": 500}).json()["listings"]
    assert listings, "the demo leaves cars for sale"
    paged = _pages(url, "/v1/listings", "listings", "after", limit=2)
    assert [x["key"] for x in paged] == [x["key"] for x in listings]
    market = listings[0]["market"]
    in_market = httpx.get(f"{url}/v1/listings", params={"market": market, "limit": 500}).json()
    assert in_market["listings"] and all(x["market"] == market for x in in_market["listings"])
    make = listings[0]["vehicle"]["make"]
    by_make = httpx.get(f"{url}/v1/listings", params={"make": make, "limit": 500}).json()
    assert all(x["vehicle"]["make"] == make for x in by_make["listings"])
    assert len(by_make["listings"]) == sum(x["vehicle"]["make"] == make for x in listings)
    prices = sorted(x["price"] for x in listings)
    low, high = prices[len(prices) // 4], prices[(3 * len(prices)) // 4]
    ranged = httpx.get(
        f"{url}/v1/listings", params={"min_price": low, "max_price": high, "limit": 500}
    ).json()["listings"]
    assert ranged and all(low <= x["price"] <= high for x in ranged)
    assert len(ranged) == sum(low <= p <= high for p in prices)
    bad = httpx.get(f"{url}/v1/listings", params={"min_price": -1})
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_request"
