"""The README's commands work as written, from a fresh clone.

Parses the two commands near the top of README.md, checks `.ci/run` runs exactly the
test command, then in a fresh clone runs the demo command (which installs what it
needs into the clone's own .venv), waits for the node, runs every command of the
tour against it, and verifies a report offline.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
from pathlib import Path

import httpx
import pytest

from carledger.ledger.genesis import Genesis
from carledger.verifier import verify_report
from tests_support import free_port

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.integration


def _blocks(section: str) -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(section)
    nxt = text.find("\n## ", start + len(section))
    part = text[start : nxt if nxt != -1 else len(text)]
    return re.findall(r"```sh\n(.*?)```", part, flags=re.S)


def readme_commands() -> list[str]:
    block = _blocks("## Two commands")[0]
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.strip()]


def test_readme_names_two_commands_and_ci_runs_the_test_one() -> None:
    commands = readme_commands()
    assert len(commands) == 2, commands
    assert commands == ["scripts/demo", "scripts/test"]
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == f"exec {commands[1]}"


def test_fresh_clone_demo_and_tour(tmp_path: Path) -> None:
    clone = tmp_path / "fresh"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
    demo_cmd = readme_commands()[0]
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIRTUAL_ENV")}
    env.update(PORT=str(port), COLUMNS="200")
    proc = subprocess.Popen(
        ["bash", "-c", demo_cmd],
        cwd=clone,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    output: list[str] = []
    ready = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            if "Uvicorn running on" in line:
                ready.set()
        ready.set()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        assert ready.wait(timeout=900), "".join(output)
        assert proc.poll() is None, "".join(output)
        url = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{url}/healthz").json()["status"] == "ok"
        vin = httpx.get(f"{url}/v1/vehicles", params={"limit": 1}).json()["vehicles"][0]["vin"]
        report = httpx.get(f"{url}/v1/vehicles/{vin}/report", timeout=60).json()
        genesis = Genesis.load(clone / "data" / "demo" / "genesis.json")
        assert verify_report(report, genesis).records == len(report["records"]) > 0

        tour_env = dict(env, PATH=f"{clone / '.venv' / 'bin'}:{env['PATH']}", CARLEDGER_NODE=url)
        # A reader pastes the tour's blocks into one terminal, one after another.
        script = "\n".join(_blocks("## A short tour")).replace(
            "127.0.0.1:8000", f"127.0.0.1:{port}"
        )
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=clone,
            env=tour_env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, f"{script}\n{done.stdout}\n{done.stderr}"
        receipt = json.loads((done.stdout.strip().splitlines() or ["{}"])[-1])
        assert receipt["status"] == "committed" and receipt["code"] == "ok", done.stdout
        assert (clone / "report.json").exists()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        code = proc.wait(timeout=120)
        reader.join(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
    assert code == 0, "".join(output[-30:])
