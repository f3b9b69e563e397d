"""The path every VIN-scoped record takes, and the checks the rules share.

A :class:`VinRecord` describes one record type as a table row: its payload schema,
who may sign it, the payload dates that may not lie in the future, its state rule,
and whether a scrapped car still accepts it. :meth:`VinRecord.contract` turns the
row into a ledger :class:`~carledger.ledger.contracts.Contract` whose handler runs,
in this order (so the code of a refused record is predictable):

1. signers: at least one holds a primary role, and every signer holds a primary or
   co-sign role or is a party named in the payload (``unauthorized_role``);
2. the VIN's chain: ``prev`` must be the VIN's head (``stale_head``, a
   :class:`~carledger.errors.Conflict`: re-read the vehicle and submit again);
3. a scrapped car accepts only corrections and disputes (``vehicle_scrapped``);
4. record dates against the block's local date (``date_in_future``);
5. the record type's own rule (which may add writes, e.g. a market entry);
6. the fold, and the index entries that follow from the new state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from carledger.errors import Conflict, NotFound, RuleViolation, Unauthorized
from carledger.ledger.contracts import (
    BlockContext,
    Contract,
    Effects,
    Signer,
    StateView,
    TxContext,
)
from carledger.ledger.genesis import ROLES
from carledger.vehicle import queries
from carledger.vehicle.clock import local_date
from carledger.vehicle.fields import ref_key, ref_org
from carledger.vehicle.fold import Record, fold
from carledger.vehicle.indexes import index_writes, market_key, vehicle_key
from carledger.vehicle.schema import Obj

__all__ = [
    "ANY_MEMBER",
    "Ctx",
    "VinRecord",
    "authorize",
    "check_dates",
    "check_head",
    "extend",
    "no_parties",
    "party_signed",
    "record_of",
    "refs_parties",
    "require_live",
    "require_market",
    "require_not_listed",
    "require_not_stolen",
]

#: Every role, including org admins: for records any member may write.
ANY_MEMBER: tuple[str, ...] = tuple(sorted(ROLES))

Parties = Callable[[Mapping[str, Any]], tuple[frozenset[str], frozenset[str]]]


def no_parties(payload: Mapping[str, Any]) -> tuple[frozenset[str], frozenset[str]]:
    del payload
    return frozenset(), frozenset()


def refs_parties(*names: str) -> Parties:
    """Parties named by reference fields: ``key:`` refs give keys, ``org:`` refs orgs."""

    def parties(payload: Mapping[str, Any]) -> tuple[frozenset[str], frozenset[str]]:
        refs = [payload.get(n) for n in names]
        keys = frozenset(k for r in refs if isinstance(r, str) and (k := ref_key(r)))
        orgs = frozenset(o for r in refs if isinstance(r, str) and (o := ref_org(r)))
        return keys, orgs

    return parties


@dataclass(frozen=True, slots=True)
class Ctx:
    """What a record type's rule sees."""

    view: StateView
    tx: TxContext
    block: BlockContext
    vin: str
    state: dict[str, Any] | None

    @property
    def payload(self) -> dict[str, Any]:
        return self.tx.payload

    @property
    def today(self) -> str:
        """The block's Korean local date (see :mod:`carledger.vehicle.clock`)."""
        return local_date(self.block.time)

    def signers_with(self, *roles: str) -> list[Signer]:
        return [s for s in self.tx.signers if s.enrolled and s.has_role(*roles)]


Rule = Callable[[Ctx], Mapping[str, Any] | None]


def record_of(tx: TxContext, block: BlockContext) -> Record:
    return Record(
        id=tx.id,
        type=tx.tx.type,
        payload=tx.payload,
        signers=tx.tx.signers,
        height=block.height,
        time=block.time,
    )


def authorize(
    tx: TxContext,
    roles: tuple[str, ...],
    cosign: tuple[str, ...] = (),
    keys: frozenset[str] = frozenset(),
    orgs: frozenset[str] = frozenset(),
) -> None:
    """Refuse (``unauthorized_role``) unless a signer holds one of ``roles`` (when any are
    given) and every signer holds one of ``roles + cosign`` or is a party (``keys``, or
    an enrolled member of one of ``orgs``)."""
    kind = tx.tx.type
    if roles and not any(s.enrolled and s.has_role(*roles) for s in tx.signers):
        raise Unauthorized(
            "unauthorized_role",
            f"{kind} must be signed by a member with role {' or '.join(roles)}.",
            type=kind,
            roles=list(roles),
        )
    allowed = roles + cosign
    for s in tx.signers:
        if s.key in keys or (s.enrolled and (s.has_role(*allowed) or s.org in orgs)):
            continue
        who = f"{s.org}/{s.member}" if s.enrolled else f"key {s.key[:16]}..."
        raise Unauthorized(
            "unauthorized_role",
            f"{who} may not sign {kind}: it holds none of the roles "
            f"{', '.join(allowed) or '(none)'} and is no party to the record.",
            type=kind,
            signer=s.key,
        )


