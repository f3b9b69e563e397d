"""``carledger up``: run a node (API + web pages) until SIGINT/SIGTERM."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from carledger.cli import cluster_cmds as cc
from carledger.cli.main import DataOpt, app, console, run_guarded
from carledger.errors import InvalidInput, StorageError
from carledger.ledger.ledger import Ledger
from carledger.node.home import Home, env_passphrase
from carledger.node.service import Node, NodeSettings
from carledger.store.sqlite import SQLiteStore


class _Server:
    """uvicorn's server, minus re-raising SIGINT/SIGTERM after its graceful shutdown.

    uvicorn re-raises a captured signal once it has stopped serving, which would end
    the process before the node commits what it acknowledged. Here the signal only
    asks the server to stop; ``up`` then stops the node and exits normally.
    """

    def __new__(cls, config: Any) -> Any:
        import uvicorn

        class Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                previous = {
                    sig: signal.signal(sig, self.handle_exit)
                    for sig in (signal.SIGINT, signal.SIGTERM)
                }
                try:
                    yield
                finally:
                    for sig, handler in previous.items():
                        signal.signal(sig, handler)

        return Server(config)


def _audit_or_refuse(ledger: Ledger) -> None:
    from carledger.audit import audit_store
    from carledger.chain import registry_for

    store = ledger.store
    assert isinstance(store, SQLiteStore)
    with console.status("auditing the store..."):
        signer = ledger.identity.validator if ledger.identity is not None else None
        report = audit_store(store, registry_for, genesis=ledger.genesis, signer=signer)
    if not report.ok:
        store.close()
        raise StorageError(
            "store_audit_failed",
            f"The store failed its audit at {report.findings[0]}; it was altered or damaged. "
            "Restore it from a backup or re-sync it from peers.",
        )
    console.print(f"store audited: {report.blocks} blocks replay to the stored bytes")


@app.command()
@run_guarded
def up(
    data: DataOpt = Path("data/node"),
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    demo: Annotated[
        bool, typer.Option("--demo", help="On first start, create a demo chain with market data.")
    ] = False,
    demo_vehicles: Annotated[int, typer.Option(help="Vehicles in the demo data.")] = 300,
    demo_seed: Annotated[int, typer.Option(help="Seed of the demo data.")] = 7,
    ordering: Annotated[str, typer.Option(help="solo (one node) or etcd (consortium).")] = "solo",
    block_max_txs: Annotated[int, typer.Option(help="Cut a block at this many records.")] = 1000,
    block_interval_ms: Annotated[
        int, typer.Option(help="...or after this many milliseconds.")
    ] = 50,
    mempool: Annotated[int, typer.Option(help="Pending records before 503.")] = 50_000,
    check_workers: Annotated[
        int | None,
        typer.Option(
            help="Processes that decode submissions and check their schema and signatures "
            "(0: in the node's process; default: one less than the cores, at least one)."
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error.")] = "info",
    verify_store: Annotated[
        bool,
        typer.Option(
            "--verify-store",
            help="Before serving, audit the whole store as `carledger verify` does; "
            "refuse to start on any finding.",
        ),
    ] = False,
    etcd: cc.EtcdOpt = None,
    genesis: cc.GenesisOpt = None,
    node_key: cc.NodeKeyOpt = None,
    validator: cc.ValidatorOpt = None,
    advertise_url: cc.AdvertiseOpt = None,
    peers: cc.PeersOpt = None,
    etcd_prefix: cc.PrefixOpt = None,
    etcd_retain_blocks: cc.RetainOpt = 1000,
    etcd_cacert: cc.CacertOpt = None,
    etcd_cert: cc.CertOpt = None,
    etcd_key: cc.KeyOpt = None,
) -> None:
    """Start a node: the API (OpenAPI at /docs) and the web pages, over SQLite in --data."""
    import uvicorn

    from carledger.api.app import create_app

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if check_workers is not None and not 0 <= check_workers <= 64:
        raise InvalidInput("invalid_option", "--check-workers is 0 to 64.")
    if ordering not in ("solo", "etcd"):
        raise InvalidInput(
            "unsupported_ordering", f"Ordering {ordering!r} is unknown; use solo or etcd."
        )
    home = Home(data)
    consortium = None
    if ordering == "etcd":
        consortium = cc.consortium_ordering(
            home,
            cc.ConsortiumOptions(
                etcd=etcd or "",
                advertise_url=advertise_url or f"http://{host}:{port}",
                genesis=genesis,
                node_key=node_key,
                validator=validator,
                prefix=etcd_prefix,
                retain_blocks=etcd_retain_blocks,
                block_max_txs=block_max_txs,
                block_interval_ms=block_interval_ms,
                cacert=etcd_cacert,
                cert=etcd_cert,
                key=etcd_key,
                peers=tuple(p for p in (peers or "").split(",") if p),
            ),
        )
    if demo and not home.exists():
        from carledger.node.demo import create_demo

        with console.status("creating the demo chain..."):
            # The demo's history ends yesterday (Korean time), so what is for sale is current.
            today = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=9)).date()
            summary = create_demo(home, vehicles=demo_vehicles, seed=demo_seed, ending_by=today)
        console.print(
            f"demo chain ready: {summary['vehicles']} vehicles, {summary['records']} records, "
            f"{summary['blocks']} blocks"
        )
    ledger = home.open_ledger(env_passphrase(), behind_ok=consortium is not None)
    if verify_store:
        _audit_or_refuse(ledger)
    home.record_head(ledger.head)
    ledger.on_commit(lambda block: home.record_head(block.header))
    from carledger.chain import registry_for
    from carledger.node.prechecks import CheckPool

    # One core stays with the block thread; on 2 cores 1, 2 and 3 workers measured alike.
    workers = max(1, (os.cpu_count() or 1) - 1) if check_workers is None else check_workers
    node = Node(
        ledger,
        NodeSettings(
            block_max_txs=block_max_txs,
            block_interval_ms=block_interval_ms,
            mempool_capacity=mempool,
            proposer=ledger.identity.validator if ledger.identity else "solo",
        ),
        ordering=consortium,
        checks=CheckPool(ledger.genesis, registry_for, workers) if workers else None,
    )
    node.start()
    console.print(
        f"carledger node on chain [bold]{ledger.chain_id}[/] at height {ledger.height}: "
        f"http://{host}:{port}/  (API docs at /docs)"
    )
    try:
        server = _Server(
            uvicorn.Config(
                create_app(node),
                host=host,
                port=port,
                log_level=log_level,
                access_log=False,
                timeout_graceful_shutdown=5,
            )
        )
        server.run()
    finally:
        node.stop()
        node.events.close()
        ledger.store.close()
        console.print(f"stopped at height {ledger.height}; every accepted record is on disk")
