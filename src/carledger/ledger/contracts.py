"""The contract interface: how record families plug into block execution.

A contract is a pure function of (state, transaction, block context). It reads the
state through a :class:`StateView`, and either returns :class:`Effects` (the state
entries to write and the VINs whose per-vehicle chain the record extends) or raises
a :class:`~carledger.errors.LedgerError` whose ``code`` becomes the transaction's
validity code in the block. No wall clock, no randomness, no floats, no I/O: every
node must reach the same state root from the same blocks.

Before a handler runs, the executor has already checked the envelope, the chain id,
replay, the signatures and that every signer is an active member; the handler gets
the signers resolved to :class:`Signer` (organisation, member id, roles).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from carledger.errors import InvalidInput, Unauthorized
from carledger.ledger.tx import Transaction

__all__ = [
    "BlockContext",
    "Contract",
    "ContractRegistry",
    "Effects",
    "Signer",
    "StateView",
    "TxContext",
]


class StateView(Protocol):
    """Read access to the state as of just before the current transaction."""

    def get(self, key: str) -> Any:
        """The decoded JSON value at ``key`` (a fresh object the caller may keep), or None."""
        ...


@dataclass(frozen=True, slots=True)
class BlockContext:
    """What a contract may know about the block: never the wall clock.

    ``time`` is the block time chosen by the proposer (UTC, ``YYYY-MM-DDTHH:MM:SS.mmmZ``),
    non-decreasing along the chain.
    """

    chain: str
    height: int
    time: str
    proposer: str

    @property
    def date(self) -> str:
        """The block's UTC date, ``YYYY-MM-DD`` (records' dates are compared with it)."""
        return self.time[:10]


@dataclass(frozen=True, slots=True)
class Signer:
    """A signer resolved against the membership state at execution time."""

    key: str
    org: str
    member: str
    roles: frozenset[str]
    enrolled: bool = True

    def has_role(self, *roles: str) -> bool:
        return not self.roles.isdisjoint(roles)


@dataclass(frozen=True, slots=True)
class TxContext:
    tx: Transaction
    signers: tuple[Signer, ...]

    @property
    def payload(self) -> dict[str, Any]:
        return self.tx.payload

    @property
    def id(self) -> str:
        return self.tx.id

    def signers_with(self, *roles: str) -> list[Signer]:
        return [s for s in self.signers if s.has_role(*roles)]

    def require_role(self, *roles: str) -> Signer:
        """The first signer holding one of ``roles``; ``unauthorized_role`` if none does."""
        for signer in self.signers:
            if signer.has_role(*roles):
                return signer
        raise Unauthorized(
            "unauthorized_role",
            f"{self.tx.type} must be signed by a member with role {' or '.join(roles)}.",
            type=self.tx.type,
            roles=list(roles),
        )


@dataclass(frozen=True, slots=True)
class Effects:
    """What an accepted transaction changes.

    ``writes`` maps state keys to their new JSON value (None deletes the entry).
    ``vins`` names the VINs whose history this record belongs to (it is indexed
    under each of them, in this order).
    """

    writes: Mapping[str, Any] = field(default_factory=dict)
    vins: tuple[str, ...] = ()


Handler = Callable[[StateView, TxContext, BlockContext], Effects]
PayloadValidator = Callable[[dict[str, Any]], None]
UnenrolledSigners = Callable[[dict[str, Any]], frozenset[str]]


def no_unenrolled_signers(payload: dict[str, Any]) -> frozenset[str]:
    del payload
    return frozenset()


@dataclass(frozen=True, slots=True)
class Contract:
    """One record type: its payload check (stateless) and its handler (stateful).

    ``validate`` runs at submission (pre-check) and again at execution; it raises
    :class:`InvalidInput` with a field-specific code. ``handler`` enforces roles and
    state rules and returns the effects.

    ``unenrolled`` names, from the payload, keys that may sign without being
    enrolled members (the new key of a key rotation, a buyer's own key); they
    reach the handler as :class:`Signer` with ``enrolled=False`` and no roles.
    Every other signer must be an active member or the record is refused.
    """

    type: str
    validate: PayloadValidator
    handler: Handler
    description: str = ""
    unenrolled: UnenrolledSigners = no_unenrolled_signers


class ContractRegistry:
    """The record types a chain knows, by ``type`` name."""

    def __init__(self, contracts: Iterable[Contract] = ()) -> None:
        self._contracts: dict[str, Contract] = {}
        for contract in contracts:
            self.register(contract)

    def register(self, contract: Contract) -> None:
        if contract.type in self._contracts:
            raise ValueError(f"record type {contract.type} registered twice")
        self._contracts[contract.type] = contract

    def get(self, type_: str) -> Contract:
        try:
            return self._contracts[type_]
        except KeyError:
            raise InvalidInput(
                "unknown_type", f"There is no record type {type_!r}.", type=type_
            ) from None

    def __contains__(self, type_: object) -> bool:
        return type_ in self._contracts

    def types(self) -> list[str]:
        return sorted(self._contracts)
