"""Used-car trading: purchase (매입), listing (매물), sale (매도).

- ``trade.purchase`` (dealer): the dealer ``dealer`` (the signer's organisation,
  ``dealer_mismatch`` otherwise) now holds the car as stock (상품용): an ownership
  change. ``market`` must exist (``unknown_market``). When the ledger knows the
  owner, ``seller_ref`` must be that owner (``seller_not_owner``); a dealer cannot
  buy its own stock (``already_in_stock``). Refused while stolen or listed.
- ``listing.open`` (dealer): refused unless the signer's dealer holds the car
  (``not_in_stock``: the last ownership record is its purchase), a valid
  inspection covers the listing date, i.e. the block's local date
  (``no_valid_inspection``), the car is not stolen, not listed already
  (``already_listed``), the listing number is free in the market
  (``listing_no_taken``) and, where the market has gates, the car is inside: its
  last gate record is an entry at this market (``car_not_in_market``).
- ``listing.close`` (the listing's dealer or the market's operator,
  ``not_listing_party`` otherwise): reason sold, withdrawn or expired
  (``not_listed`` when nothing is listed).
- ``trade.sale`` (the holding dealer and the buyer): closes the listing as sold, an
  ownership change. The buyer signs with the key of a ``key:`` reference or as a
  member of an ``org:`` reference (``buyer_signature_required``).
"""

from __future__ import annotations

from carledger.errors import Conflict, RuleViolation, Unauthorized
from carledger.vehicle import queries
from carledger.vehicle.fields import (
    DATE,
    HASH,
    ID,
    KM,
    KRW,
    LISTING_NO,
    MAX_KRW,
    ORG,
    PREV,
    REF,
    VIN,
)
from carledger.vehicle.indexes import listing_key
from carledger.vehicle.records.common import (
    Ctx,
    VinRecord,
    party_signed,
    refs_parties,
    require_market,
    require_not_listed,
    require_not_stolen,
)
from carledger.vehicle.schema import Enum, Int, Obj, opt

__all__ = ["RECORDS"]

PURCHASE = Obj(
    {
        "vin": VIN,
        "prev": PREV,
        "dealer": ORG,
        "seller_ref": REF,
        "date": DATE,
        "price": KRW,
        "odometer_km": KM,
        "market": ID,
        "contract_hash": opt(HASH),
    }
)


def _holding_dealer(ctx: Ctx) -> str:
    """The signing dealer whose organisation holds the car as stock (``not_in_stock``)."""
    held = queries.stock(ctx.state)
    orgs = {s.org for s in ctx.signers_with("dealer")}
    if held is None or held["ref"][4:] not in orgs:
        raise RuleViolation(
            "not_in_stock",
            f"{ctx.vin} is not stock of the signing dealer: its last ownership record is "
            "not that dealer's purchase.",
        )
    return str(held["ref"][4:])


def _purchase(ctx: Ctx) -> None:
    p = ctx.payload
    if p["dealer"] not in {s.org for s in ctx.signers_with("dealer")}:
        raise Unauthorized(
            "dealer_mismatch",
            f"trade.purchase for dealer {p['dealer']} is signed by a dealer member of that "
            "organisation.",
        )
    require_market(ctx.view, p["market"])
    require_not_stolen(ctx)
    require_not_listed(ctx)
    owner = queries.current_owner(ctx.state)
    if owner == f"org:{p['dealer']}":
        raise Conflict("already_in_stock", f"{ctx.vin} is already stock of {p['dealer']}.")
    if owner is not None and p["seller_ref"] != owner:
        raise RuleViolation(
            "seller_not_owner",
            f"seller_ref is not the recorded owner of {ctx.vin}.",
        )


LISTING_OPEN = Obj(
    {
        "vin": VIN,
        "prev": PREV,
        "market": ID,
        "listing_no": LISTING_NO,
        "price": Int(1, MAX_KRW),
    }
)


