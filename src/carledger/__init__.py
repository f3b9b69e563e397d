"""carledger: a permissioned ledger for the life of a vehicle and used-car trading."""

__version__ = "0.1.0"
