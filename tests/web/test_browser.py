"""The web pages in Debian's Chromium against a real demo node, as a buyer and a dealer use them.

Look a car up and see its rollback warning, verify the report in the browser, tamper
with the report on its way to the browser and see the failure named, browse and
filter a market's listings, sign in to the dealer console, register a purchase, open
a listing, and register a sale that the buyer co-signs on a second browser.
Screenshots are written to ``artifacts/web/``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from web_support import MARKET, Api, inspection_payload, korean_today, now_utc

from carledger.vehicle import demo
from tests_support import NodeProcess

pytestmark = pytest.mark.integration


def wait_verified(page: Any, selector: str = "#browser-check") -> str:
    page.wait_for_selector(f"{selector}[data-result='ok'], {selector}[data-result='failed']")
    return str(page.get_attribute(selector, "data-result"))


def test_lookup_shows_rollback_and_verifies(
    demo_node: NodeProcess, api: Api, browser_factory: Callable[..., Any], artifacts: Path
) -> None:
    vin = api.vins()[0]  # demo vehicle 0: the dealer turned its odometer back
    page = browser_factory().new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(demo_node.url + "/")
    page.get_by_label("차대번호(VIN) 또는 차량번호").fill(vin.lower())
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/vehicles/{vin}")
    odometer = page.locator(".topic", has_text="주행거리")
    assert "critical" in (odometer.get_attribute("class") or "")
    assert "되돌림 의심" in odometer.inner_text()
    assert page.locator(".flag[data-code='odometer_rollback']").count() >= 1
    assert page.locator(".chart .pt.rollback").count() >= 1
    assert wait_verified(page) == "ok"
    check = page.locator("#browser-check").inner_text()
    assert "검증 완료" in check and "정확히 같습니다" in check
    page.screenshot(path=artifacts / "vehicle-rollback-ko.png", full_page=False)
    page.locator("#odo-h").scroll_into_view_if_needed()
    page.screenshot(path=artifacts / "vehicle-chart-ko.png")

    page.get_by_role("link", name="English").click()
    page.wait_for_url("**lang=en")
    assert "Verified history" in page.inner_text("#verified")
    assert wait_verified(page) == "ok"
    page.screenshot(path=artifacts / "vehicle-rollback-en.png")
    # The cookie keeps the language on the next page.
    page.goto(demo_node.url + "/explorer")
    assert "Block explorer" in page.inner_text("h1")
    assert not errors


def test_phone_screen_and_printed_report(
    demo_node: NodeProcess, api: Api, browser_factory: Callable[..., Any], artifacts: Path
) -> None:
    vin = api.vins()[0]
    report = api.get(f"/v1/vehicles/{vin}/report")
    from carledger.verifier import content_hash

    page = browser_factory(width=390, height=844, mobile=True).new_page()
    height = report["checkpoint"]["checkpoint"]["height"]
    page.goto(f"{demo_node.url}/vehicles/{vin}?h={height}&c={content_hash(report)}")
    assert wait_verified(page) == "ok"
    page.wait_for_selector("#printed[data-verified='same']")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways on a phone ({width}px)"
    page.screenshot(path=artifacts / "vehicle-phone-ko.png")
    # A QR code of an older checkpoint: the page says the ledger moved on.
    page.goto(f"{demo_node.url}/vehicles/{vin}?h={height - 1}&c={'0' * 64}")
    assert wait_verified(page) == "ok"
    page.wait_for_selector("#printed[data-verified='newer']")


def _mutate_body(report: dict[str, Any]) -> None:
    rec = report["records"][1]
    body = bytearray(base64.b64decode(rec["tx"]["body"]))
    i = body.index(b'"date":"') + len(b'"date":"') + 3  # the last digit of the year
    body[i] = ord("7") if body[i] != ord("7") else ord("8")
    rec["tx"]["body"] = base64.b64encode(bytes(body)).decode()


def _hide_rollback(report: dict[str, Any]) -> None:
    report["summary"]["flags"] = [
        f for f in report["summary"]["flags"] if f["code"] != "odometer_rollback"
    ]


def _drop_record(report: dict[str, Any]) -> None:
    del report["records"][-1]


@pytest.mark.parametrize(
    ("name", "mutate", "code"),
    [
        ("byte", _mutate_body, "record_signature_invalid"),
        ("summary", _hide_rollback, "summary_mismatch"),
        ("dropped", _drop_record, "report_incomplete"),
    ],
)
def test_tampered_report_fails_in_the_browser(
    demo_node: NodeProcess,
    api: Api,
    browser_factory: Callable[..., Any],
    artifacts: Path,
    name: str,
    mutate: Callable[[dict[str, Any]], None],
    code: str,
) -> None:
    vin = api.vins()[0]
    page = browser_factory().new_page()

    def tamper(route: Any) -> None:
        response = route.fetch()
        report = response.json()
        mutate(report)
        route.fulfill(response=response, body=json.dumps(report))

    page.route("**/v1/vehicles/*/report", tamper)
    page.goto(f"{demo_node.url}/vehicles/{vin}")
    assert wait_verified(page) == "failed"
    box = page.locator("#browser-check")
    assert box.get_attribute("data-code") == code
    text = box.inner_text()
    assert "검증 실패" in text and code in text
    assert "tampered" in (page.get_attribute("#verified", "class") or "")
    if name == "byte":
        page.screenshot(path=artifacts / "vehicle-tampered-ko.png")


# --- the market ---------------------------------------------------------------------


def _buy_and_prepare(api: Api, vin: str, dealer: str, inspect: bool = True) -> int:
    """Record a purchase by ``dealer`` (as its own back-office would), a gate entry, and
    an inspection; returns the odometer reading used."""
    view = api.get(f"/v1/vehicles/{vin}")
    km = int(view["summary"]["odometer"]["latest"]["km"]) + 100
    owner = [o for o in view["state"]["owners"] if not o.get("void")][-1]["ref"]
    api.vehicle_record(
        vin,
        "trade.purchase",
        {
            "dealer": dealer,
            "seller_ref": owner,
            "date": korean_today(),
            "price": 9_000_000,
            "odometer_km": km,
            "market": MARKET,
        },
        dealer,
    )
    gate(api, vin, "gate.entry")
    if inspect:
        api.vehicle_record(vin, "inspection.record", inspection_payload(km), "inspector-1")
    return km


def gate(api: Api, vin: str, kind: str) -> None:
    payload = {"market": MARKET, "gate": "gate-1", "time": now_utc()}
    api.vehicle_record(vin, kind, payload, "gate-1")


def _tradeable(api: Api, start: int) -> list[str]:
    """Demo cars (from index ``start``) a dealer can buy now: active, sold to a person."""
    out = []
    for vin in api.vins()[start:]:
        view = api.get(f"/v1/vehicles/{vin}")
        owners = [o for o in view["state"]["owners"] if not o.get("void")]
        if view["summary"]["status"] == "active" and owners and not owners[-1]["stock"]:
            out.append(vin)
    return out


@pytest.fixture(scope="module")
def listed(api: Api) -> dict[str, Any]:
    """Three cars listed in the gated market by dealer-02; one has left the market."""
    cars = _tradeable(api, 10)[:3]
    assert len(cars) == 3
    out: dict[str, Any] = {"vins": cars, "makes": {}}
    for i, vin in enumerate(cars):
        _buy_and_prepare(api, vin, "dealer-02")
        api.vehicle_record(
            vin,
            "listing.open",
            {"market": MARKET, "listing_no": f"WEB-{i}", "price": (10 + 5 * i) * 1_000_000},
            "dealer-02",
        )
        out["makes"][vin] = api.get(f"/v1/vehicles/{vin}")["state"]["birth"]["make"]
    gate(api, cars[2], "gate.exit")
    return out


def test_listings_filter_and_marks(
    demo_node: NodeProcess,
    api: Api,
    listed: dict[str, Any],
    browser_factory: Callable[..., Any],
    artifacts: Path,
) -> None:
    page = browser_factory().new_page()
    page.goto(f"{demo_node.url}/markets/{MARKET}/listings")
    items = page.locator("li.listing")
    assert items.count() >= 3
    for vin in listed["vins"]:
        mark = page.locator(f"li.listing[data-vin='{vin}'] [data-mark]")
        mark.wait_for(state="visible")
        page.wait_for_selector(f"li.listing[data-vin='{vin}'] [data-mark][data-result='ok']")
    away = page.locator(f"li.listing[data-vin='{listed['vins'][2]}']")
    assert "suspect" in (away.get_attribute("class") or "")
    assert "단지 밖" in away.inner_text()
    page.screenshot(path=artifacts / "listings-ko.png", full_page=True)

    # Filter by make: only that make's cars remain.
    make = listed["makes"][listed["vins"][0]]
    page.get_by_label("제조사").select_option(make)
    page.get_by_role("button", name="검색").click()
    page.wait_for_url("**make=*")
    shown = page.locator("li.listing")
    assert shown.count() >= 1
    for i in range(shown.count()):
        assert shown.nth(i).locator("h2").inner_text().startswith(make)
    # Filter by price (만원): 1,000-1,400 keeps only the 10,000,000 KRW listing.
    page.goto(f"{demo_node.url}/markets/{MARKET}/listings")
    page.get_by_label("최저 가격 (만원)").fill("1000")
    page.get_by_label("최고 가격 (만원)").fill("1400")
    page.get_by_role("button", name="검색").click()
    page.wait_for_url("**max_man=1400*")
    assert page.locator("li.listing").count() == 1
    assert page.locator(f"li.listing[data-vin='{listed['vins'][0]}']").count() == 1
    assert "1,000만원" in page.locator("li.listing .price").inner_text()


# --- the dealer console -------------------------------------------------------------


def _pem(network: demo.DemoNetwork, member: str) -> str:
    return network.key(member).to_pem(None).decode()


def _result(page: Any, selector: str) -> Any:
    """Wait for a console result box to show the node's answer (the page's CSP forbids
    evaluated strings, so waits are selectors)."""
    page.wait_for_selector(
        f"{selector}[data-outcome='committed'], {selector}[data-outcome='refused']"
    )
    return page.locator(selector)


def test_console_purchase_listing_and_sale(
    demo_node: NodeProcess,
    api: Api,
    network: demo.DemoNetwork,
    browser_factory: Callable[..., Any],
    artifacts: Path,
) -> None:
    vin, other = _tradeable(api, 16)[:2]
    owner = [o for o in api.get(f"/v1/vehicles/{vin}")["state"]["owners"] if not o.get("void")]
    km = int(api.get(f"/v1/vehicles/{vin}")["summary"]["odometer"]["latest"]["km"]) + 50
    dealer = browser_factory().new_page()
    errors: list[str] = []
    dealer.on("pageerror", lambda e: errors.append(str(e)))
    dealer.goto(f"{demo_node.url}/console")

    # Sign in with the dealer's PKCS#8 key; it never leaves the page.
    sent: list[str] = []
    dealer.on("request", lambda r: sent.append(r.post_data or ""))
    dealer.get_by_label("개인키 (PKCS#8 PEM) 또는 시드 (16진수 64자)").fill(
        _pem(network, "dealer-01")
    )
    dealer.get_by_role("button", name="로그인").click()
    dealer.wait_for_selector("#whoami:not([hidden])")
    assert "dealer-01" in dealer.inner_text("#who-name")

    # Register the purchase: checking the VIN fills in the recorded owner as seller.
    dealer.fill("#purchase-vin", vin)
    dealer.press("#purchase-vin", "Tab")
    expect(dealer.locator("#purchase-seller")).not_to_have_value("")
    assert dealer.input_value("#purchase-seller") == owner[-1]["ref"]
    dealer.select_option("#purchase-market", MARKET)
    dealer.fill("#purchase-price", "8500000")
    dealer.fill("#purchase-km", str(km))
    dealer.locator("#purchase-form").get_by_role("button").click()
    assert _result(dealer, "#purchase-form .result").get_attribute("data-outcome") == "committed"

    # Opening the listing before the car is inspected: refused with the contract's reason.
    dealer.fill("#open-vin", vin)
    dealer.select_option("#open-market", MARKET)
    dealer.fill("#open-no", "WEB-CONSOLE-1")
    dealer.fill("#open-price", "12900000")
    dealer.locator("#open-form").get_by_role("button").click()
    refused = _result(dealer, "#open-form .result")
    assert refused.get_attribute("data-code") == "no_valid_inspection"
    dealer.locator("section:has(#open-h)").screenshot(path=artifacts / "console-refused-ko.png")

    # The market's gate sees the car come in; the inspector records the inspection.
    gate(api, vin, "gate.entry")
    api.vehicle_record(vin, "inspection.record", inspection_payload(km), "inspector-2")
    dealer.fill("#inspections-vin", vin)
    dealer.locator("#inspections-form").get_by_role("button").click()
    dealer.wait_for_selector("#inspections-out .inspection-row.ok")

    dealer.locator("#open-form").get_by_role("button").click()
    dealer.wait_for_selector("#open-form .result[data-outcome='committed']")
    listing = api.get("/v1/listings", market=MARKET)["listings"]
    assert any(x["vin"] == vin and x["listing_no"] == "WEB-CONSOLE-1" for x in listing), (
        listing,
        api.get(f"/v1/vehicles/{vin}")["state"]["listing"],
    )

    # A car this dealer does not hold cannot be listed: the console says why.
    dealer.fill("#open-vin", other)
    dealer.fill("#open-no", "WEB-CONSOLE-2")
    dealer.locator("#open-form").get_by_role("button").click()
    dealer.wait_for_selector("#open-form .result[data-code='not_in_stock']")

    # The sale: the buyer makes a key on a second device, the dealer builds the signing
    # request, the buyer signs the same bytes, the dealer combines and submits.
    buyer = browser_factory().new_page()
    buyer.goto(f"{demo_node.url}/console/sign")
    buyer.get_by_role("button", name="새 키 만들기").click()
    buyer.wait_for_selector("#buyer-id:not([hidden])")
    buyer_ref = buyer.inner_text("#buyer-ref").strip()
    assert buyer_ref.startswith("key:")

    dealer.fill("#sale-vin", vin)
    dealer.fill("#sale-buyer", buyer_ref)
    dealer.fill("#sale-price", "12900000")
    dealer.fill("#sale-km", str(km + 3))
    dealer.locator("#sale-form").get_by_role("button").click()
    dealer.wait_for_selector("#sale-request:not([hidden])")
    request = dealer.input_value("#sale-request-text")

    buyer.fill("#request-text", request)
    buyer.get_by_role("button", name="요청 확인").click()
    buyer.wait_for_selector("#request-view:not([hidden])")
    assert vin in buyer.inner_text("#request-facts")
    buyer.get_by_role("button", name="확인했고 서명합니다").click()
    buyer.wait_for_selector("#response-box:not([hidden])")
    buyer.screenshot(path=artifacts / "console-buyer-sign-ko.png", full_page=True)
    answer = buyer.input_value("#response-text")

    dealer.fill("#sale-signature", answer)
    dealer.get_by_role("button", name="서명을 합쳐 제출").click()
    combined = _result(dealer, "#combine-result")
    assert combined.get_attribute("data-outcome") == "committed", combined.inner_text()
    dealer.locator("section:has(#sale-h)").screenshot(path=artifacts / "console-sale-ko.png")

    state = api.get(f"/v1/vehicles/{vin}")["state"]
    assert [o for o in state["owners"] if not o.get("void")][-1]["ref"] == buyer_ref
    assert state["listing"] is None
    # The private key was never sent: no request carried the PEM or its base64 body.
    pem_body = _pem(network, "dealer-01").splitlines()[1]
    assert not any(pem_body in body for body in sent)
    assert not errors


def test_operator_pages_and_keyboard(
    demo_node: NodeProcess, api: Api, browser_factory: Callable[..., Any], artifacts: Path
) -> None:
    page = browser_factory().new_page()
    page.goto(f"{demo_node.url}/status?lang=en")
    assert "the replicas agree" in page.inner_text("main")
    assert page.locator("table.data tbody tr").count() == 1  # the demo's one validator
    page.screenshot(path=artifacts / "status-en.png", full_page=True)

    page.goto(f"{demo_node.url}/explorer")
    page.locator("table.data tbody tr").first.locator("a").click()
    page.wait_for_url("**/explorer/blocks/*")
    assert page.locator("table.data tbody tr").count() >= 1
    page.screenshot(path=artifacts / "block-en.png", full_page=True)

    page.goto(f"{demo_node.url}/members")
    assert page.locator("details.org").count() >= 10
    page.goto(f"{demo_node.url}/")
    # Keyboard: the first Tab reaches the skip link, which moves focus to the content.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    # The search form works from the keyboard alone.
    page.get_by_label("VIN or plate number").focus()
    page.keyboard.type(api.vins()[1])
    page.keyboard.press("Enter")
    page.wait_for_url("**/vehicles/*")
    assert wait_verified(page) == "ok"
