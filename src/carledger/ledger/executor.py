"""Deterministic execution of one proposal against the state.

For each transaction, in order, the executor decides a validity code:

1. the body decodes and is a well-formed envelope (else its ``InvalidInput`` code);
2. every signature verifies (``bad_signature``). Only such an *authentic*
   transaction uses up its id: a forged or unsigned copy of someone's pending
   transaction, refused here, cannot block the genuine one;
3. its id was never used by an authentic transaction before, nor earlier in this
   block (``duplicate_transaction``), and its first signer never used its nonce in an
   accepted record (``duplicate_nonce``): re-sending a record cannot create it twice;
4. ``chain`` is this chain (``wrong_chain``), the record type exists
   (``unknown_type``) and the payload passes its schema;
5. every signer is an active member, or a key the contract lets sign unenrolled
   (``unknown_signer``, ``signer_revoked``, ``signer_expired``);
7. the contract's handler accepts it (its own code), and its writes go into the
   block's overlay so later transactions see them.

A refused transaction stays in the block with its code. The executor never looks at
a clock or at anything but its arguments, so every node computes the same results.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from carledger.errors import Conflict, InvalidInput, LedgerError, VerificationFailure
from carledger.ledger.block import OK, RawTx
from carledger.ledger.contracts import BlockContext, ContractRegistry, Signer, TxContext
from carledger.ledger.membership import resolve_signer
from carledger.ledger.state import Overlay, StateReader
from carledger.ledger.tx import Transaction

__all__ = [
    "ExecutionResult",
    "Executor",
    "SignatureChecks",
    "TxResult",
    "map_in_parts",
    "verify_parallel",
]

log = logging.getLogger(__name__)

_T = TypeVar("_T")
_R = TypeVar("_R")

#: Below this many signatures a thread pool costs more than it saves.
PARALLEL_VERIFY_MIN = 64
_pool: ThreadPoolExecutor | None = None


def _verify_pool() -> ThreadPoolExecutor:
    global _pool  # noqa: PLW0603 (one pool per process, made on first use)
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="sigverify")
    return _pool


def verify_parallel(
    txs: Sequence[Transaction], *, min_parallel: int = PARALLEL_VERIFY_MIN
) -> list[bool]:
    """Whether all signatures of each of ``txs`` verify (in order), on two threads.

    libsodium releases the GIL while it verifies, so this uses the second core;
    results are the same as ``not tx.bad_signers()`` for each. Fewer than
    ``min_parallel`` are verified on the calling thread (an offline verifier, whose
    pool is warm and whose records are all its work, gains from 32 on).
    """
    if len(txs) < max(2, min_parallel):
        return [not tx.bad_signers() for tx in txs]
    chunk = max(min(16, len(txs) // 2), len(txs) // 8)
    return map_in_parts(_verify_pool(), lambda tx: not tx.bad_signers(), txs, chunk)


def _all_verify(txs: Sequence[Transaction]) -> list[bool]:
    return [not tx.bad_signers() for tx in txs]


class SignatureChecks:
    """Signature checks started on the two verifying threads, read back as they finish.

    The caller goes on with other work (libsodium releases the GIL) and asks for a
    transaction's answer when it needs it, waiting only for the part that holds it.
    ``checks[tx]`` is ``not tx.bad_signers()`` for a transaction passed to
    :meth:`start`.
    """

    def __init__(self) -> None:
        self._where: dict[int, tuple[Future[list[bool]], int]] = {}
        self._keep: list[Sequence[Transaction]] = []

    def start(self, txs: Sequence[Transaction]) -> None:
        part = list(txs)
        future = _verify_pool().submit(_all_verify, part)
        self._keep.append(part)  # ids stay those of live objects
        for i, tx in enumerate(part):
            self._where[id(tx)] = (future, i)

    def __getitem__(self, tx: Transaction) -> bool:
        future, i = self._where[id(tx)]
        return future.result()[i]


def map_in_parts(
    pool: ThreadPoolExecutor, fn: Callable[[_T], _R], items: Sequence[_T], size: int
) -> list[_R]:
    """``[fn(x) for x in items]``, computed in parts of ``size`` items on ``pool``.

    One task per part, not per item: a thread pool ignores ``map``'s ``chunksize``, and
    a future per item costs more than a signature check.
    """
    parts = [items[i : i + size] for i in range(0, len(items), size)]

    def run(part: Sequence[_T]) -> list[_R]:
        return [fn(x) for x in part]

    return [r for results in pool.map(run, parts) for r in results]


@dataclass(frozen=True, slots=True)
class TxResult:
    id: str
    code: str
    raw: RawTx
    type: str | None = None
    vins: tuple[str, ...] = ()
    message: str = ""
    signer: str = ""
    nonce: str = ""
    authentic: bool = True
    #: The HTTP status of the refusal's error category (0 when accepted).
    status: int = 0

    @property
    def ok(self) -> bool:
        return self.code == OK


@dataclass(slots=True)
class ExecutionResult:
    results: list[TxResult] = field(default_factory=list)
    writes: dict[str, bytes | None] = field(default_factory=dict)


class Executor:
    """Applies ordered transactions through a :class:`ContractRegistry`."""

    def __init__(
        self,
        chain: str,
        registry: ContractRegistry,
        read_hint: Callable[[Transaction], Iterable[str]] | None = None,
    ) -> None:
        self.chain = chain
        self.registry = registry
        #: State keys a transaction will likely read, beside its signers' memberships:
        #: they are fetched for the whole block in one query before it runs. A hint
        #: only saves time; a wrong one changes nothing.
        self.read_hint = read_hint

    def precheck(
        self, tx: Transaction, state: StateReader, ctx: BlockContext, *, static: bool = True
    ) -> None:
        """The stateless and membership checks a node runs before accepting a submission.

        Raises the same error the executor would record, so a client learns at once
        why a record will be refused (signatures are checked by the caller).
        ``static=False`` skips the stateless part (chain, type, payload schema) for a
        caller that has just run it.
        """
        if static:
            self._check_static(tx)
        self.signers(tx, Overlay(state), ctx)

    def signers(self, tx: Transaction, overlay: Overlay, ctx: BlockContext) -> tuple[Signer, ...]:
        """``tx``'s signers resolved against ``overlay`` as the contract's handler gets them;
        raises the refusal (``unknown_signer``, ``signer_revoked``, ``signer_expired``)."""
        return self._resolve(tx, _Members(overlay, ctx))

    def execute(
        self,
        state: StateReader,
        ctx: BlockContext,
        txs: Sequence[RawTx],
        *,
        committed: Callable[[str], bool],
        nonce_used: Callable[[str, str], bool],
        signatures_ok: Mapping[str, bool] | None = None,
        decoded: Sequence[Transaction] = (),
        prefetch: Callable[[Sequence[Transaction]], None] | None = None,
    ) -> ExecutionResult:
        """Execute ``txs`` in order over ``state``.

        ``committed(id)`` tells whether an id is already on the chain and
        ``nonce_used(signer, nonce)`` whether a first signer used a nonce (replay
        protection). ``signatures_ok`` may carry verification results computed in
        parallel beforehand, by transaction id; missing ids are verified here, on
        two threads when there are many. ``decoded`` may hold transactions already
        decoded from these very bodies and signatures (the mempool's), so they are
        not decoded twice, nor checked again against their schema (that check is a
        pure function of the body, and the node ran it at submission); any other raw
        transaction is decoded and fully checked here.
        ``prefetch``, when given, is called once with every decodable transaction
        before the first ``committed``/``nonce_used`` call (to batch those lookups).
        """
        known = {tx.body: tx for tx in decoded}
        parsed: list[Transaction | LedgerError] = []
        checked: list[bool] = []
        for raw in txs:
            found = known.get(raw.body)
            if found is not None and found.signatures == raw.signatures:
                checked.append(True)
                parsed.append(found)
                continue
            checked.append(False)
            try:
                parsed.append(Transaction.from_body(raw.body, raw.signatures))
            except LedgerError as exc:
                parsed.append(exc)
        # Signatures verified by position: two copies of one body (one id) may carry
        # different signatures.
        verified: list[bool | None] = [
            signatures_ok.get(tx.id)
            if signatures_ok is not None and isinstance(tx, Transaction)
            else None
            for tx in parsed
        ]
        todo = [
            i for i, tx in enumerate(parsed) if isinstance(tx, Transaction) and verified[i] is None
        ]
        fresh = [tx for tx in parsed if isinstance(tx, Transaction)]
        todo_txs = [parsed[i] for i in todo]
        for i, ok in zip(
            todo, verify_parallel([t for t in todo_txs if isinstance(t, Transaction)]), strict=True
        ):
            verified[i] = ok
        if prefetch is not None:
            prefetch(fresh)
        overlay = Overlay(state)
        members = _Members(overlay, ctx)
        hint = self.read_hint
        keys: set[str] = set()
        for tx in fresh:
            keys.update(f"member/{signer}" for signer in tx.signers)
            if hint is not None:
                keys.update(hint(tx))
        overlay.prefetch(sorted(keys))
        result = ExecutionResult()
        seen: set[str] = set()
        nonces: set[tuple[str, str]] = set()

        def replayed(tx: Transaction) -> str | None:
            # Only called for authentic transactions (signatures verified).
            if tx.id in seen or committed(tx.id):
                return "duplicate_transaction"
            key = (tx.signers[0][:16], tx.nonce)
            if key in nonces or nonce_used(tx.signers[0], tx.nonce):
                return "duplicate_nonce"
            return None

        for raw, tx_or_error, sig_ok, static_ok in zip(txs, parsed, verified, checked, strict=True):
            outcome = self._one(
                raw, tx_or_error, bool(sig_ok), static_ok, overlay, members, ctx, replayed
            )
            if outcome.authentic:
                seen.add(outcome.id)
            if outcome.ok:
                nonces.add((outcome.signer[:16], outcome.nonce))
            result.results.append(outcome)
        result.writes = overlay.writes
        return result

    def _one(
        self,
        raw: RawTx,
        tx: Transaction | LedgerError,
        signatures_ok: bool,
        static_ok: bool,
        overlay: Overlay,
        members: _Members,
        ctx: BlockContext,
        replayed: Callable[[Transaction], str | None],
    ) -> TxResult:
        if isinstance(tx, LedgerError):
            return TxResult(
                raw.id, tx.code, raw, message=tx.message, authentic=False, status=tx.status
            )
        if not signatures_ok:
            return TxResult(
                tx.id,
                "bad_signature",
                raw,
                tx.type,
                message="A signature does not verify over the body.",
                authentic=False,
                status=VerificationFailure.status,
            )
        try:
            replay = replayed(tx)
            if replay == "duplicate_transaction":
                raise Conflict("duplicate_transaction", "This transaction was already committed.")
            if replay == "duplicate_nonce":
                raise Conflict(
                    "duplicate_nonce",
                    "The first signer already used this nonce: the record exists already.",
                )
            if not static_ok:
                self._check_static(tx)
            signers = self._resolve(tx, members)
            effects = self.registry.get(tx.type).handler(overlay, TxContext(tx, signers), ctx)
            overlay.apply(effects.writes)
        except LedgerError as exc:
            return TxResult(
                tx.id,
                exc.code,
                raw,
                tx.type,
                message=exc.message,
                signer=tx.signers[0],
                nonce=tx.nonce,
                status=exc.status,
            )
        except Exception as exc:
            # A contract bug must not stop the chain. The failure is deterministic
            # (same code, same state, same input on every node), so flagging it keeps
            # the nodes in agreement; the log says where to look.
            log.exception("contract %s failed on %s", tx.type, tx.id)
            return TxResult(
                tx.id,
                "contract_error",
                raw,
                tx.type,
                message=type(exc).__name__,
                signer=tx.signers[0],
                nonce=tx.nonce,
                status=500,
            )
        return TxResult(tx.id, OK, raw, tx.type, effects.vins, signer=tx.signers[0], nonce=tx.nonce)

    def _check_static(self, tx: Transaction) -> None:
        if tx.chain != self.chain:
            raise InvalidInput(
                "wrong_chain", f"This transaction is for chain {tx.chain!r}, not {self.chain!r}."
            )
        self.registry.get(tx.type).validate(tx.payload)

    def _resolve(self, tx: Transaction, members: _Members) -> tuple[Signer, ...]:
        unenrolled = self.registry.get(tx.type).unenrolled(tx.payload)
        signers = []
        for key in tx.signers:
            if key in unenrolled and members.entry(key) is None:
                signers.append(
                    Signer(key=key, org="", member="", roles=frozenset(), enrolled=False)
                )
            else:
                signers.append(members.resolve(key))
        return tuple(signers)


class _Members:
    """Signers resolved within one block, each reused while its member entry is unchanged.

    Most records of a block are signed by a few dozen keys: resolving each key once a
    block, not once a record, saves decoding its entry every time. A hit needs the very
    bytes object the overlay holds for the entry (a write in this block replaces it),
    and the block date, which expiry depends on, is the same for the whole block; so a
    hit returns what :func:`resolve_signer` would. Refusals are not kept.
    """

    def __init__(self, overlay: Overlay, ctx: BlockContext) -> None:
        self._overlay = overlay
        self._ctx = ctx
        self._known: dict[str, tuple[bytes, Signer]] = {}

    def entry(self, key: str) -> bytes | None:
        return self._overlay.get_bytes(f"member/{key}")

    def resolve(self, key: str) -> Signer:
        data = self.entry(key)
        hit = self._known.get(key)
        if hit is not None and hit[0] is data:
            return hit[1]
        signer = resolve_signer(self._overlay, key, self._ctx)
        if data is not None:
            self._known[key] = (data, signer)
        return signer
