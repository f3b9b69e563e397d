"""The vehicle record types, one module per family; the rules of each are in its module.

=====================  =================================================================
module                 record types
=====================  =================================================================
``lifecycle``          vehicle.register, registration.record, ownership.transfer,
                       vehicle.scrap
``trading``            trade.purchase, listing.open, listing.close, trade.sale
``inspection``         inspection.record (form: :mod:`carledger.vehicle.inspection_form`)
``gate``               gate.entry, gate.exit, market.register
``use``                odometer.reading, service.record, accident.record,
                       insurance.claim, battery.report, usage.start, usage.end
``parts``              part.install, part.remove
``recalls``            recall.issue (several VINs), recall.complete
``liens``              lien.register, lien.release
``theft``              theft.report, theft.recover
``corrections``        record.correct, record.dispute, dispute.resolve, odometer.exception
=====================  =================================================================

``common`` holds the path every VIN-scoped record takes (signers, chain head,
scrapped, dates, rule, fold, indexes).
"""

from __future__ import annotations

from carledger.ledger.contracts import Contract
from carledger.vehicle.records import (
    corrections,
    gate,
    inspection,
    liens,
    lifecycle,
    parts,
    recalls,
    theft,
    trading,
    use,
)

__all__ = ["contracts"]

_FAMILIES = (lifecycle, trading, inspection, gate, use, parts, recalls, liens, theft, corrections)


def contracts() -> list[Contract]:
    """Every vehicle record type as a ledger contract."""
    out = [rec.contract() for family in _FAMILIES for rec in family.RECORDS]
    return [*out, *gate.MARKET_CONTRACTS, *recalls.RECALL_CONTRACTS]
