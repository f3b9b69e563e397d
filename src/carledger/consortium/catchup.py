"""Catch-up from peers: blocks etcd no longer keeps, fetched from another node's API.

A node that was down longer than etcd retains blocks (see compaction in
:mod:`carledger.consortium.ordering`), or a new organisation's node that starts from
the genesis alone, asks live peers for each missing block::

    GET /v1/blocks/{h}                 header, transaction ids and codes, certificate
    GET /v1/blocks/{h}/transactions    the raw transactions (wire form)

and accepts block ``h`` only if (:func:`check_fetched`)

1. the header extends this node's head (chain, height, ``prev``);
2. its checkpoint is certified: a quorum of the validators in force at ``h`` signed
   it (the peer is not trusted; the signatures are);
3. the raw transactions are exactly the certified ones: their ids, with the
   peer-reported validity codes, rebuild the header's ``tx_root`` (so neither the
   set nor the order can be changed without breaking a certified hash).

The node then executes the block itself and compares the resulting header with the
certified one; a mismatch means this node's execution differs from a quorum's, which
is reported as divergence by the caller.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from carledger.errors import InvalidInput, LedgerError, NotFound, VerificationFailure
from carledger.ledger.block import (
    BlockHeader,
    CheckpointSignature,
    Proposal,
    RawTx,
    leaf_input,
    tx_root,
)
from carledger.ledger.genesis import checkpoint_quorum

from .layout import raw_from_wire

__all__ = ["FetchedBlock", "PeerFetcher", "check_fetched"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FetchedBlock:
    header: BlockHeader
    signatures: tuple[CheckpointSignature, ...]
    codes: tuple[tuple[str, str], ...]  # (tx id, validity code) as the peer reports them
    txs: tuple[RawTx, ...]
    source: str


class PeerFetcher:
    """Fetches blocks from peers' APIs, trying each peer in turn."""

    def __init__(self, timeout: float = 10.0, verify: Any = True) -> None:
        self._http = httpx.Client(timeout=timeout, verify=verify)

    def close(self) -> None:
        self._http.close()

    def fetch(self, peers: Sequence[str], height: int) -> FetchedBlock:
        """Block ``height`` from the first peer that has it with a certificate.

        Raises :class:`NotFound` (``block_unavailable``) when no peer could provide it.
        """
        reasons: list[str] = []
        for url in peers:
            try:
                return self._fetch_one(url.rstrip("/"), height)
            except (httpx.HTTPError, LedgerError, ValueError, KeyError, TypeError) as exc:
                reasons.append(f"{url}: {exc}")
        raise NotFound(
            "block_unavailable",
            f"No peer could provide block {height} ({'; '.join(reasons) or 'no peers known'}).",
            height=height,
        )

    def _fetch_one(self, url: str, height: int) -> FetchedBlock:
        view = self._http.get(f"{url}/v1/blocks/{height}")
        if view.status_code != 200:
            raise NotFound("block_unavailable", f"answered {view.status_code}")
        doc = view.json()
        raw = self._http.get(f"{url}/v1/blocks/{height}/transactions")
        if raw.status_code != 200:
            raise NotFound("block_unavailable", f"transactions answered {raw.status_code}")
        header = BlockHeader.from_dict(doc["header"])
        sigs = tuple(CheckpointSignature.from_dict(s) for s in doc["checkpoint"]["signatures"])
        codes = tuple((str(t["id"]), str(t["code"])) for t in doc["transactions"])
        txs = tuple(raw_from_wire(w) for w in raw.json()["transactions"])
        return FetchedBlock(header, sigs, codes, txs, url)


def check_fetched(
    fetched: FetchedBlock,
    head: BlockHeader,
    validator_keys: Mapping[str, str],
) -> tuple[Proposal, list[CheckpointSignature]]:
    """Check ``fetched`` as the block after ``head`` (see the module docstring).

    Returns the proposal to execute and the certificate's valid signatures. Raises
    :class:`VerificationFailure` (``block_not_certified``, ``block_txs_mismatch``,
    ``block_does_not_extend``) or :class:`InvalidInput` for a malformed block.
    """
    header = fetched.header
    if header.chain != head.chain or header.height != head.height + 1 or header.prev != head.hash:
        raise VerificationFailure(
            "block_does_not_extend",
            f"The block from {fetched.source} does not follow block {head.height} of this chain.",
        )
    checkpoint = header.checkpoint()
    if not validator_keys:
        raise InvalidInput("no_validators", "No validators are known for this height.")
    good = checkpoint.valid_signers(fetched.signatures, validator_keys)
    quorum = checkpoint_quorum(len(validator_keys))
    if len(good) < quorum:
        raise VerificationFailure(
            "block_not_certified",
            f"Block {header.height} from {fetched.source} has {len(good)} valid validator "
            f"signatures; {quorum} are needed.",
        )
    ids = [t.id for t in fetched.txs]
    if ids != [i for i, _ in fetched.codes] or len(ids) != header.tx_count:
        raise VerificationFailure(
            "block_txs_mismatch",
            f"The transactions of block {header.height} from {fetched.source} "
            "do not match its listing.",
        )
    leaves = [leaf_input(i, header.height, header.time, code) for i, code in fetched.codes]
    if tx_root(leaves) != header.tx_root:
        raise VerificationFailure(
            "block_txs_mismatch",
            f"The transactions of block {header.height} from {fetched.source} "
            "do not rebuild its certified transaction root.",
        )
    proposal = Proposal(header.height, header.time, header.proposer, fetched.txs)
    return proposal, [s for s in fetched.signatures if s.validator in good]
