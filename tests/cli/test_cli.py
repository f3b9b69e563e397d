"""Every CLI verb as a user runs it: a real `carledger` process, human and --json output."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from carledger.crypto.keys import SigningKey
from tests_support import NodeProcess, start_node

pytestmark = pytest.mark.integration


def run(
    *args: str, env: dict[str, str] | None = None, ok: bool = True
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "carledger", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )
    if ok:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def as_json(*args: str, **kw: Any) -> Any:
    return json.loads(run(*args, "--json", **kw).stdout)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    data = tmp_path_factory.mktemp("cli") / "demo"
    node = start_node(data, "--demo", "--demo-vehicles", "20")
    try:
        yield {"url": node.url, "data": data}
    finally:
        node.stop()


def test_no_arguments_prints_help_and_every_verb_is_there() -> None:
    done = run("--help")
    for verb in (
        "up",
        "init",
        "keys",
        "submit",
        "history",
        "report",
        "verify",
        "verify-report",
        "import",
        "cluster",
        "bench",
    ):
        assert verb in done.stdout, verb


def test_keys_new_encrypted_and_unencrypted(tmp_path: Path) -> None:
    out = as_json(
        "keys",
        "new",
        "--out",
        str(tmp_path / "a.key"),
        env={"CARLEDGER_PASSPHRASE": "correct horse"},
    )
    assert out["encrypted"] and len(out["public_key"]) == 64
    pem = (tmp_path / "a.key").read_bytes()
    assert b"ENCRYPTED" in pem and (tmp_path / "a.key").stat().st_mode & 0o077 == 0
    assert SigningKey.from_pem(pem, b"correct horse").public_hex == out["public_key"]
    plain = as_json("keys", "new", "--out", str(tmp_path / "b.key"), "--no-encrypt")
    assert not plain["encrypted"]
    again = run("keys", "new", "--out", str(tmp_path / "b.key"), "--no-encrypt", ok=False)
    assert again.returncode == 1 and "[file_exists]" in again.stderr
    no_pass = run(
        "keys", "new", "--out", str(tmp_path / "c.key"), ok=False, env={"CARLEDGER_PASSPHRASE": ""}
    )
    assert no_pass.returncode == 1 and "[key_passphrase_required]" in no_pass.stderr


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    info = as_json("init", "--data", str(tmp_path / "n"), "--no-encrypt")
    assert Path(info["admin_key_file"]).exists()
    again = run("init", "--data", str(tmp_path / "n"), "--no-encrypt", ok=False)
    assert again.returncode == 1 and "[data_dir_exists]" in again.stderr


def test_submit_history_report_verify_report(demo: dict[str, Any], tmp_path: Path) -> None:
    url, data = demo["url"], demo["data"]
    vin = httpx.get(f"{url}/v1/vehicles", params={"limit": 1}).json()["vehicles"][0]["vin"]
    before = as_json("history", vin, "--node", url)["records"]
    payload = json.dumps(
        {"vin": vin, "km": 250_000, "observed_on": "2026-11-22", "source": "service"}
    )
    key = str(data / "demo-keys" / "repair-1.key")
    receipt = as_json("submit", "odometer.reading", payload, "--key", key, "--node", url)
    assert receipt["status"] == "committed" and receipt["code"] == "ok"
    after = as_json("history", vin, "--node", url)["records"]
    assert len(after) == len(before) + 1 and after[-1]["id"] == receipt["id"]
    human = run("history", vin, "--node", url).stdout
    assert "odometer.reading" in human and "repair-1" in human
    # a refused record: a role that may not write it
    gate = str(data / "demo-keys" / "gate-1.key")
    refused = run("submit", "odometer.reading", payload, "--key", gate, "--node", url, ok=False)
    assert refused.returncode == 1 and "[unauthorized_role]" in refused.stderr
    # report, then offline verification (and a tampered copy)
    out = tmp_path / "report.json"
    run("report", vin, "--node", url, "--out", str(out))
    genesis = str(data / "genesis.json")
    ok = as_json("verify-report", str(out), "--genesis", genesis)
    assert ok["ok"] and ok["records"] == len(after)
    doc = json.loads(out.read_text())
    doc["records"].pop(0)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    failed = run("verify-report", str(bad), "--genesis", genesis, ok=False)
    assert failed.returncode == 1 and "error:" in failed.stderr
    # sign-only prints a wire transaction a user can POST with curl
    signed = run(
        "submit",
        "odometer.reading",
        payload.replace("250000", "250100"),
        "--key",
        key,
        "--node",
        url,
        "--sign-only",
    ).stdout
    assert set(json.loads(signed)) == {"body", "signatures"}


def test_import_with_bad_lines_and_rerun(demo: dict[str, Any], tmp_path: Path) -> None:
    url, data = demo["url"], demo["data"]
    vins = [
        v["vin"] for v in httpx.get(f"{url}/v1/vehicles", params={"limit": 5}).json()["vehicles"]
    ]
    lines = []
    for i, vin in enumerate(vins):
        for j in range(3):
            lines.append(
                json.dumps(
                    {
                        "type": "odometer.reading",
                        "payload": {
                            "vin": vin,
                            "km": 300_000 + 100 * j,
                            "observed_on": "2026-11-22",
                            "source": "service",
                        },
                    }
                )
            )
        if i == 1:
            lines.append("{not json")
            lines.append(
                json.dumps(
                    {
                        "type": "odometer.reading",
                        "payload": {
                            "vin": vin,
                            "km": 1.5,
                            "observed_on": "2026-11-22",
                            "source": "service",
                        },
                    }
                )
            )
            lines.append(
                json.dumps(
                    {
                        "type": "odometer.reading",
                        "payload": {
                            "vin": vin,
                            "km": 10,
                            "observed_on": "2026-13-40",
                            "source": "service",
                        },
                    }
                )
            )
    path = tmp_path / "readings.jsonl"
    path.write_text("\n".join(lines) + "\n")
    key = str(data / "demo-keys" / "repair-1.key")
    first = run(
        "import", str(path), "--key", key, "--node", url, "--batch", "4", "--json", ok=False
    )
    summary = json.loads(first.stdout)
    assert first.returncode == 1  # some lines were refused
    assert summary["committed"] == 15 and summary["already_imported"] == 0
    codes = sorted(r["code"] for r in summary["refused"])
    assert codes == ["float_not_allowed", "invalid_date", "invalid_json"], summary["refused"]
    second = json.loads(
        run("import", str(path), "--key", key, "--node", url, "--json", ok=False).stdout
    )
    assert second["committed"] == 0 and second["already_imported"] == 15
    history = httpx.get(f"{url}/v1/vehicles/{vins[0]}/history", params={"limit": 500}).json()
    readings = [r for r in history["records"] if r["payload"].get("km", 0) >= 300_000]
    assert len(readings) == 3


def test_verify_clean_and_tampered_store(
    tmp_path: Path, node_factory: Callable[..., NodeProcess]
) -> None:
    data = tmp_path / "demo"
    node = node_factory(data, "--demo", "--demo-vehicles", "5")
    assert node.stop() == 0
    report = as_json("verify", "--data", str(data))
    assert report["ok"] and report["transactions"] > 0
    conn = sqlite3.connect(data / "ledger.db")
    conn.execute(
        "UPDATE log_nodes SET hash = zeroblob(32) WHERE id = (SELECT max(id) FROM log_nodes)"
    )
    conn.commit()
    conn.close()
    bad = run("verify", "--data", str(data), "--json", ok=False)
    assert bad.returncode == 1
    findings = json.loads(bad.stdout)["findings"]
    assert findings and findings[0]["table"] == "log_nodes"
