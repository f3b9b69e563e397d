"""A pre-imported interpreter that forks ``carledger up`` processes on request (tests only).

Crash tests start a node hundreds of times; most of a start is Python importing
FastAPI, uvicorn and carledger. This script imports them once, then for every request
line on stdin (``{"argv": [...], "log": PATH, "env": {...}}``) forks a child that runs
exactly what ``python -m carledger <argv>`` runs, with its output in ``log``, and
answers the child's pid on stdout. The child is a complete node process: SIGKILL
kills it like any other. Children are reaped by the kernel (SIGCHLD ignored), so a
dead node's pid disappears at once.

No thread is started before forking (a forked thread would be a copy without its
thread), and nothing is read from the network or the data directory here.
"""

from __future__ import annotations

import json
import os
import signal
import sys


def main() -> None:
    import fastapi

    import carledger.api.app  # the node's API and pages
    import carledger.audit
    import carledger.cli.main
    import carledger.consortium.ordering
    import carledger.web

    del fastapi, carledger
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    print("ready", flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(request)
        print(pid, flush=True)


def _child(request: dict[str, object]) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.setsid()
    fd = os.open(str(request["log"]), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.environ.update({str(k): str(v) for k, v in dict(request.get("env") or {}).items()})  # type: ignore[call-overload]
    code = 0
    try:
        from carledger.cli.main import app

        sys.argv = ["carledger", *map(str, request["argv"])]  # type: ignore[call-overload]
        app(prog_name="carledger")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
