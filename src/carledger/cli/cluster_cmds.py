"""``carledger cluster up``: a local consortium (n etcd members + n nodes) on loopback."""

from __future__ import annotations

import signal
import tempfile
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from carledger.cli.main import JsonOpt, app, console, emit, run_guarded
from carledger.consortium.ordering import EtcdOrdering
from carledger.consortium.setup import ConsortiumOptions, build_ordering, prepare_home
from carledger.node.home import Home

__all__ = ["ConsortiumOptions", "cluster_app", "consortium_ordering"]

cluster_app = typer.Typer(
    help="A local consortium: etcd members and nodes of several organisations on loopback.",
    no_args_is_help=True,
)
app.add_typer(cluster_app, name="cluster")


@cluster_app.command("up")
@run_guarded
def cluster_up(
    nodes: Annotated[int, typer.Option("--nodes", "-n", min=1, max=7, help="Organisations.")] = 4,
    directory: Annotated[
        Path | None,
        typer.Option("--dir", help="Where the cluster lives (reused if it exists; default: temp)."),
    ] = None,
    chain_id: Annotated[str, typer.Option(help="Chain id of a new cluster.")] = "local-consortium",
    as_json: JsonOpt = False,
) -> None:
    """Start n etcd members and n nodes (one per organisation) until Ctrl-C or SIGTERM."""
    from carledger.consortium.local import LocalCluster

    root = directory or Path(tempfile.mkdtemp(prefix="carledger-cluster-"))
    cluster = LocalCluster(root, nodes, chain_id)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        del signum, frame
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with console.status(f"starting {nodes} etcd members and {nodes} nodes in {root}..."):
            cluster.up()
        members = [
            {
                "validator": f"node-{i}",
                "org": f"org-{i}",
                "url": cluster.node_url(i),
                "admin_key": str(root / "keys" / f"org-{i}-admin.key"),
            }
            for i in range(1, cluster.n + 1)
        ]
        info = {
            "dir": str(root),
            "chain_id": cluster.chain_id,
            "etcd": cluster.etcd_urls,
            "nodes": members,
        }

        def human() -> None:
            console.print(f"consortium [bold]{cluster.chain_id}[/] in {root}")
            for node in members:
                console.print(f"  {node['validator']} ({node['org']}): {node['url']}/")
            console.print(f"  etcd: {', '.join(cluster.etcd_urls)}")
            console.print("Ctrl-C stops everything.")

        emit(info, as_json, human)
        reported: set[str] = set()
        while not stop.wait(1.0):
            # A member that stops is reported, not restarted: the rest keeps running,
            # which is how a consortium behaves when one organisation's server fails.
            for proc in [*cluster.nodes.values(), *cluster.etcd.values()]:
                if not proc.alive() and proc.name not in reported:
                    reported.add(proc.name)
                    console.print(
                        f"[yellow]{proc.name} stopped[/] (log: {root / 'logs' / proc.name}.log)"
                    )
    finally:
        cluster.down()
        for s, handler in previous.items():
            signal.signal(s, handler)
        if not as_json:
            console.print("cluster stopped")


# --- options of ``carledger up --ordering etcd`` (declared here, used by node_cmds.up) ---

EtcdOpt = Annotated[
    str | None,
    typer.Option(help="etcd: the members' client URLs, comma-separated (own member first)."),
]
GenesisOpt = Annotated[
    Path | None, typer.Option(help="etcd: the chain's genesis.json (creates --data if new).")
]
NodeKeyOpt = Annotated[
    Path | None,
    typer.Option(
        help="etcd, new --data: this validator's key (passphrase: CARLEDGER_NODE_PASSPHRASE)."
    ),
]
ValidatorOpt = Annotated[
    str | None, typer.Option(help="etcd, new --data: validator id, if not in the genesis.")
]
AdvertiseOpt = Annotated[
    str | None, typer.Option(help="etcd: this node's API URL as peers reach it.")
]
PeersOpt = Annotated[
    str | None, typer.Option(help="etcd: more peer API URLs to catch up from, comma-separated.")
]
PrefixOpt = Annotated[
    str | None, typer.Option(help="etcd: key prefix (default /carledger/<chain id>/).")
]
RetainOpt = Annotated[
    int, typer.Option(min=0, help="etcd: blocks kept in etcd below the slowest live node.")
]
CacertOpt = Annotated[
    Path | None,
    typer.Option(envvar="CARLEDGER_ETCD_CACERT", help="etcd TLS: CA of the members (https://)."),
]
CertOpt = Annotated[
    Path | None, typer.Option(envvar="CARLEDGER_ETCD_CERT", help="etcd TLS: client certificate.")
]
KeyOpt = Annotated[
    Path | None, typer.Option(envvar="CARLEDGER_ETCD_KEY", help="etcd TLS: client key.")
]


def consortium_ordering(home: Home, options: ConsortiumOptions) -> EtcdOrdering:
    """The ordering of ``carledger up --ordering etcd``; creates ``home`` on first start."""
    prepare_home(home, options)
    return build_ordering(options)
