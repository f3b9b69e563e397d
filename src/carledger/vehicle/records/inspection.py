"""The performance and condition inspection (성능·상태 점검), by an accredited inspector.

The form's content and the derivation of ``accident``/``simple_repair`` live in
:mod:`carledger.vehicle.inspection_form`. State rules: the inspection ``date`` may
not lie after the block's local date (``date_in_future``) and a scrapped car takes
no inspection. What an inspection says that contradicts other sources (no
accident where an insurer saw frame damage, an odometer below an earlier reading)
is accepted and flagged by :mod:`carledger.vehicle.facts`: the contradiction is
itself the evidence a buyer needs.

The inspection is warranted to the buyer for 30 days or 2,000 km from the sale
(:func:`carledger.vehicle.facts.warranty`); its ``valid_from`` .. ``valid_until``
window is when it may back a listing.
"""

from __future__ import annotations

from carledger.vehicle.inspection_form import INSPECTION
from carledger.vehicle.records.common import VinRecord

__all__ = ["RECORDS"]

RECORDS = [
    VinRecord(
        "inspection.record",
        INSPECTION,
        "The official performance and condition inspection (성능·상태 점검기록부).",
        roles=("inspector",),
    ),
]