def _listing_open(ctx: Ctx) -> None:
    p, state = ctx.payload, ctx.state
    market = require_market(ctx.view, p["market"])
    require_not_stolen(ctx)
    if state is not None and state["listing"] is not None:
        raise Conflict(
            "already_listed",
            f"{ctx.vin} is already listed as {state['listing']['no']} in "
            f"{state['listing']['market']}.",
        )
    _holding_dealer(ctx)
    if ctx.view.get(listing_key(p["market"], p["listing_no"])) is not None:
        raise Conflict(
            "listing_no_taken",
            f"Listing number {p['listing_no']} is open in {p['market']} for another car.",
        )
    inspection = queries.current_inspection(state)
    today = ctx.today
    if inspection is None or not inspection["valid_from"] <= today <= inspection["valid_until"]:
        raise RuleViolation(
            "no_valid_inspection",
            f"{ctx.vin} has no performance inspection valid on {today}; record one first.",
        )
    if market["gated"]:
        gate = None if state is None else state["gate"]
        if gate is None or not gate["inside"] or gate["market"] != p["market"]:
            raise RuleViolation(
                "car_not_in_market",
                f"{p['market']} has gates and {ctx.vin} is not inside: its last gate record "
                "is not an entry there.",
            )


LISTING_CLOSE = Obj(
    {"vin": VIN, "prev": PREV, "reason": Enum("sold", "withdrawn", "expired")},
)


def _listing_close(ctx: Ctx) -> None:
    listing = None if ctx.state is None else ctx.state["listing"]
    if listing is None:
        raise RuleViolation("not_listed", f"{ctx.vin} has no open listing.")
    dealers = {s.org for s in ctx.signers_with("dealer")}
    operators = {s.org for s in ctx.signers_with("market_operator")}
    market = require_market(ctx.view, listing["market"])
    if listing["dealer"] not in dealers and market["operator"] not in operators:
        raise Unauthorized(
            "not_listing_party",
            "listing.close is signed by the listing's dealer or the market's operator.",
        )


SALE = Obj(
    {
        "vin": VIN,
        "prev": PREV,
        "buyer_ref": REF,
        "date": DATE,
        "price": KRW,
        "odometer_km": KM,
        "contract_hash": opt(HASH),
    }
)


def _sale(ctx: Ctx) -> None:
    p = ctx.payload
    require_not_stolen(ctx)
    dealer = _holding_dealer(ctx)
    if p["buyer_ref"] == f"org:{dealer}":
        raise RuleViolation("same_owner", "The buyer is the dealer that holds the car.")
    if not party_signed(ctx.tx, p["buyer_ref"]):
        raise Unauthorized(
            "buyer_signature_required",
            "trade.sale is signed by the buyer too: the key of a key: reference or a "
            "member of an org: reference (a ref: pseudonym cannot sign).",
        )


RECORDS = [
    VinRecord(
        "trade.purchase",
        PURCHASE,
        "A dealer buys a car into stock (매입).",
        roles=("dealer",),
        rule=_purchase,
        immutable=("dealer", "seller_ref", "market"),
    ),
    VinRecord(
        "listing.open",
        LISTING_OPEN,
        "A dealer lists a car it holds for sale (매물 등록).",
        roles=("dealer",),
        rule=_listing_open,
        dates=(),
        immutable=("market", "listing_no"),
    ),
    VinRecord(
        "listing.close",
        LISTING_CLOSE,
        "The listing ends: sold, withdrawn or expired.",
        roles=("dealer", "market_operator"),
        rule=_listing_close,
        dates=(),
    ),
    VinRecord(
        "trade.sale",
        SALE,
        "A dealer sells a car; dealer and buyer sign (매도).",
        roles=("dealer",),
        rule=_sale,
        parties=refs_parties("buyer_ref"),
        immutable=("buyer_ref",),
    ),
]
