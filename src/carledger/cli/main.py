"""The ``carledger`` command line (Typer + Rich).

Human output by default, ``--json`` for scripts. A :class:`LedgerError` is printed
as its sentence and code (never a traceback) and exits with status 1; usage errors
exit with 2.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from carledger.errors import InvalidInput, LedgerError

__all__ = ["app", "console", "fail", "run_guarded"]

app = typer.Typer(
    name="carledger",
    help="A permissioned ledger for the life of a vehicle and used-car trading.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
keys_app = typer.Typer(help="Create and inspect Ed25519 member keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")

console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])

PASSPHRASE_ENV = "CARLEDGER_PASSPHRASE"  # noqa: S105 (a variable name)

DataOpt = Annotated[
    Path, typer.Option("--data", "-d", help="The node's data directory.", envvar="CARLEDGER_DATA")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]


def fail(exc: LedgerError, as_json: bool = False) -> None:
    if as_json:
        print(json.dumps({"error": exc.to_problem()}))
    else:
        # escape(): the code in brackets must not be taken for Rich markup.
        err_console.print(f"[bold red]error:[/] {escape(exc.diagnostics())}", highlight=False)
    raise typer.Exit(1)


def run_guarded(func: F) -> F:
    """Print a LedgerError as a sentence and exit 1 instead of showing a traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except LedgerError as exc:
            fail(exc, bool(kwargs.get("as_json")))

    return wrapper  # type: ignore[return-value]


def read_passphrase(
    passphrase_file: Path | None, *, confirm: bool = False, what: str = "key"
) -> bytes:
    """The passphrase from a file, ``CARLEDGER_PASSPHRASE``, or a prompt on a terminal."""
    if passphrase_file is not None:
        try:
            return passphrase_file.read_bytes().rstrip(b"\r\n")
        except OSError as exc:
            raise InvalidInput("passphrase_unreadable", f"Cannot read {passphrase_file}.") from exc
    env = os.environ.get(PASSPHRASE_ENV)
    if env:
        return env.encode()
    if sys.stdin.isatty():
        value = typer.prompt(
            f"Passphrase for the {what}", hide_input=True, confirmation_prompt=confirm
        )
        return str(value).encode()
    raise InvalidInput(
        "key_passphrase_required",
        f"A passphrase is needed: set {PASSPHRASE_ENV}, pass --passphrase-file, "
        "or --no-encrypt for an unencrypted key.",
    )


def emit(data: Any, as_json: bool, human: Callable[[], None]) -> None:
    if as_json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        human()


# Commands live in their own modules and register themselves on ``app``.
from carledger.cli import (  # noqa: E402,F401
    bench_cmds,
    client_cmds,
    cluster_cmds,
    ledger_cmds,
    node_cmds,
)
