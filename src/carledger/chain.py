"""Which record types a chain runs: the membership core plus the vehicle records."""

from __future__ import annotations

from carledger import vehicle
from carledger.ledger.contracts import ContractRegistry
from carledger.ledger.genesis import Genesis
from carledger.ledger.ledger import build_registry

__all__ = ["registry_for"]


def registry_for(genesis: Genesis) -> ContractRegistry:
    return build_registry(genesis, vehicle.contracts())
