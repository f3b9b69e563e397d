"""``carledger init``, ``keys new`` and ``verify``: creating and auditing a node."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from carledger.audit import audit_store
from carledger.chain import registry_for
from carledger.cli.main import (
    DataOpt,
    JsonOpt,
    app,
    console,
    emit,
    keys_app,
    read_passphrase,
    run_guarded,
)
from carledger.crypto.keys import SigningKey
from carledger.errors import InvalidInput, StorageError
from carledger.ledger.genesis import GENESIS_FORMAT, Genesis
from carledger.node.home import Home, env_passphrase, write_key_file
from carledger.store.sqlite import SQLiteStore


@keys_app.command("new")
@run_guarded
def keys_new(
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the key (PEM).")],
    no_encrypt: Annotated[
        bool, typer.Option("--no-encrypt", help="Store the key unencrypted (not advised).")
    ] = False,
    passphrase_file: Annotated[
        Path | None, typer.Option(help="File holding the passphrase.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a new Ed25519 key, encrypted with a passphrase (PKCS#8), and print its public key."""
    if out.exists():
        raise InvalidInput("file_exists", f"{out} exists; keys are never overwritten.")
    passphrase = None if no_encrypt else read_passphrase(passphrase_file, confirm=True)
    key = SigningKey.generate()
    write_key_file(out, key, passphrase)
    emit(
        {"public_key": key.public_hex, "file": str(out), "encrypted": passphrase is not None},
        as_json,
        lambda: console.print(
            f"public key [bold]{key.public_hex}[/]\nwritten to {out}"
            + ("" if passphrase else " (unencrypted)")
        ),
    )


@app.command()
@run_guarded
def init(
    data: DataOpt = Path("data/node"),
    chain_id: Annotated[str, typer.Option(help="Chain id for a new genesis.")] = "carledger",
    org: Annotated[
        str, typer.Option(help="Founding organisation id for a new genesis.")
    ] = "registry",
    org_name: Annotated[str, typer.Option(help="Its display name.")] = "Vehicle Registry",
    roles: Annotated[str, typer.Option(help="Comma-separated roles the organisation holds.")] = (
        "registry,market_operator,police"
    ),
    genesis: Annotated[
        Path | None, typer.Option(help="Join an existing chain: its genesis.json.")
    ] = None,
    validator: Annotated[str, typer.Option(help="This node's validator id.")] = "node-1",
    node_key: Annotated[
        Path | None, typer.Option(help="With --genesis: this validator's key file.")
    ] = None,
    no_encrypt: Annotated[bool, typer.Option("--no-encrypt", help="Unencrypted keys.")] = False,
    passphrase_file: Annotated[
        Path | None, typer.Option(help="File holding the passphrase.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a node's data directory: a new single-organisation chain, or join one (--genesis)."""
    home = Home(data)
    if genesis is not None:
        if node_key is None:
            raise InvalidInput("missing_option", "--genesis needs --node-key (this node's key).")
        passphrase = None if no_encrypt else read_passphrase(passphrase_file, what="node key")
        key = SigningKey.from_pem(node_key.read_bytes(), passphrase)
        # The node key stays encrypted at rest: with CARLEDGER_NODE_PASSPHRASE, or else
        # with the passphrase of the file it came from (--no-encrypt: unencrypted).
        home.initialise(Genesis.load(genesis), validator, key, env_passphrase() or passphrase)
        emit(
            {"data": str(data), "validator": validator},
            as_json,
            lambda: console.print(f"node {validator} ready in {data}"),
        )
        return
    passphrase = (
        None if no_encrypt else read_passphrase(passphrase_file, confirm=True, what="admin key")
    )
    admin = SigningKey.generate()
    node = SigningKey.generate()
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    doc = {
        "format": GENESIS_FORMAT,
        "chain_id": chain_id,
        "created": now,
        "orgs": [
            {
                "id": org,
                "name": org_name,
                "roles": [r for r in roles.split(",") if r],
                "admins": [admin.public_hex],
            }
        ],
        "validators": [{"id": validator, "org": org, "key": node.public_hex}],
        "policy": {"org_admission": {"num": 2, "den": 3}},
    }
    # The node key is encrypted too (CARLEDGER_NODE_PASSPHRASE, or else the admin key's
    # passphrase); `carledger up` then needs CARLEDGER_NODE_PASSPHRASE.
    home.initialise(Genesis.from_dict(doc), validator, node, env_passphrase() or passphrase)
    write_key_file(data / "keys" / "admin.key", admin, passphrase)
    emit(
        {
            "data": str(data),
            "chain_id": chain_id,
            "admin_public_key": admin.public_hex,
            "admin_key_file": str(data / "keys" / "admin.key"),
        },
        as_json,
        lambda: console.print(
            f"chain [bold]{chain_id}[/] created in {data}\n"
            f"admin key of {org}: {admin.public_hex}\n  file {data / 'keys' / 'admin.key'}\n"
            "start it with: "
            + ("" if passphrase is None or env_passphrase() else "CARLEDGER_NODE_PASSPHRASE=... ")
            + f"carledger up --data {data}"
            + ("" if passphrase is None else " (the node key is encrypted)")
        ),
    )


def _own_validator(data: Path) -> str | None:
    """The validator id of the node whose data directory this is (it signs every block)."""
    try:
        doc = json.loads((data / "node.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    validator = doc.get("validator") if isinstance(doc, dict) else None
    return validator if isinstance(validator, str) else None


@app.command()
@run_guarded
def verify(
    data: DataOpt = Path("data/node"),
    genesis: Annotated[
        Path | None, typer.Option(help="The genesis you trust (default: the store's own).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Audit a node's whole store from genesis: signatures, hashes, roots, state, checkpoints."""
    path = Home(data).db_path
    if not path.exists():
        raise StorageError("store_missing", f"There is no store at {path}.")
    trusted = Genesis.load(genesis) if genesis else None
    signer = _own_validator(data)
    store = SQLiteStore.open(path)
    try:
        head = store.head()
        total = head[0] if head else 0
        with Progress(
            TextColumn("replaying blocks"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeRemainingColumn(),
            console=console,
            disable=as_json,
            transient=True,
        ) as progress:
            task = progress.add_task("replay", total=total)
            report = audit_store(
                store,
                registry_for,
                genesis=trusted,
                progress=lambda h, _t: progress.update(task, completed=h),
                signer=signer,
            )
    finally:
        store.close()

    def human() -> None:
        table = Table(show_header=False, box=None)
        for k in ("height", "blocks", "transactions", "state_rows", "checkpoint_signatures"):
            table.add_row(k.replace("_", " "), str(getattr(report, k)))
        console.print(table)
        if report.ok:
            console.print("[bold green]verified[/]: every block replays to the stored bytes")
        for finding in report.findings:
            console.print(f"[bold red]mismatch[/] at {escape(str(finding))}")

    emit(report.to_dict(), as_json, human)
    if not report.ok:
        raise typer.Exit(1)
