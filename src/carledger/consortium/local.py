"""A consortium on one machine: n etcd members and n nodes of n organisations on loopback.

``carledger cluster up`` and the cluster integration tests use :class:`LocalCluster`.
Everything lives under one directory::

    DIR/cluster.json        chain id, ports of every etcd member and node
    DIR/genesis.json        the shared genesis (org-1..org-n, validators node-1..node-n)
    DIR/keys/org-<i>-admin.key   each organisation's admin key (unencrypted: a local
                                 playground, never a deployment)
    DIR/etcd-<i>/           etcd member data
    DIR/node-<i>/           node data (genesis.json, node.json, node.key, ledger.db)
    DIR/logs/               etcd-<i>.log and node-<i>.log

Running it again on the same directory restarts the same consortium.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from carledger.crypto.keys import SigningKey
from carledger.errors import InvalidInput, OrderingError
from carledger.ledger.genesis import GENESIS_FORMAT, Genesis
from carledger.node.home import Home, write_key_file

__all__ = ["ETCD_BINARY", "LocalCluster", "free_port"]

ETCD_BINARY = os.environ.get("CARLEDGER_ETCD_BINARY", "/usr/bin/etcd")

_ORG_ROLES = [
    ("Seoul Vehicle Registry", ["registry", "market_operator", "police"]),
    ("Used Car Dealers Association", ["dealer", "market_operator"]),
    ("Korea Inspection Centre", ["inspector", "repair_shop"]),
    ("Mutual Insurance", ["insurer", "lender", "rental"]),
    ("Recycling Cooperative", ["scrapyard", "repair_shop"]),
    ("Automaker", ["manufacturer"]),
    ("Leasing Company", ["rental", "lender"]),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: IO[bytes]

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)
        self.log.close()
        return int(self.popen.returncode)


@dataclass
class LocalCluster:
    root: Path
    n: int = 4
    chain_id: str = "local-consortium"
    node_args: Sequence[str] = ()
    etcd: dict[int, Proc] = field(default_factory=dict)
    nodes: dict[int, Proc] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    # -- creation ------------------------------------------------------------------------

    def create(self) -> None:
        """Write the genesis, keys, node homes and ports (once; a later call reloads them)."""
        cfg_path = self.root / "cluster.json"
        if cfg_path.exists():
            self.config = json.loads(cfg_path.read_text())
            self.n = len(self.config["nodes"])
            self.chain_id = self.config["chain_id"]
            return
        if self.n < 1:
            raise InvalidInput("invalid_option", "A cluster has at least one node.")
        self.root.mkdir(parents=True, exist_ok=True)
        admins = [SigningKey.generate() for _ in range(self.n)]
        node_keys = [SigningKey.generate() for _ in range(self.n)]
        orgs = []
        for i in range(self.n):
            name, roles = _ORG_ROLES[i % len(_ORG_ROLES)]
            orgs.append(
                {
                    "id": f"org-{i + 1}",
                    "name": name if i < len(_ORG_ROLES) else f"{name} {i + 1}",
                    "roles": roles,
                    "admins": [admins[i].public_hex],
                }
            )
            write_key_file(self.root / "keys" / f"org-{i + 1}-admin.key", admins[i], None)
        doc = {
            "format": GENESIS_FORMAT,
            "chain_id": self.chain_id,
            "created": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "orgs": orgs,
            "validators": [
                {"id": f"node-{i + 1}", "org": f"org-{i + 1}", "key": node_keys[i].public_hex}
                for i in range(self.n)
            ],
            "markets": [
                {
                    "id": "janganpyeong",
                    "name": "Janganpyeong market",
                    "operator": "org-1",
                    "gated": False,
                }
            ],
            "policy": {"org_admission": {"num": 2, "den": 3}},
        }
        genesis = Genesis.from_dict(doc)
        (self.root / "genesis.json").write_bytes(genesis.bytes)
        for i in range(self.n):
            Home(self.root / f"node-{i + 1}").initialise(
                genesis, f"node-{i + 1}", node_keys[i], None
            )
        self.config = {
            "chain_id": self.chain_id,
            "token": f"{self.chain_id}-{os.getpid()}-{time.time_ns()}",
            "etcd": [
                {"name": f"e{i + 1}", "client": free_port(), "peer": free_port()}
                for i in range(self.n)
            ],
            "nodes": [{"validator": f"node-{i + 1}", "port": free_port()} for i in range(self.n)],
        }
        cfg_path.write_text(json.dumps(self.config, indent=2) + "\n")

    # -- addresses -------------------------------------------------------------------------

    @property
    def etcd_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{m['client']}" for m in self.config["etcd"]]

    def node_url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.config['nodes'][i - 1]['port']}"

    def node_data(self, i: int) -> Path:
        return self.root / f"node-{i}"

    def admin_key(self, org: int) -> SigningKey:
        return SigningKey.from_pem((self.root / "keys" / f"org-{org}-admin.key").read_bytes(), None)

    def _log(self, name: str) -> IO[bytes]:
        (self.root / "logs").mkdir(parents=True, exist_ok=True)
        return (self.root / "logs" / f"{name}.log").open("ab")

    def log_text(self, name: str) -> str:
        path = self.root / "logs" / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # -- etcd ------------------------------------------------------------------------------

    def start_etcd(self, i: int) -> Proc:
        if not Path(ETCD_BINARY).exists():
            raise OrderingError(
                "etcd_missing",
                f"{ETCD_BINARY} is not installed: apt-get install etcd-server "
                "(or set CARLEDGER_ETCD_BINARY).",
            )
        members = self.config["etcd"]
        me = members[i - 1]
        cluster = ",".join(f"{m['name']}=http://127.0.0.1:{m['peer']}" for m in members)
        cmd = [
            ETCD_BINARY,
            "--name", me["name"],
            "--data-dir", str(self.root / f"etcd-{i}"),
            "--listen-client-urls", f"http://127.0.0.1:{me['client']}",
            "--advertise-client-urls", f"http://127.0.0.1:{me['client']}",
            "--listen-peer-urls", f"http://127.0.0.1:{me['peer']}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{me['peer']}",
            "--initial-cluster", cluster,
            "--initial-cluster-token", self.config["token"],
            "--initial-cluster-state", "new",
            "--log-level", "warn",
            "--logger", "zap",
        ]  # fmt: skip
        log = self._log(f"etcd-{i}")
        proc = Proc(f"etcd-{i}", subprocess.Popen(cmd, stdout=log, stderr=log), log)
        self.etcd[i] = proc
        return proc

    def wait_etcd(self, timeout: float = 60) -> None:
        """Until the etcd cluster answers a write (it has a leader and a quorum)."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            for url in [self.etcd_urls[i - 1] for i in self.etcd if self.etcd[i].alive()]:
                try:
                    r = httpx.post(
                        f"{url}/v3/kv/put", json={"key": "X19yZWFkeQ==", "value": "MQ=="}, timeout=2
                    )
                    if r.status_code == 200:
                        return
                    last = r.text[:200]
                except httpx.HTTPError as exc:
                    last = repr(exc)
            time.sleep(0.1)
        raise OrderingError("etcd_not_ready", f"etcd did not become ready: {last}")

    # -- nodes -----------------------------------------------------------------------------

    def node_command(self, i: int, *extra: str) -> list[str]:
        return [
            sys.executable, "-m", "carledger", "up",
            "--data", str(self.node_data(i)),
            "--host", "127.0.0.1",
            "--port", str(self.config["nodes"][i - 1]["port"]),
            "--ordering", "etcd",
            "--etcd", ",".join(self._etcd_order(i)),
            "--log-level", "warning",
            *self.node_args,
            *extra,
        ]  # fmt: skip

    def _etcd_order(self, i: int) -> list[str]:
        """Every member, this node's own first (as each organisation would configure it)."""
        urls = self.etcd_urls
        k = (i - 1) % len(urls)
        return urls[k:] + urls[:k]

    def start_node(self, i: int, *extra: str, env: dict[str, str] | None = None) -> Proc:
        log = self._log(f"node-{i}")
        proc = Proc(
            f"node-{i}",
            subprocess.Popen(
                self.node_command(i, *extra),
                stdout=log,
                stderr=log,
                env={**os.environ, "COLUMNS": "200", **(env or {})},
            ),
            log,
        )
        self.nodes[i] = proc
        return proc

    def wait_node(self, i: int, timeout: float = 120) -> None:
        """Until node ``i`` answers ``/healthz`` (any status: it is serving)."""
        deadline = time.monotonic() + timeout
        url = self.node_url(i)
        while time.monotonic() < deadline:
            proc = self.nodes.get(i)
            if proc is not None and not proc.alive():
                raise OrderingError(
                    "node_exited", f"node-{i} exited:\n{self.log_text(f'node-{i}')[-3000:]}"
                )
            try:
                httpx.get(f"{url}/healthz", timeout=2)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise OrderingError("node_not_ready", f"node-{i} did not start within {timeout} s.")

    def add_node(self, validator: str) -> int:
        """Reserve a port and a data directory for one more node (no etcd member); its index."""
        self.config["nodes"].append({"validator": validator, "port": free_port()})
        (self.root / "cluster.json").write_text(json.dumps(self.config, indent=2) + "\n")
        return len(self.config["nodes"])

    # -- the whole consortium ----------------------------------------------------------------

    def up(self) -> None:
        self.create()
        for i in range(1, self.n + 1):
            self.start_etcd(i)
        self.wait_etcd()
        for i in range(1, self.n + 1):
            self.start_node(i)
        for i in range(1, self.n + 1):
            self.wait_node(i)

    def down(self) -> None:
        """Stop every node, then every etcd member (SIGTERM, then SIGKILL after a grace)."""
        for proc in self.nodes.values():
            if proc.alive():
                proc.popen.send_signal(signal.SIGTERM)
        for proc in self.nodes.values():
            proc.stop()
        for proc in self.etcd.values():
            proc.stop()
