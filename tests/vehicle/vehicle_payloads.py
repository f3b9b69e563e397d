"""Valid payloads for every vehicle record type, and a car that walks through its life.

The members are those of the demo network (``carledger.vehicle.demo.build_network``):
``registry-01``, ``operator-01``, ``gate-1``, ``dealer-01``, ``inspector-1``,
``repair-1``, ``samsung-fire-01``, ``hana-01``, ``police-01``, ``hmc-01``, ``lotte-01``,
``scrap-01``, ``citizen-01``.
"""

from __future__ import annotations

import hashlib
from typing import Any

from carledger.crypto.keys import SigningKey
from carledger.vehicle.vin import check_digit

MARKET = "janganpyeong"  # gated
OPEN_MARKET = "gangseo"  # no gates


def h(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


def vin_for(n: int, wmi: str = "KMH") -> str:
    body = f"{wmi}LM41D0R{n:07d}"
    return body[:8] + check_digit(body) + body[9:]


def plate_for(n: int) -> str:
    return f"{10 + n % 90}가{1000 + n % 9000}"


def register(date: str, fuel: str = "gasoline") -> dict[str, Any]:
    return {
        "make": "Hyundai",
        "model": "Avante",
        "model_year": 2024,
        "trim": "Inspiration",
        "color": "white",
        "fuel": fuel,
        "transmission": "automatic",
        "engine_code": "G4FL",
        "plant": "Ulsan",
        "manufactured_on": date,
        "country": "KR",
    }


def registration(
    date: str, plate: str | None = None, use: str | None = "private"
) -> dict[str, Any]:
    out: dict[str, Any] = {"date": date, "first_registered_on": date}
    if plate is not None:
        out["plate"] = plate
    if use is not None:
        out["use"] = use
    return out


def transfer(from_: str | None, to: str, date: str, km: int = 1000) -> dict[str, Any]:
    return {
        "from": from_,
        "to": to,
        "date": date,
        "price": 25_000_000,
        "odometer_km": km,
        "contract_hash": h("contract"),
    }


def scrap(date: str, km: int = 150_000) -> dict[str, Any]:
    return {"date": date, "odometer_km": km, "certificate_hash": h("scrap")}


def purchase(
    seller: str | None, date: str, km: int = 30_000, dealer: str = "dealer-01", market: str = MARKET
) -> dict[str, Any]:
    return {
        "dealer": dealer,
        "seller_ref": seller if seller is not None else f"ref:{h('seller')[:32]}",
        "date": date,
        "price": 18_000_000,
        "odometer_km": km,
        "market": market,
    }


PANELS_NONE: dict[str, list[str]] = {}


def inspection(
    date: str,
    km: int = 30_000,
    panels: dict[str, list[str]] | None = None,
    valid_until: str | None = None,
    fuel: str = "gasoline",
) -> dict[str, Any]:
    condition: dict[str, Any] = {
        "self_diagnosis": {"engine": "good", "transmission": "good"},
        "engine": {"idle": "good", "oil_leak_rocker_cover": "none", "oil_level": "ok"},
        "transmission": {"oil_leak": "none", "gear_shift": "good"},
        "drivetrain": {"cv_joint": "good"},
        "steering": {"pump": "good"},
        "brakes": {"booster": "good"},
        "electrical": {"generator": "good"},
        "fuel": {"leak": "none"},
    }
    if fuel in ("hybrid", "plugin_hybrid", "ev", "hydrogen"):
        condition["high_voltage"] = {
            "charging_port_insulation": "good",
            "battery_isolation": "good",
            "wiring": "good",
        }
    return {
        "date": date,
        "header": {
            "issue_no": "SI-2026-0001",
            "listing_no": "JP-1",
            "plate": "12가3456",
            "model_year": 2022,
            "first_registered_on": "2022-01-10",
            "valid_from": date,
            "valid_until": valid_until or "2026-06-30",
            "transmission": "automatic",
            "fuel": fuel,
            "engine_type": "G4FL",
            "warranty_type": "insurer",
            "base_price": 17_500_000,
        },
        "overall": {
            "odometer_km": km,
            "gauge_ok": True,
            "mileage_grade": "normal",
            "vin_marking": "good",
            "emissions": {"co_permille": 1, "hc_ppm": 40},
            "tuning": {"status": "none", "structural": False, "equipment": False},
            "special_history": [],
            "use_change": [],
            "repaint": [],
            "recall": "none",
        },
        "panels": PANELS_NONE if panels is None else panels,
        "condition": condition,
        "repair_needed": ["polish"],
        "kit": ["owner_manual", "jack"],
        "price_assessment": {"amount": 17_000_000, "basis": "Market data, March 2026"},
        "opinion": "Normal wear.",
        "inspector_id": "lic-0001",
        "assessor_id": "lic-0002",
        "photos": [h("front"), h("rear")],
    }


def listing_open(no: str = "JP-1", market: str = MARKET, price: int = 19_900_000) -> dict[str, Any]:
    return {"market": market, "listing_no": no, "price": price}


def sale(buyer_ref: str, date: str, km: int = 30_010) -> dict[str, Any]:
    return {
        "buyer_ref": buyer_ref,
        "date": date,
        "price": 19_500_000,
        "odometer_km": km,
        "contract_hash": h("sale"),
    }


def gate(time: str, market: str = MARKET, gate_id: str = "gate-1") -> dict[str, Any]:
    return {"market": market, "gate": gate_id, "time": time}


def reading(km: int, on: str, source: str = "service") -> dict[str, Any]:
    return {"km": km, "observed_on": on, "source": source}


def service(date: str, km: int = 31_000) -> dict[str, Any]:
    return {
        "date": date,
        "odometer_km": km,
        "items": [{"code": "OIL", "description": "Engine oil and filter"}],
        "parts": [{"part_no": "26300-35505", "maker": "Hyundai Mobis", "quantity": 1}],
        "total_cost": 120_000,
        "invoice_hash": h("invoice"),
    }


def accident(date: str, frame: bool = False) -> dict[str, Any]:
    return {
        "date": date,
        "own_damage": {"parts": 1_200_000, "labour": 400_000, "paint": 300_000},
        "other_party_damage": 500_000,
        "total_loss": False,
        "flood": False,
        "fire": False,
        "frame_damage": frame,
        "odometer_km": 25_000,
        "report_hash": h("report"),
    }


def claim(date: str, link: str | None = None, frame: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "date": date,
        "own_damage": {"parts": 1_200_000, "labour": 400_000, "paint": 300_000},
        "other_party_damage": 500_000,
        "total_loss": False,
        "flood": False,
        "fire": False,
        "frame_damage": frame,
        "claim_hash": h("claim"),
    }
    if link is not None:
        out["accident"] = link
    return out


def part(serial: str, date: str) -> dict[str, Any]:
    return {
        "serial": serial,
        "part_no": "37500-GI000",
        "maker": "SK On",
        "position": "traction battery",
        "date": date,
        "odometer_km": 40_000,
    }


def recall_issue(campaign: str, date: str, vehicles: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "campaign": campaign,
        "title": "ICCU software update",
        "date": date,
        "remedy": "Update the software.",
        "vehicles": vehicles,
    }


def recall_complete(campaign: str, date: str) -> dict[str, Any]:
    return {"campaign": campaign, "date": date, "odometer_km": 32_000}


def battery(date: str, soh: int = 950) -> dict[str, Any]:
    return {"date": date, "soh_permille": soh, "capacity_wh": 77_400, "cycles": 120}


def lien_register(lien_id: str, date: str, creditor: str = "hana-capital") -> dict[str, Any]:
    return {
        "lien_id": lien_id,
        "kind": "mortgage",
        "amount": 12_000_000,
        "creditor": creditor,
        "date": date,
        "document_hash": h("lien"),
    }


def lien_release(lien_id: str, date: str) -> dict[str, Any]:
    return {"lien_id": lien_id, "date": date}


def theft(date: str) -> dict[str, Any]:
    return {"date": date, "case_hash": h("case")}


def usage_start(date: str, firm: str = "lotte-rental") -> dict[str, Any]:
    return {"kind": "lease", "firm": firm, "date": date, "contract_hash": h("lease")}


def usage_end(date: str, firm: str = "lotte-rental") -> dict[str, Any]:
    return {"firm": firm, "date": date}


def correct(target: str, fields: dict[str, Any]) -> dict[str, Any]:
    return {"target": target, "fields": fields, "reason": "Typo in the original record."}


def dispute(target: str, disputant: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "target": target,
        "reason": "This record belongs to another car.",
        "evidence_hash": h("evidence"),
    }
    if disputant is not None:
        out["disputant"] = disputant
    return out


def resolve(dispute_id: str, outcome: str = "upheld") -> dict[str, Any]:
    return {"dispute": dispute_id, "outcome": outcome, "reason": "Checked with the insurer."}


def exception(date: str, old: int, new: int = 0) -> dict[str, Any]:
    return {
        "date": date,
        "old_km": old,
        "new_km": new,
        "reason": "cluster_replaced",
        "evidence_hash": h("cluster"),
    }


class Car:
    """A car on a test ledger; each step submits records with the right ``vin`` and ``prev``."""

    def __init__(self, ledger: Any, n: int = 1, wmi: str = "KMH") -> None:
        self.ledger = ledger
        self.n = n
        self.vin = vin_for(n, wmi)
        self.plate = plate_for(n)
        self.owner_key = ledger.network.derived_key("owner", n)
        self.owner_ref = f"key:{self.owner_key.public_hex}"
        self.buyer_key = ledger.network.derived_key("buyer", n)
        self.buyer_ref = f"key:{self.buyer_key.public_hex}"

    def keys(self, signers: tuple[str | SigningKey, ...]) -> list[SigningKey]:
        return [s if isinstance(s, SigningKey) else self.ledger.key(s) for s in signers]

    def full(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"vin": self.vin, "prev": self.ledger.head(self.vin), **body}

    def do(self, type_: str, body: dict[str, Any], *signers: str | SigningKey) -> str:
        return str(self.ledger.do(type_, self.full(body), *self.keys(signers)))

    def refused(self, type_: str, body: dict[str, Any], *signers: str | SigningKey) -> Any:
        return self.ledger.refused(type_, self.full(body), *self.keys(signers))

    @property
    def state(self) -> dict[str, Any]:
        return dict(self.ledger.vehicle(self.vin))

    @property
    def today(self) -> str:
        return str(self.ledger.today)

    # -- steps of a life --

    def born(self) -> Car:
        self.do("vehicle.register", register("2022-01-03"), "hmc-01")
        self.do("registration.record", registration("2022-01-10", self.plate), "registry-01")
        self.do(
            "ownership.transfer", transfer(None, self.owner_ref, "2022-01-10", 10), "registry-01"
        )
        return self

    def bought(self, dealer: str = "dealer-01", market: str = MARKET, km: int = 30_000) -> Car:
        owner = self.state["owners"][-1]["ref"] if self.ledger.head(self.vin) else None
        self.do("trade.purchase", purchase(owner, self.today, km, dealer, market), dealer)
        return self

    def entered(self, market: str = MARKET) -> Car:
        self.do("gate.entry", gate(self.ledger.block_time, market), "gate-1")
        return self

    def left(self, market: str = MARKET) -> Car:
        self.do("gate.exit", gate(self.ledger.block_time, market), "gate-2")
        return self

    def inspected(self, km: int = 30_000, **kw: Any) -> str:
        return self.do("inspection.record", inspection(self.today, km, **kw), "inspector-1")

    def listed(self, no: str = "JP-1", market: str = MARKET, dealer: str = "dealer-01") -> str:
        return self.do("listing.open", listing_open(no, market), dealer)

    def in_market(self, dealer: str = "dealer-01") -> Car:
        """Born, bought by ``dealer``, inside the gated market, inspected: ready to list."""
        self.born().bought(dealer).entered()
        self.inspected()
        return self
