"""Certification: collecting validators' checkpoint signatures and judging them.

Each validator signs the checkpoint (chain, height, block hash, state root, log size,
log root) of every block it executes. For a height ``H``:

- the validators that count are those in force at ``H``: the validator set in the
  state after block ``H`` restricted to ``since <= H`` (``validator.add`` takes
  effect from the next height, ``validator.remove`` at once) — :class:`ValidatorHistory`
  records that set as each block is committed;
- a checkpoint is *certified* when a quorum of them (``checkpoint_quorum``: 2f+1 of
  3f+1) signed exactly that checkpoint;
- this node is *diverged* when a checkpoint other than its own is certified: its own
  execution disagrees with a quorum, so its state is not to be trusted;
- a validator that signed a different checkpoint than the certified one is a
  *dissenter*: its signature is left out of the certificate, and it is reported;
- a validator seen signing two different checkpoints at one height
  *equivocates*: both signatures are the evidence, and none of its signatures counts
  from then on (at any height) in this process.

:class:`Certifier` is pure bookkeeping (no I/O, no clock) so it is tested on its own.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from carledger.ledger.block import Checkpoint
from carledger.ledger.genesis import checkpoint_quorum

from .layout import SignedCheckpoint

__all__ = ["Certifier", "ValidatorHistory", "Verdict"]

PENDING = "pending"
CERTIFIED = "certified"
DIVERGED = "diverged"


class ValidatorHistory:
    """The validator set in force at each height, as far as this process has seen it.

    ``record(h, keys)`` is called after block ``h`` is committed with the set in force
    at ``h``. Heights before the first record use the first recorded set (a node that
    restarts knows the current set only; a set that changed before its restart is
    approximated by the later one, which only matters for signatures of old heights).
    """

    def __init__(self) -> None:
        self._heights: list[int] = []
        self._sets: list[dict[str, str]] = []

    def record(self, height: int, keys: Mapping[str, str]) -> None:
        keys = dict(keys)
        if self._sets and self._sets[-1] == keys:
            return
        if self._heights and height <= self._heights[-1]:
            # A re-record at or below the last change (restart): keep the history sorted.
            i = bisect.bisect_left(self._heights, height)
            del self._heights[i:], self._sets[i:]
        self._heights.append(height)
        self._sets.append(keys)

    def at(self, height: int) -> dict[str, str]:
        if not self._sets:
            return {}
        i = bisect.bisect_right(self._heights, height) - 1
        return dict(self._sets[max(i, 0)])


@dataclass(frozen=True, slots=True)
class Verdict:
    height: int
    state: str  # pending | certified | diverged
    quorum: int
    certified: Checkpoint | None = None
    signers: frozenset[str] = field(default_factory=frozenset)
    dissenters: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_certified(self) -> bool:
        return self.state == CERTIFIED

    @property
    def is_diverged(self) -> bool:
        return self.state == DIVERGED


class Certifier:
    """Signed checkpoints by height and validator; verdicts against this node's own."""

    def __init__(self, keys_at: Callable[[int], Mapping[str, str]]) -> None:
        self._keys_at = keys_at
        self._own: dict[int, Checkpoint] = {}
        self._claims: dict[int, dict[str, SignedCheckpoint]] = {}
        #: validator -> the two signed checkpoints that show it equivocating
        self.equivocators: dict[str, tuple[SignedCheckpoint, SignedCheckpoint]] = {}

    def own(self, checkpoint: Checkpoint) -> None:
        """This node's checkpoint at ``checkpoint.height``."""
        self._own[checkpoint.height] = checkpoint

    def own_at(self, height: int) -> Checkpoint | None:
        return self._own.get(height)

    def add(self, signed: SignedCheckpoint) -> bool:
        """Record a signed checkpoint if its validator is in force at its height, it
        verifies and the validator is not known to equivocate.

        A valid signature over a checkpoint other than the one the same validator
        signed at that height before makes it an equivocator (see :attr:`equivocators`).
        """
        height = signed.checkpoint.height
        validator = signed.signature.validator
        key = self._keys_at(height).get(validator)
        if key is None or validator in self.equivocators or not signed.verifies(key):
            return False
        claims = self._claims.setdefault(height, {})
        earlier = claims.get(validator)
        if earlier is not None and earlier.checkpoint != signed.checkpoint:
            self.equivocators[validator] = (earlier, signed)
            for at in self._claims.values():
                at.pop(validator, None)
            return False
        claims[validator] = signed
        return True

    def known(self, signed: SignedCheckpoint) -> bool:
        """Whether exactly this signed checkpoint is recorded (it verified when added)."""
        claims = self._claims.get(signed.checkpoint.height)
        return claims is not None and claims.get(signed.signature.validator) == signed

    def claims(self, height: int) -> dict[str, SignedCheckpoint]:
        return dict(self._claims.get(height, {}))

    def verdict(self, height: int) -> Verdict:
        keys = self._keys_at(height)
        quorum = checkpoint_quorum(len(keys)) if keys else 1
        groups: dict[Checkpoint, set[str]] = {}
        for validator, signed in self._claims.get(height, {}).items():
            if validator in keys and validator not in self.equivocators:
                groups.setdefault(signed.checkpoint, set()).add(validator)
        own = self._own.get(height)
        winner = next((cp for cp, who in groups.items() if len(who) >= quorum), None)
        reference = winner or own
        dissenters = frozenset(
            v
            for cp, who in groups.items()
            if reference is not None and cp != reference
            for v in who
        )
        if winner is None:
            agree = frozenset(groups.get(own, set())) if own else frozenset()
            return Verdict(height, PENDING, quorum, None, agree, dissenters)
        state = CERTIFIED if own is None or winner == own else DIVERGED
        return Verdict(height, state, quorum, winner, frozenset(groups[winner]), dissenters)

    def forget_below(self, height: int) -> None:
        for h in [h for h in self._own if h < height]:
            del self._own[h]
        for h in [h for h in self._claims if h < height]:
            del self._claims[h]

    def heights(self) -> list[int]:
        return sorted(set(self._claims) | set(self._own))
