"""The used-car market flow through the Python client, against a demo node.

Usage: python docs/examples/dealer_flow.py NODE_URL DEMO_DATA_DIR

A dealer buys a car, a market gate records it entering, an inspector records the
official inspection, the dealer lists it and sells it to a buyer who signs the sale
with their own key on their own device. Then anyone reads the history and checks
the report offline against the chain's genesis.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import sys
from pathlib import Path

from carledger.client import Client, load_key, sign_record
from carledger.crypto.keys import SigningKey
from carledger.ledger.genesis import Genesis
from carledger.verifier import verify_report

MARKET = "janganpyeong"  # the demo's gated market complex


def main(url: str, data: Path) -> None:
    keys = data / "demo-keys"
    members = json.loads((keys / "members.json").read_text())

    def key(name: str) -> SigningKey:
        return load_key(keys / members[name]["key_file"])

    dealer, gate, inspector = key("dealer-01"), key("gate-1"), key("inspector-1")
    dealer_org = members["dealer-01"]["org"]
    kst = dt.datetime.now(dt.UTC) + dt.timedelta(hours=9)  # record dates are Korean dates
    today = kst.date().isoformat()
    vin = "KMHEX" + "".join(secrets.choice("ABCDEFGHJKLMNPRSTUVWXYZ0123456789") for _ in range(12))
    h = lambda label: secrets.token_hex(32)  # noqa: E731 - hashes of off-chain documents

    with Client(url, dealer) as as_dealer:
        bought = as_dealer.record("trade.purchase", {
            "vin": vin, "dealer": dealer_org, "seller_ref": f"ref:{secrets.token_hex(16)}",
            "date": today, "price": 15_500_000, "odometer_km": 61_200, "market": MARKET,
        })
        print("purchase committed at height", bought["height"])
    with Client(url, gate) as as_gate:
        as_gate.record("gate.entry", {
            "vin": vin, "market": MARKET, "gate": "gate-1",
            "time": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        })
    with Client(url, inspector) as as_inspector:
        as_inspector.record("inspection.record", {
            "vin": vin, "date": today,
            "header": {
                "issue_no": "SI-2026-7781", "listing_no": "JP-7781", "plate": "123가4567",
                "model_year": 2021, "first_registered_on": "2021-03-10", "valid_from": today,
                "valid_until": (kst.date() + dt.timedelta(days=30)).isoformat(),
                "transmission": "automatic", "fuel": "gasoline", "engine_type": "G4FL",
                "warranty_type": "insurer", "base_price": 15_000_000,
            },
            "overall": {
                "odometer_km": 61_200, "gauge_ok": True, "mileage_grade": "normal",
                "vin_marking": "good", "emissions": {"co_permille": 1, "hc_ppm": 40},
                "tuning": {"status": "none", "structural": False, "equipment": False},
                "special_history": [], "use_change": [], "repaint": [], "recall": "none",
            },
            "panels": {"front_fender_left": ["X"]},   # a replaced fender: a simple repair
            "condition": {
                "self_diagnosis": {"engine": "good", "transmission": "good"},
                "engine": {"idle": "good", "oil_leak_rocker_cover": "none", "oil_level": "ok"},
                "transmission": {"oil_leak": "none", "gear_shift": "good"},
                "drivetrain": {"cv_joint": "good"}, "steering": {"pump": "good"},
                "brakes": {"booster": "good"}, "electrical": {"generator": "good"},
                "fuel": {"leak": "none"},
            },
            "repair_needed": [], "kit": ["owner_manual"],
            "price_assessment": {"amount": 15_200_000, "basis": "market data"},
            "opinion": "Front left fender replaced; no frame damage.",
            "inspector_id": "lic-0001", "assessor_id": "lic-0002", "photos": [h("photo")],
        })
    with Client(url, dealer) as as_dealer:
        as_dealer.record("listing.open", {
            "vin": vin, "market": MARKET, "listing_no": "JP-7781", "price": 16_900_000,
        })
        # The sale is signed by the dealer here and by the buyer on their own device:
        # both sign the same body bytes, then the signatures are combined.
        buyer = SigningKey.generate()
        payload = {
            "vin": vin, "prev": as_dealer.head(vin), "buyer_ref": f"key:{buyer.public_hex}",
            "date": today, "price": 16_500_000, "odometer_km": 61_230,
            "contract_hash": h("contract"),
        }
        body, _ = sign_record(as_dealer.chain, "trade.sale", payload, [dealer],
                              extra_signers=[buyer.public_hex])
        sale = Client.combine(body, [dealer.sign(body), buyer.sign(body)])
        sold = as_dealer.submit(sale)
        print("sale committed at height", sold["height"], sold["code"])

        for entry in as_dealer.history(vin):
            who = ", ".join(f"{s['org']}/{s['member']}" for s in entry["signers"] if s["org"])
            print(f"  {entry['type']:<18} by {who or 'the buyer'}")
        report = as_dealer.report(vin)
    result = verify_report(report, Genesis.load(data / "genesis.json"))
    print(f"report verified offline: {result.records} records, complete as of height "
          f"{result.height}")


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
