"""A node's ledger: executes proposals and commits blocks, one atomic write each.

:class:`Ledger` owns the in-memory parts that make commits fast (the log's right
edge and the state tree's upper levels) and keeps them in step with the store: they
change only after the block's database transaction has committed, so a failed or
interrupted block leaves memory and disk both at the previous height.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from carledger.crypto.keys import SigningKey
from carledger.errors import Conflict, InvalidInput, StorageError
from carledger.ledger import merkle, smt
from carledger.ledger.block import (
    OK,
    BlockHeader,
    CheckpointSignature,
    Proposal,
    leaf_input,
    tx_root,
)
from carledger.ledger.contracts import BlockContext, Contract, ContractRegistry
from carledger.ledger.executor import Executor, TxResult
from carledger.ledger.genesis import Genesis, checkpoint_quorum
from carledger.ledger.membership import contracts as membership_contracts
from carledger.ledger.membership import genesis_state
from carledger.ledger.state import StateReader, decode_value, encode_value
from carledger.ledger.tx import Transaction

__all__ = ["CommittedBlock", "Ledger", "LedgerStore", "NodeIdentity", "genesis_block_time"]

logger = logging.getLogger(__name__)


class BlockWriterProtocol(Protocol):
    def get_state(self, key: str) -> bytes | None: ...
    def leaves_in_range(self, lo: bytes, hi: bytes | None) -> Iterable[tuple[bytes, bytes]]: ...
    def insert_txs(
        self, rows: Iterable[tuple[int, str, int, str, bool, bytes, tuple[bytes, ...]]]
    ) -> None: ...
    def insert_vin_index(self, rows: Iterable[tuple[str, int]]) -> None: ...
    def insert_nonces(self, rows: Iterable[tuple[str, str]]) -> None: ...
    def write_state(self, writes: dict[str, bytes | None]) -> list[bytes]: ...
    def insert_log_nodes(self, nodes: Iterable[tuple[int, int, bytes]]) -> None: ...
    def write_buckets(self, rows: Iterable[tuple[int, bytes, int]]) -> None: ...
    def insert_block(self, height: int, block_hash: str, header: bytes) -> None: ...
    def insert_checkpoint_sig(self, height: int, validator: str, signature: bytes) -> None: ...
    def set_meta(self, key: str, value: bytes) -> None: ...


class LedgerStore(Protocol):
    """What the ledger needs from storage (see :class:`carledger.store.sqlite.SQLiteStore`)."""

    def get_state(self, key: str) -> bytes | None: ...
    def leaves_in_range(self, lo: bytes, hi: bytes | None) -> Iterable[tuple[bytes, bytes]]: ...
    def get_nodes(self, ids: Sequence[tuple[int, int]]) -> list[bytes]: ...
    def get_meta(self, key: str) -> bytes | None: ...
    def head(self) -> tuple[int, bytes] | None: ...
    def has_tx(self, tx_id: str) -> bool: ...
    def nonce_used(self, signer: str, nonce: str) -> bool: ...
    def committed_ids(self, tx_ids: Sequence[str]) -> set[str]: ...
    def used_nonces(self, pairs: Sequence[tuple[str, str]]) -> set[tuple[str, str]]: ...
    def tx_by_id(self, tx_id: str) -> Any: ...
    def bucket_rows(self) -> list[tuple[int, bytes, int]]: ...
    def write_block(self) -> Any: ...
    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    """This node's validator id and key; checkpoints are signed with it."""

    validator: str
    key: SigningKey


@dataclass(frozen=True, slots=True)
class CommittedBlock:
    header: BlockHeader
    results: tuple[TxResult, ...]
    first_seq: int
    signature: CheckpointSignature | None


class _HeightCache:
    """State reads for submission checks, remembered for as long as the head stays.

    An entry is tagged with the height seen *before* it was read, and only served
    while that is still the head: a read that raced a commit is never reused.
    """

    MAX_ENTRIES = 100_000

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._entries: dict[str, tuple[int, bytes | None]] = {}

    def get_state(self, key: str) -> bytes | None:
        height = self._ledger.height
        hit = self._entries.get(key)
        if hit is not None and hit[0] == height:
            return hit[1]
        value = self._ledger.store.get_state(key)
        if len(self._entries) >= self.MAX_ENTRIES:
            self._entries.clear()
        self._entries[key] = (height, value)
        return value


def genesis_block_time(genesis: Genesis) -> str:
    created = genesis.created
    return created if "." in created else created[:-1] + ".000Z"


def build_registry(genesis: Genesis, extra: Iterable[Contract] = ()) -> ContractRegistry:
    """Membership contracts plus ``extra`` (the vehicle records)."""
    return ContractRegistry([*membership_contracts(genesis), *extra])


