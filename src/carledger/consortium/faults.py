"""TEST-ONLY fault injection: make one consortium node misbehave on purpose.

``CARLEDGER_TEST_FAULT`` selects the misbehaviour of the node it is set for. The
consortium tests use it to show that each kind of faulty node is detected and never
counted toward a certificate. Never set it in a deployment: honest nodes will
(correctly) treat the node as faulty.

``alter-rule:<record type>``
    This node's handler of that record type writes one extra state entry
    (``fault/<tx id>``) for every accepted record. Its state root then differs from
    every honest node's from the first such record on: it declares itself diverged.
``sign-wrong-root``
    The node executes honestly, but the checkpoint signature it publishes is over a
    state root with one bit flipped: honest nodes report it as a dissenter.
``equivocate``
    The node publishes its honest checkpoint signature and then, for the same
    height, a signature over a different checkpoint: honest nodes that see both
    report it as equivocating and drop its signatures from their certificates.
``forge-served-block``
    The node's API serves peers that catch up each block's transactions without its
    last one (a censoring peer): the catching-up node refuses the block, says which
    peer served it, and takes the block from another peer.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any

from carledger.crypto.keys import SigningKey
from carledger.errors import InvalidInput
from carledger.ledger.contracts import BlockContext, ContractRegistry, Effects, StateView, TxContext

from .layout import SignedCheckpoint

__all__ = ["FAULT_ENV", "apply_test_fault", "published_checkpoints"]

FAULT_ENV = "CARLEDGER_TEST_FAULT"
SIGNATURE_FAULTS = frozenset({"sign-wrong-root", "equivocate"})

log = logging.getLogger(__name__)


def _spec(spec: str | None) -> str:
    return (os.environ.get(FAULT_ENV) if spec is None else spec) or ""


def apply_test_fault(registry: ContractRegistry, spec: str | None = None) -> bool:
    """Apply the fault named by ``spec`` (default: the environment); True if one is active.

    Raises :class:`InvalidInput` (``invalid_test_fault``) for an unknown fault.
    """
    spec = _spec(spec)
    if not spec:
        return False
    kind, _, type_ = spec.partition(":")
    if kind == "alter-rule" and type_ in registry:
        _alter_rule(registry, type_)
    elif spec == "forge-served-block":
        _forge_served_blocks()
    elif spec not in SIGNATURE_FAULTS:
        raise InvalidInput("invalid_test_fault", f"Unknown {FAULT_ENV} value {spec!r}.")
    log.warning("TEST FAULT ACTIVE: %s", spec)
    return True


def _alter_rule(registry: ContractRegistry, type_: str) -> None:
    contract = registry.get(type_)
    honest = contract.handler

    def altered(state: StateView, tx: TxContext, ctx: BlockContext) -> Effects:
        effects = honest(state, tx, ctx)
        return Effects(
            writes={**effects.writes, f"fault/{tx.id}": {"height": ctx.height}},
            vins=effects.vins,
        )

    # The registry has no replace operation on purpose; this test hook reaches in.
    registry._contracts[type_] = dataclasses.replace(contract, handler=altered)


def _forge_served_blocks() -> None:
    # The API looks the view up on the module at every request; this test hook swaps it.
    from carledger.node import views

    honest = views.block_transactions_view

    def forged(ledger: Any, height: int) -> dict[str, Any]:
        view = honest(ledger, height)
        view["transactions"] = view["transactions"][:-1]
        return view

    views.block_transactions_view = forged


def published_checkpoints(
    signed: SignedCheckpoint, key: SigningKey, spec: str | None = None
) -> list[SignedCheckpoint]:
    """What this validator publishes for its checkpoint: ``[signed]`` unless a signature
    fault is active (then a forged checkpoint instead of, or after, the honest one)."""
    spec = _spec(spec)
    if spec not in SIGNATURE_FAULTS:
        return [signed]
    honest = signed.checkpoint
    root = bytearray.fromhex(honest.state_root)
    root[0] ^= 0x01
    wrong = dataclasses.replace(honest, state_root=root.hex())
    forged = SignedCheckpoint(wrong, wrong.sign(signed.signature.validator, key))
    return [forged] if spec == "sign-wrong-root" else [signed, forged]
