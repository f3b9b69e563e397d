"""TEST-ONLY fault injection: make one node execute a rule differently.

``CARLEDGER_TEST_FAULT=alter-rule:<record type>`` makes this node's handler of that
record type write one extra state entry (``fault/<tx id>``) for every accepted
record. Its state root then differs from every honest node's from the first such
record on, which is what the consortium tests use to show that a divergent node is
detected and left out of certificates. Never set it in a deployment: the node will
(correctly) declare itself diverged.
"""

from __future__ import annotations

import dataclasses
import logging
import os

from carledger.errors import InvalidInput
from carledger.ledger.contracts import BlockContext, ContractRegistry, Effects, StateView, TxContext

__all__ = ["FAULT_ENV", "apply_test_fault"]

FAULT_ENV = "CARLEDGER_TEST_FAULT"

log = logging.getLogger(__name__)


def apply_test_fault(registry: ContractRegistry, spec: str | None = None) -> bool:
    """Apply the fault named by ``spec`` (default: the environment); True if one was applied."""
    spec = os.environ.get(FAULT_ENV) if spec is None else spec
    if not spec:
        return False
    kind, _, type_ = spec.partition(":")
    if kind != "alter-rule" or type_ not in registry:
        raise InvalidInput("invalid_test_fault", f"Unknown {FAULT_ENV} value {spec!r}.")
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
    log.warning("TEST FAULT ACTIVE: %s executes differently on this node", type_)
    return True
