"""Consortium mode: several organisations' nodes ordered through an etcd cluster.

- :mod:`.etcd`: a small client of etcd's v3 JSON gateway, with member failover;
- :mod:`.layout`: the keys a chain keeps in etcd and what is stored under them;
- :mod:`.ordering`: :class:`EtcdOrdering`, the node's ordering, wiring the roles:
  :mod:`.submit` (pending batches), :mod:`.session` (lease, election, compaction),
  :mod:`.pending` and :mod:`.leader` (cutting blocks), :mod:`.apply` (executing
  them), :mod:`.checkpoints` (signatures and divergence), :mod:`.metrics`;
- :mod:`.certify`: checkpoint signatures, certification and divergence;
- :mod:`.catchup`: fetching blocks etcd no longer keeps from peers, checked against
  their certificates;
- :mod:`.local`: n etcd members and n nodes on loopback (``carledger cluster up``);
- :mod:`.faults`: test-only fault injection.

``docs/adr/0006-consortium-ordering.md`` explains the design and the fault model,
``docs/adr/0011-consortium-block-cutting.md`` how blocks are cut;
``docs/deploy.md`` how to run it on several machines.
"""

from carledger.consortium.ordering import EtcdOrdering, EtcdSettings

__all__ = ["EtcdOrdering", "EtcdSettings"]
