"""Import: ``carledger import`` of a JSON Lines file into a fresh node, timed end to end
(the command's own start-up included, as a user would see it)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from carledger.bench.data import Market, import_lines
from carledger.bench.load import start_node
from carledger.node.home import write_key_file

__all__ = ["run_import"]


def run_import(m: Market, root: Path, *, vehicles: int) -> tuple[dict[str, float], dict[str, Any]]:
    # Korean date of today: the node refuses records dated after its block's date.
    today = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=9)).date().isoformat()
    lines = import_lines(m, vehicles, until=today)
    work = root / "import"
    work.mkdir(parents=True, exist_ok=True)
    file = work / "records.jsonl"
    file.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines))
    key = work / "registry.key"
    write_key_file(key, m.import_key, None)
    home = m.init_home(work / "node")
    node = start_node(home.path, log=root / "logs" / "import-node.log")
    try:
        started = time.perf_counter()
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "carledger",
                "import",
                str(file),
                "--key",
                str(key),
                "--unencrypted-key",
                "--node",
                node.url,
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=3600,
            check=False,
        )
        seconds = time.perf_counter() - started
    finally:
        node.stop()
    try:
        summary = json.loads(done.stdout)
    except json.JSONDecodeError as exc:
        raise RuntimeError(
            f"carledger import failed: {done.stdout[-500:]}{done.stderr[-2000:]}"
        ) from exc
    committed = int(summary["committed"])
    figures = {"records_per_s": committed / seconds}
    details = {
        "lines": len(lines),
        "committed": committed,
        "refused": len(summary.get("refused", [])),
        "first_refusals": summary.get("refused", [])[:3],
        "seconds": seconds,
    }
    return figures, details