class Ledger:
    """Execution and commit of blocks over a :class:`LedgerStore`.

    Not thread-safe for writers: one thread applies proposals. Readers may call
    the read helpers from other threads; :attr:`lock` serialises proof generation
    against commits so that memory and disk agree.
    """

    def __init__(
        self,
        store: LedgerStore,
        genesis: Genesis,
        registry: ContractRegistry,
        identity: NodeIdentity | None = None,
        *,
        bucket_depth: int = 16,
    ) -> None:
        self.store = store
        self.genesis = genesis
        self.registry = registry
        self.identity = identity
        self.executor = Executor(genesis.chain_id, registry)
        self.lock = threading.RLock()
        self._smt = smt.SparseMerkleTree(bucket_depth)
        self._log = merkle.CompactRange()
        self._head: BlockHeader
        self._listeners: list[Callable[[CommittedBlock], None]] = []
        self._precheck_reads = _HeightCache(self)
        stored = store.get_meta("genesis")
        if stored is None:
            self._init_genesis()
        elif stored != genesis.bytes:
            raise StorageError(
                "genesis_mismatch",
                "This store belongs to a different chain (its genesis differs from the one given).",
            )
        else:
            self._load()

    # -- opening ---------------------------------------------------------------------

    def _init_genesis(self) -> None:
        state = {k: encode_value(v) for k, v in genesis_state(self.genesis).items()}
        with self.store.write_block() as w:
            w.set_meta("genesis", self.genesis.bytes)
            w.set_meta("chain_id", self.genesis.chain_id.encode())
            changed = w.write_state(dict(state))
            staged = self._smt.stage(changed, w)
            header = BlockHeader(
                chain=self.genesis.chain_id,
                height=0,
                prev=self.genesis.hash,
                time=genesis_block_time(self.genesis),
                proposer="genesis",
                tx_count=0,
                tx_root=merkle.EMPTY_ROOT.hex(),
                state_root=staged.root.hex(),
                log_size=0,
                log_root=merkle.EMPTY_ROOT.hex(),
            )
            w.write_buckets(staged.bucket_rows)
            w.insert_block(0, header.hash, header.encoded)
            self._sign(w, header)
        self._smt.commit(staged)
        self._head = header

    def _load(self) -> None:
        head = self.store.head()
        if head is None:
            raise StorageError("store_incomplete", "The store has a genesis but no block 0.")
        self._head = BlockHeader.from_bytes(head[1])
        self._smt.load_buckets(self.store.bucket_rows())
        if self._smt.root.hex() != self._head.state_root:
            raise StorageError(
                "state_root_mismatch",
                f"The stored state tree root does not match block {self._head.height}'s state "
                "root; the store was altered. Run `carledger verify` to locate the damage.",
            )
        self._log = merkle.CompactRange.from_reader(self.store, self._head.log_size)
        if self._log.root().hex() != self._head.log_root:
            raise StorageError(
                "log_root_mismatch",
                f"The stored log does not match block {self._head.height}'s log root; "
                "the store was altered. Run `carledger verify` to locate the damage.",
            )

    # -- reading -----------------------------------------------------------------------

    @property
    def head(self) -> BlockHeader:
        return self._head

    @property
    def height(self) -> int:
        return self._head.height

    @property
    def chain_id(self) -> str:
        return self.genesis.chain_id

    def state(self, key: str) -> Any | None:
        data = self.store.get_state(key)
        return None if data is None else decode_value(data)

    def validator_keys(self) -> dict[str, str]:
        nodes = self.state("validators") or {"nodes": []}
        return {n["id"]: n["key"] for n in nodes["nodes"] if n["since"] <= self.height}

    def quorum(self) -> int:
        return checkpoint_quorum(len(self.validator_keys()))

    def prove_state(self, key: str) -> tuple[BlockHeader, bytes | None, smt.SparseProof]:
        """The value at ``key`` and its proof against the head's state root."""
        with self.lock:
            value = self.store.get_state(key)
            proof = self._smt.prove(key, self.store)
            return self._head, value, proof

    def next_context(self, time: str, proposer: str) -> BlockContext:
        return BlockContext(self.chain_id, self.height + 1, time, proposer)

    def precheck(
        self, tx: Transaction, time: str, *, cached: bool = False, static: bool = True
    ) -> None:
        """Checks a submission passes before it is queued (signatures are the caller's).

        With ``cached``, state entries (the signers' memberships) are read through a
        cache that is only ever used at the height it was filled at, so the answer
        is the one the committed state gives. ``static=False``: the caller has run
        the stateless checks already (see :meth:`Executor.precheck`).
        """
        state: StateReader = self._precheck_reads if cached else self.store
        self.executor.precheck(tx, state, self.next_context(time, "precheck"), static=static)

    def on_commit(self, listener: Callable[[CommittedBlock], None]) -> None:
        """Call ``listener`` with each block once it is committed (an exception it raises
        is logged, never passed on)."""
        self._listeners.append(listener)

    # -- committing --------------------------------------------------------------------

    def apply(
        self,
        proposal: Proposal,
        *,
        signatures_ok: Mapping[str, bool] | None = None,
        fault: Callable[[str], None] | None = None,
        decoded: Sequence[Transaction] = (),
    ) -> CommittedBlock:
        """Execute ``proposal`` and commit it as the next block.

        ``signatures_ok`` and ``decoded`` carry work done before (see
        :meth:`Executor.execute`): they save time, never change the outcome.

        Raises :class:`Conflict` (``wrong_height``) unless it is for ``height + 1``,
        :class:`InvalidInput` (``block_time_regressed``) if its time is before the
        head's. ``fault`` is a test hook called at named points inside the
        database transaction; an exception there rolls the whole block back.
        """
        head = self._head
        if proposal.height != head.height + 1:
            raise Conflict(
                "wrong_height",
                f"The next block is {head.height + 1}, not {proposal.height}.",
            )
        if proposal.time < head.time:
            raise InvalidInput(
                "block_time_regressed",
                f"Block time {proposal.time} is before the previous block's {head.time}.",
            )
        ctx = BlockContext(self.chain_id, proposal.height, proposal.time, proposal.proposer)
        # Replay checks for the whole block in two queries instead of two per record.
        known_ids: set[str] = set()
        used: set[tuple[str, str]] = set()

        def prefetch(txs: Sequence[Transaction]) -> None:
            known_ids.update(self.store.committed_ids([t.id for t in txs]))
            used.update(self.store.used_nonces([(t.signers[0], t.nonce) for t in txs]))

        executed = self.executor.execute(
            self.store,
            ctx,
            proposal.txs,
            committed=known_ids.__contains__,
            nonce_used=lambda signer, nonce: (signer, nonce) in used,
            signatures_ok=signatures_ok,
            decoded=decoded,
            prefetch=prefetch,
        )
        results = executed.results
        leaves = [leaf_input(r.id, proposal.height, proposal.time, r.code) for r in results]
        first_seq = head.log_size
        log = merkle.CompactRange(self._log.size, self._log.hashes)
        with self.lock:
            with self.store.write_block() as w:
                w.insert_txs(
                    (
                        first_seq + i,
                        r.id,
                        proposal.height,
                        r.code,
                        r.authentic,
                        r.raw.body,
                        r.raw.signatures,
                    )
                    for i, r in enumerate(results)
                )
                w.insert_nonces((r.signer, r.nonce) for r in results if r.ok)
                if fault:
                    fault("after_txs")
                w.insert_vin_index(
                    (vin, first_seq + i)
                    for i, r in enumerate(results)
                    if r.code == OK
                    for vin in r.vins
                )
                changed = w.write_state(executed.writes)
                if fault:
                    fault("after_state")
                staged = self._smt.stage(changed, w)
                nodes: list[tuple[int, int, bytes]] = []
                for leaf in leaves:
                    nodes.extend(log.append(merkle.leaf_hash(leaf)))
                w.insert_log_nodes(nodes)
                w.write_buckets(staged.bucket_rows)
                header = BlockHeader(
                    chain=self.chain_id,
                    height=proposal.height,
                    prev=head.hash,
                    time=proposal.time,
                    proposer=proposal.proposer,
                    tx_count=len(results),
                    tx_root=tx_root(leaves),
                    state_root=staged.root.hex(),
                    log_size=log.size,
                    log_root=log.root().hex(),
                )
                w.insert_block(header.height, header.hash, header.encoded)
                signature = self._sign(w, header)
                if fault:
                    fault("before_commit")
                # Leaving the block commits the SQLite transaction; only then does
                # memory move to the new height.
            self._smt.commit(staged)
            self._log = log
            self._head = header
        block = CommittedBlock(header, tuple(results), first_seq, signature)
        for listener in self._listeners:
            # The block is committed whatever a listener does: one that fails must
            # neither stop the others (those that answer the waiting clients) nor make
            # the caller take the block for failed.
            try:
                listener(block)
            except Exception:
                logger.exception("after block %d was committed, a listener failed", header.height)
        return block

    def _sign(self, w: BlockWriterProtocol, header: BlockHeader) -> CheckpointSignature | None:
        if self.identity is None:
            return None
        sig = header.checkpoint().sign(self.identity.validator, self.identity.key)
        w.insert_checkpoint_sig(header.height, sig.validator, sig.signature)
        return sig