def party_signed(tx: TxContext, ref: str | None) -> bool:
    """True when the party behind ``ref`` signed: its key, or a member of its org."""
    key, org = ref_key(ref), ref_org(ref)
    if key is not None:
        return key in tx.tx.signers
    if org is not None:
        return any(s.enrolled and s.org == org for s in tx.signers)
    return False


def check_head(vin: str, state: dict[str, Any] | None, prev: str | None) -> None:
    """Refuse with ``stale_head`` unless ``prev`` is the VIN's latest record (None: none)."""
    head = None if state is None else state["head"]
    if prev != head:
        raise Conflict(
            "stale_head",
            f"The latest record of {vin} is {head or 'none (no records yet)'}, but this "
            f"record names {prev or 'none'} as previous; re-read the vehicle and submit "
            "again with prev set to its latest record.",
            vin=vin,
            head=head,
        )


def check_dates(payload: Mapping[str, Any], fields: tuple[str, ...], today: str) -> None:
    for name in fields:
        value = payload.get(name)
        if isinstance(value, str) and value > today:
            raise RuleViolation(
                "date_in_future",
                f"{name} {value} is after the block's date {today} (Korean time); a record "
                "cannot be dated in the future of the block that commits it.",
                field=name,
            )


def require_not_stolen(ctx: Ctx) -> None:
    if queries.is_stolen(ctx.state):
        raise RuleViolation(
            "vehicle_stolen",
            f"{ctx.vin} is reported stolen; it cannot change owner or be listed until "
            "theft.recover is recorded.",
        )


def require_not_listed(ctx: Ctx) -> None:
    if ctx.state is not None and ctx.state["listing"] is not None:
        raise RuleViolation(
            "vehicle_listed",
            f"{ctx.vin} is listed for sale in {ctx.state['listing']['market']}; close the "
            "listing first (listing.close).",
        )


def require_live(vin: str, state: dict[str, Any] | None) -> None:
    """Refuse (``vehicle_scrapped``) a record for a scrapped car."""
    if queries.is_scrapped(state):
        raise RuleViolation(
            "vehicle_scrapped",
            f"{vin} was scrapped; it accepts only corrections and disputes.",
            vin=vin,
        )


def extend(
    view: StateView, vin: str, state: dict[str, Any] | None, record: Record
) -> dict[str, Any]:
    """The writes that add an accepted ``record`` to ``vin``: its new state and indexes."""
    new = fold(vin, state, record)
    return {vehicle_key(vin): new, **index_writes(view, vin, state, new)}


def require_market(view: StateView, market: str) -> dict[str, Any]:
    entry = view.get(market_key(market))
    if entry is None:
        raise NotFound("unknown_market", f"There is no market {market!r}.", market=market)
    return dict(entry)


def _vin_of_payload(view: StateView, payload: Mapping[str, Any]) -> str:
    del view
    return str(payload["vin"])


@dataclass(frozen=True)
class VinRecord:
    """One VIN-scoped record type as a table row (see the module docstring)."""

    type: str
    schema: Obj
    description: str
    roles: tuple[str, ...]
    cosign: tuple[str, ...] = ()
    rule: Rule | None = None
    dates: tuple[str, ...] = ("date",)
    after_scrap: bool = False
    parties: Parties = no_parties
    vin_of: Callable[[StateView, Mapping[str, Any]], str] = _vin_of_payload
    #: Fields a ``record.correct`` may not change (``vin`` and ``prev`` never).
    immutable: tuple[str, ...] = field(default=())

    def handle(self, view: StateView, tx: TxContext, block: BlockContext) -> Effects:
        payload = tx.payload
        keys, orgs = self.parties(payload)
        authorize(tx, self.roles, self.cosign, keys, orgs)
        vin = self.vin_of(view, payload)
        state = view.get(vehicle_key(vin))
        check_head(vin, state, payload["prev"])
        if not self.after_scrap:
            require_live(vin, state)
        ctx = Ctx(view, tx, block, vin, state)
        check_dates(payload, self.dates, ctx.today)
        extra = self.rule(ctx) if self.rule is not None else None
        writes = extend(view, vin, state, record_of(tx, block))
        if extra:
            writes.update(extra)
        return Effects(writes=writes, vins=(vin,))

    def contract(self) -> Contract:
        return Contract(
            type=self.type,
            validate=self.schema,
            handler=self.handle,
            description=self.description,
            unenrolled=lambda payload: self.parties(payload)[0],
        )
