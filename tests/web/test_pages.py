"""Every page renders in Korean and in English with no missing catalogue string.

In process (the node's FastAPI app over a demo chain, no browser, no socket): each
page of every kind, for every demo vehicle, in both languages, must answer with its
status, the right ``lang``, the security headers, and no ``⟦key⟧`` marker of a
string missing from a catalogue. The catalogues themselves must have the same keys
and the same parameters in both languages.
"""

from __future__ import annotations

import asyncio
import json
import re
import string
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from carledger.api.app import create_app
from carledger.chain import registry_for
from carledger.node.demo import create_demo
from carledger.node.home import Home
from carledger.node.service import Node
from carledger.vehicle.inspection_form import PANEL_CODES, PANELS
from carledger.web.flags import PARAMS, TOPICS
from carledger.web.i18n import LANGS, catalogue

MISSING = re.compile(r"⟦([^⟧]+)⟧")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    home = Home(tmp_path_factory.mktemp("pages") / "node")
    create_demo(home, vehicles=12, seed=7)
    ledger = home.open_ledger(None)
    app = create_app(Node(ledger))
    vins = sorted(
        {json.loads(tx.body)["payload"]["vin"] for tx in ledger.store.txs_range(0, 60)}  # type: ignore[attr-defined]
        - {None},
        key=lambda v: v[-6:],
    )
    try:
        yield {"app": app, "ledger": ledger, "vins": vins}
    finally:
        ledger.store.close()


def _get_all(app: Any, paths: list[str]) -> list[httpx.Response]:
    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://node.test") as c:
            return [await c.get(p) for p in paths]

    # In a thread of its own: a browser test's Playwright may own this thread's loop.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(run())).result()


def _pages(site: dict[str, Any]) -> list[tuple[str, int]]:
    ledger = site["ledger"]
    vin = site["vins"][0]
    tx = ledger.store.txs_range(0, 1)[0].id
    pages = [
        ("/", 200),
        ("/search?q=", 200),
        ("/search?q=nothing-like-this", 404),
        ("/markets/janganpyeong/listings", 200),
        ("/markets/gangseo/listings?make=Kia&min_man=100&max_man=", 200),
        ("/markets/nowhere/listings", 404),
        ("/explorer", 200),
        ("/explorer?before=3", 200),
        ("/explorer/blocks/0", 200),
        (f"/explorer/blocks/{ledger.height}", 200),
        ("/explorer/blocks/999999", 404),
        (f"/explorer/tx/{tx}", 200),
        ("/explorer/tx/00", 400),
        ("/status", 200),
        ("/members", 200),
        ("/console", 200),
        ("/console/sign", 200),
        ("/vehicles/NOT-A-VIN", 400),
        ("/vehicles/KMHLM41D0R9999999", 404),
        (f"/vehicles/{vin}?h=1&c={'a' * 64}", 200),
        (f"/vehicles/{vin}?h=1&c=bad", 200),
    ]
    pages += [(f"/vehicles/{v}", 200) for v in site["vins"]]
    return pages


@pytest.mark.parametrize("lang", LANGS)
def test_every_page_renders_without_missing_strings(site: dict[str, Any], lang: str) -> None:
    pages = _pages(site)
    paths = [f"{p}{'&' if '?' in p else '?'}lang={lang}" for p, _ in pages]
    for (path, status), response in zip(pages, _get_all(site["app"], paths), strict=True):
        assert response.status_code == status, (path, response.text[:500])
        assert response.headers["content-type"].startswith("text/html"), path
        html = response.text
        assert f'<html lang="{lang}">' in html, path
        assert MISSING.findall(html) == [], (path, MISSING.findall(html))
        assert "script-src 'self'" in response.headers["content-security-policy"]
        assert response.cookies.get("lang") == lang
        assert "http://" not in html.replace("http://node.test", ""), path  # no external URL


def test_catalogues_have_the_same_keys_and_parameters() -> None:
    ko, en = catalogue("ko"), catalogue("en")
    assert sorted(ko) == sorted(en)
    fields = string.Formatter()
    for key in ko:
        names_ko = {f for _, f, _, _ in fields.parse(ko[key]) if f}
        names_en = {f for _, f, _, _ in fields.parse(en[key]) if f}
        assert names_ko == names_en, key


def test_catalogues_cover_every_code_type_and_panel() -> None:
    ko = catalogue("ko")
    for code in PARAMS:
        assert f"flag.{code}" in ko and f"flag.{code}.detail" in ko, code
    for codes in TOPICS.values():
        for code in codes:
            assert f"flag.{code}" in ko, code
    for panel in PANELS:
        assert f"panel.{panel}" in ko, panel
    for code in PANEL_CODES:
        assert f"panelcode.{code}" in ko, code


def test_record_types_are_translated(site: dict[str, Any]) -> None:
    ko = catalogue("ko")
    registry = registry_for(site["ledger"].genesis)
    types = registry.types()
    assert types, "the contract registry lists its record types"
    assert [t for t in types if f"type.{t}" not in ko] == []


def test_static_assets_are_served_with_the_node(site: dict[str, Any]) -> None:
    paths = [
        "/static/css/site.css",
        "/static/js/canon.js",
        "/static/js/verify.js",
        "/static/js/vehicle.js",
        "/static/js/listings.js",
        "/static/js/keys.js",
        "/static/js/console.js",
        "/static/js/sign.js",
    ]
    for path, response in zip(paths, _get_all(site["app"], paths), strict=True):
        assert response.status_code == 200, path
        assert "https://" not in response.text, path  # every asset is the node's own
