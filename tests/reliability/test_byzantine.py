"""Byzantine consortium members: each kind of faulty node is detected and never counted.

One consortium of four (quorum 3) goes through three phases
(``CARLEDGER_TEST_FAULT``, test-only, see ``carledger.consortium.faults``):

1. node-4 signs a wrong state root: the honest three certify without it and name it
   (``carledger_divergent_validator``);
2. node-1 serves forged blocks (each one's last transaction dropped) to a peer that
   catches up: node-4, restarted after etcd dropped the blocks it missed, refuses
   them, names node-1 (``carledger_catchup_refused_blocks_total``) and takes each
   block from an honest peer, checked against its certificate;
3. node-4 equivocates (signs its checkpoint, then a different one for the same
   height): the honest three name it (``carledger_equivocating_validator``) and no
   certificate they hold from then on contains its signature.

The consortium's certificates stay valid throughout (three honest signers), and every
node's store passes ``carledger verify`` at the end. A node that *executes*
differently (``alter-rule``) is ``test_divergent_node_is_detected_and_excluded`` in
``tests/cluster/test_consortium.py``. The certifier's bookkeeping is checked on its
own first.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from cluster_support import (
    all_committed,
    check_stores,
    converged,
    enrol_txs,
    etcd_client,
    health,
    metric,
    settled,
    submit,
    wait_for,
)
from reliability_support import report_figures

from carledger.consortium.certify import Certifier
from carledger.consortium.etcd import prefix_end
from carledger.consortium.faults import FAULT_ENV, published_checkpoints
from carledger.consortium.layout import ChainKeys, SignedCheckpoint
from carledger.consortium.local import LocalCluster
from carledger.crypto.keys import SigningKey
from carledger.ledger.block import Checkpoint

ALL = (1, 2, 3, 4)
HONEST = (1, 2, 3)
Make = Callable[..., LocalCluster]


# --- the certifier alone --------------------------------------------------------------------

KEYS = {f"node-{i}": SigningKey(bytes([i]) * 32) for i in range(1, 5)}
PUB = {v: k.public_hex for v, k in KEYS.items()}


def _checkpoint(height: int, root: str = "aa") -> Checkpoint:
    return Checkpoint("c", height, "11" * 32, root * 32, height, "22" * 32)


def _signed(validator: str, checkpoint: Checkpoint) -> SignedCheckpoint:
    return SignedCheckpoint(checkpoint, checkpoint.sign(validator, KEYS[validator]))


def test_an_equivocator_is_named_and_never_counted() -> None:
    certifier = Certifier(lambda h: PUB)
    honest = _checkpoint(5)
    certifier.own(honest)
    for v in ("node-1", "node-2", "node-4"):
        assert certifier.add(_signed(v, honest))
    assert certifier.verdict(5).signers == {"node-1", "node-2", "node-4"}
    # node-4 now signs another checkpoint at the same height: both are the evidence.
    other = published_checkpoints(_signed("node-4", honest), KEYS["node-4"], "equivocate")
    assert [s.checkpoint == honest for s in other] == [True, False]
    assert not certifier.add(other[1])
    assert set(certifier.equivocators) == {"node-4"}
    verdict = certifier.verdict(5)
    assert not verdict.is_certified and verdict.signers == {"node-1", "node-2"}
    assert certifier.add(_signed("node-3", honest))
    assert certifier.verdict(5).signers == {"node-1", "node-2", "node-3"}
    # ...and none of its signatures counts at any later height either.
    assert not certifier.add(_signed("node-4", _checkpoint(6)))


def test_a_wrong_root_signer_is_a_dissenter() -> None:
    certifier = Certifier(lambda h: PUB)
    honest = _checkpoint(7)
    certifier.own(honest)
    [wrong] = published_checkpoints(_signed("node-4", honest), KEYS["node-4"], "sign-wrong-root")
    assert wrong.checkpoint.state_root != honest.state_root
    for v in HONEST:
        certifier.add(_signed(f"node-{v}", honest))
    assert certifier.add(wrong)
    verdict = certifier.verdict(7)
    assert verdict.is_certified
    assert verdict.signers == {"node-1", "node-2", "node-3"}
    assert verdict.dissenters == {"node-4"}


# --- a real consortium ------------------------------------------------------------------------


def _write_blocks(cluster: LocalCluster, via: int, count: int, tag: str) -> list[str]:
    ids = []
    for k in range(count):
        [wire] = enrol_txs(cluster, 1, org=2, tag=f"{tag}{k}-")
        r = submit(cluster.node_url(via), [wire], wait=True)
        assert r.status_code == 200, r.text
        ids.append(r.json()["id"])
    return ids


def _first_retained_block(cluster: LocalCluster) -> int | None:
    keys = ChainKeys.for_chain(cluster.chain_id)
    client = etcd_client(cluster)
    try:
        kvs = client.range(keys.blocks, prefix_end(keys.blocks), limit=1, keys_only=True).kvs
    finally:
        client.close()
    return keys.parse_log_key(kvs[0].key)[1] if kvs else None


def _signers(url: str, height: int) -> set[str] | None:
    cp = httpx.get(f"{url}/v1/blocks/{height}", timeout=5).json()["checkpoint"]
    return {s["validator"] for s in cp["signatures"]} if cp["certified"] else None


def _restart(cluster: LocalCluster, i: int, env: dict[str, str] | None) -> None:
    cluster.nodes[i].stop()
    cluster.start_node(i, env=env)
    cluster.wait_node(i)


@pytest.mark.integration
def test_forging_wrong_root_and_equivocating_nodes(consortium: Make) -> None:
    wrong_root = {FAULT_ENV: "sign-wrong-root"}
    cluster = consortium(
        4,
        "--etcd-retain-blocks",
        "2",
        env={1: {FAULT_ENV: "forge-served-block"}, 4: wrong_root},
    )
    url = {i: cluster.node_url(i) for i in ALL}
    figures: dict[str, Any] = {}

    # 1. node-4 signs wrong state roots: certified without it, and named.
    _write_blocks(cluster, 2, 3, "wrongroot")
    top = wait_for("all four to agree", lambda: converged(cluster, ALL, 3))
    for i in HONEST:
        name = 'carledger_divergent_validator{validator="node-4"}'
        wait_for(f"node-{i} to name node-4", lambda i=i, n=name: metric(url[i], n) == 1.0)
        for h in range(1, top + 1):
            signers = wait_for(f"block {h} certified", lambda i=i, h=h: _signers(url[i], h))
            assert signers == {"node-1", "node-2", "node-3"}, (i, h, signers)
    assert not health(url[4])["diverged"]  # it executes honestly; it only signs wrongly
    figures["wrong_root_heights"] = top

    # 2. node-1 forges the blocks it serves to node-4, which catches up from peers.
    cluster.nodes[4].stop(signal.SIGKILL)
    missed = _write_blocks(cluster, 2, 6, "missed")
    wait_for(
        "etcd to drop the blocks node-4 misses",
        lambda: (f := _first_retained_block(cluster)) is not None and f > top + 1,
        timeout=30,
    )
    cluster.start_node(4, env=wrong_root)
    cluster.wait_node(4)
    wait_for("node-4 to catch up", lambda: settled(cluster, ALL), timeout=60)
    assert all_committed(cluster, [4], missed)
    refused = metric(url[4], f'carledger_catchup_refused_blocks_total{{peer="{url[1]}"}}')
    fetched = metric(url[4], "carledger_catchup_blocks_total")
    assert refused is not None and refused >= 1, "node-4 did not refuse node-1's forged blocks"
    assert fetched is not None and fetched >= 1
    figures["forged_blocks_refused"] = int(refused)
    figures["blocks_fetched_from_honest_peers"] = int(fetched)

    # 3. node-4 equivocates: at its head (signed wrongly before, honestly now) and at
    # every new height.
    _restart(cluster, 4, {FAULT_ENV: "equivocate"})
    start = max(int(health(url[i])["height"]) for i in HONEST)
    _write_blocks(cluster, 3, 3, "equivocate")
    top = wait_for("the honest three to agree", lambda: converged(cluster, HONEST, start + 3))
    for i in HONEST:
        name = 'carledger_equivocating_validator{validator="node-4"}'
        wait_for(f"node-{i} to name node-4", lambda i=i, n=name: metric(url[i], n) == 1.0)
        for h in range(start, top + 1):
            wait_for(
                f"block {h} certified without node-4",
                lambda i=i, h=h: (s := _signers(url[i], h)) is not None and "node-4" not in s,
            )
    figures["equivocation_heights"] = top - start + 1
    for i in HONEST:
        assert health(url[i])["status"] == "ok"
    cluster.down()
    chain = check_stores(cluster, ALL)
    figures["height"] = len(chain) - 1
    report_figures("byzantine", figures)
