"""Vehicle records: the rules of a car's life and of used-car trading (DOMAIN.md).

Public surface for the ledger, API and report layers:

- :func:`contracts` — every record type as a :class:`~carledger.ledger.contracts.Contract`;
- :mod:`carledger.vehicle.fold` — ``fold(vin, state, record)``, ``replay(vin, records)``,
  ``named_prev``: the vehicle state as a pure fold (what a verifier recomputes);
- :mod:`carledger.vehicle.facts` — ``facts(state, as_of)`` and ``summary(state)``:
  derived flags with reasons, for a reference time passed in;
- :mod:`carledger.vehicle.history` — ``history(records)``: the entries of a VIN with
  status and links;
- :mod:`carledger.vehicle.vin` — ``normalise`` (user input) and ``check_canonical``
  (signed payloads);
- :mod:`carledger.vehicle.indexes` — the state keys;
- :mod:`carledger.vehicle.demo` — a seeded generator of a Seoul used-car market.
"""

from __future__ import annotations

from carledger.vehicle.records import contracts

__all__ = ["contracts"]
