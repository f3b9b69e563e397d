"""Helpers of the web tests: a REST client signing with demo keys, valid payloads."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from typing import Any

import httpx

from carledger.crypto.keys import SigningKey
from carledger.ledger.tx import build_body, sign
from carledger.vehicle import demo

MARKET = "janganpyeong"


class Api:
    """A small client of the node's REST API that signs with demo member keys."""

    def __init__(self, url: str, network: demo.DemoNetwork) -> None:
        self.url = url
        self.network = network
        self.http = httpx.Client(base_url=url, timeout=30)
        self.count = 0
        self._vins: list[str] | None = None

    def get(self, path: str, **params: Any) -> Any:
        response = self.http.get(path, params=params)
        response.raise_for_status()
        return response.json()

    def head(self, vin: str) -> str | None:
        response = self.http.get(f"/v1/vehicles/{vin}")
        return None if response.status_code == 404 else response.json()["head"]

    def submit(self, type_: str, payload: dict[str, Any], *keys: SigningKey) -> dict[str, Any]:
        self.count += 1
        body = build_body(
            chain=self.network.chain,
            type=type_,
            payload=payload,
            signers=[k.public_hex for k in keys],
            created=now_utc(),
            nonce=f"web-test-{self.count}-{hashlib.sha256(os.urandom(8)).hexdigest()[:8]}",
        )
        tx = sign(body, list(keys))
        response = self.http.post("/v1/transactions", params={"wait": "true"}, json=tx.to_wire())
        doc: dict[str, Any] = response.json()
        assert response.status_code == 200, doc
        return doc

    def vehicle_record(self, vin: str, type_: str, payload: dict[str, Any], member: str) -> str:
        doc = self.submit(
            type_, {"vin": vin, "prev": self.head(vin), **payload}, self.network.key(member)
        )
        return str(doc["id"])

    def vins(self) -> list[str]:
        """Every VIN of the demo, in the order the vehicles arrived (index order)."""
        if self._vins is not None:
            return self._vins
        found: list[str] = []
        height = self.get("/v1/checkpoint")["checkpoint"]["height"]
        for h in range(1, height + 1):
            for tx in self.get(f"/v1/blocks/{h}")["transactions"]:
                if tx["type"] == "vehicle.register" and tx["code"] == "ok":
                    found.append(self.get(f"/v1/transactions/{tx['id']}")["payload"]["vin"])
        self._vins = sorted(found, key=lambda v: int(v[-6:]))
        return self._vins


def now_utc() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def korean_today(days: int = 0) -> str:
    moment = dt.datetime.now(dt.UTC) + dt.timedelta(hours=9, days=days)
    return moment.date().isoformat()


def inspection_payload(km: int, panels: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """A complete, valid performance inspection form dated today (Korean time)."""
    today = korean_today()
    return {
        "date": today,
        "header": {
            "issue_no": f"SI-WEB-{km}",
            "model_year": 2020,
            "valid_from": today,
            "valid_until": korean_today(120),
            "transmission": "automatic",
            "fuel": "gasoline",
            "engine_type": "G4FL",
            "warranty_type": "insurer",
            "base_price": 15_000_000,
        },
        "overall": {
            "odometer_km": km,
            "gauge_ok": True,
            "mileage_grade": "normal",
            "vin_marking": "good",
            "emissions": {"co_permille": 1},
            "tuning": {"status": "none", "structural": False, "equipment": False},
            "special_history": [],
            "use_change": [],
            "repaint": [],
            "recall": "none",
        },
        "panels": panels or {},
        "condition": {
            "self_diagnosis": {"engine": "good", "transmission": "good"},
            "engine": {"idle": "good", "oil_level": "ok"},
            "transmission": {"oil_leak": "none"},
            "drivetrain": {"cv_joint": "good"},
            "steering": {"pump": "good"},
            "brakes": {"booster": "good"},
            "electrical": {"generator": "good"},
            "high_voltage": {
                "charging_port_insulation": "good",
                "battery_isolation": "good",
                "wiring": "good",
            },
            "fuel": {"leak": "none"},
        },
        "repair_needed": [],
        "kit": ["owner_manual"],
        "opinion": "Checked for the web tests.",
        "inspector_id": "lic-web-1",
        "photos": [],
    }
