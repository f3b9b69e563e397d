"""Secrets: keys at rest are encrypted, and no log line carries a secret or personal data.

A whole scenario runs with the node logging at ``debug``: ``carledger init`` (admin and
node keys encrypted, each with its own passphrase), ``keys new``, ``up``, members
enrolled, cars registered and sold to owners known only by pseudonymous references,
a refused record, a record signed with a wrong passphrase, history and reports. Then
every line the node and every command printed is searched for every form of every
private key (seed in hex and base64, unencrypted PKCS#8), both passphrases, and the
owners' references.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from security_support import report_figures

from carledger.crypto.keys import SigningKey
from tests_support import free_port

pytestmark = pytest.mark.integration

ADMIN_PASS = "correct horse battery staple 7"
NODE_PASS = "node-unlock-phrase-42"
MEMBER_PASS = "dealer-key-pass-99"
VINS = ["KNAXR000000000701", "KNAXR000000000702"]


def _run(
    out: list[str], *args: str, env: dict[str, str], ok: bool = True
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "carledger", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200", **env},
        check=False,
    )
    out.extend([done.stdout, done.stderr])
    if ok:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def _forms(key: SigningKey) -> list[str]:
    """Every way a private key could show up in text."""
    seed = key.seed()
    pem = key.to_pem(None).decode()
    body = "".join(line for line in pem.splitlines() if "-----" not in line)
    return [
        seed.hex(),
        seed.hex().upper(),
        base64.b64encode(seed).decode(),
        base64.urlsafe_b64encode(seed).decode().rstrip("="),
        (seed + bytes.fromhex(key.public_hex)).hex(),
        body,
        body[:40],
    ]


def _assert_encrypted(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----"), path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_keys_at_rest_are_encrypted_and_no_log_line_holds_a_secret(tmp_path: Path) -> None:
    out: list[str] = []
    data = tmp_path / "node"
    env = {"CARLEDGER_PASSPHRASE": ADMIN_PASS, "CARLEDGER_NODE_PASSPHRASE": NODE_PASS}
    info = json.loads(
        _run(
            out,
            "init",
            "--data",
            str(data),
            "--chain-id",
            "secrets-test",
            "--roles",
            "registry,dealer,market_operator",
            "--json",
            env=env,
        ).stdout
    )
    admin_file, node_file = Path(info["admin_key_file"]), data / "node.key"
    dealer_file, clerk_file = tmp_path / "dealer.key", tmp_path / "clerk.key"
    for path in (dealer_file, clerk_file):
        _run(out, "keys", "new", "--out", str(path), env={"CARLEDGER_PASSPHRASE": MEMBER_PASS})
    for path in (admin_file, node_file, dealer_file, clerk_file):
        _assert_encrypted(path)
    admin = SigningKey.from_pem(admin_file.read_bytes(), ADMIN_PASS.encode())
    node_key = SigningKey.from_pem(node_file.read_bytes(), NODE_PASS.encode())
    dealer = SigningKey.from_pem(dealer_file.read_bytes(), MEMBER_PASS.encode())
    clerk = SigningKey.from_pem(clerk_file.read_bytes(), MEMBER_PASS.encode())
    # Without its passphrase the node does not start, and says which variable to set.
    refused = _run(out, "up", "--data", str(data), "--port", "1", env={}, ok=False)
    assert refused.returncode == 1 and "CARLEDGER_NODE_PASSPHRASE" in refused.stderr

    port = free_port()
    log = tmp_path / "node.log"
    with log.open("wb") as sink:
        node = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "carledger",
                "up",
                "--data",
                str(data),
                "--port",
                str(port),
                "--log-level",
                "debug",
                "--block-interval-ms",
                "10",
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={**os.environ, "CARLEDGER_NODE_PASSPHRASE": NODE_PASS, "COLUMNS": "200"},
        )
    try:
        keys = {"admin": admin_file, "dealer": dealer_file, "clerk": clerk_file}
        _scenario(out, f"http://127.0.0.1:{port}", keys, dealer, clerk, tmp_path)
    finally:
        node.terminate()
        node.wait(timeout=60)
    lines = log.read_text(errors="replace").splitlines()
    lines += [line for text in out for line in text.splitlines()]
    owners = [f"ref:{'5e' * 20}", f"key:{SigningKey(b'O' * 32).public_hex}"]
    secrets = {
        **{f"admin key ({i})": f for i, f in enumerate(_forms(admin))},
        **{f"node key ({i})": f for i, f in enumerate(_forms(node_key))},
        **{f"dealer key ({i})": f for i, f in enumerate(_forms(dealer))},
        **{f"clerk key ({i})": f for i, f in enumerate(_forms(clerk))},
        **{f"owner key ({i})": f for i, f in enumerate(_forms(SigningKey(b"O" * 32)))},
        "admin passphrase": ADMIN_PASS,
        "node passphrase": NODE_PASS,
        "member passphrase": MEMBER_PASS,
        "owner ref": owners[0],
        "owner key ref": owners[1],
    }
    leaks = [(name, line) for line in lines for name, s in secrets.items() if s in line]
    assert not leaks, leaks[:5]
    assert any("DEBUG" in line for line in lines), "the node did not log at debug"
    report_figures(
        "secrets",
        {
            "log_lines_searched": len(lines),
            "secrets_searched": len(secrets),
            "leaks": 0,
            "key_files_encrypted": 4,
        },
    )


def _scenario(
    out: list[str],
    url: str,
    keys: dict[str, Path],
    dealer: SigningKey,
    clerk: SigningKey,
    tmp: Path,
) -> None:
    import time

    import httpx

    deadline = dt.datetime.now() + dt.timedelta(seconds=60)
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert dt.datetime.now() < deadline, "node did not start"
        time.sleep(0.05)
    admin_env = {"CARLEDGER_PASSPHRASE": ADMIN_PASS, "CARLEDGER_NODE": url}
    dealer_env = {"CARLEDGER_PASSPHRASE": MEMBER_PASS, "CARLEDGER_NODE": url}
    admin_file, dealer_file, clerk_file = keys["admin"], keys["dealer"], keys["clerk"]

    def submit(key: Path, type_: str, payload: dict[str, Any], env: dict[str, str]) -> Any:
        return _run(out, "submit", type_, json.dumps(payload), "--key", str(key), env=env)

    for key, name, role in ((dealer, "dealer-1", "dealer"), (clerk, "clerk-1", "registry")):
        member = {"key": key.public_hex, "org": "registry", "member": name, "roles": [role]}
        submit(admin_file, "member.enrol", member, admin_env)
    today = dt.datetime.now(dt.UTC).date().isoformat()
    owner_ref = f"ref:{'5e' * 20}"
    owner_key_ref = f"key:{SigningKey(b'O' * 32).public_hex}"
    for vin, owner in zip(VINS, (owner_ref, owner_key_ref), strict=True):
        birth = {
            "vin": vin,
            "make": "Hyundai",
            "model": "Avante",
            "model_year": 2024,
            "trim": "Smart",
            "color": "white",
            "fuel": "gasoline",
            "transmission": "automatic",
            "engine_code": "G4FL",
            "plant": "Ulsan",
            "manufactured_on": "2024-01-15",
            "country": "KR",
        }
        submit(clerk_file, "vehicle.register", birth, dealer_env)
        sale = {
            "from": None,
            "to": owner,
            "date": today,
            "price": 21_000_000,
            "odometer_km": 10,
            "contract_hash": "c0" * 32,
        }
        submit(clerk_file, "ownership.transfer", {"vin": vin, **sale}, dealer_env)
        reading = {"vin": vin, "km": 1200, "observed_on": today, "source": "dealer"}
        submit(dealer_file, "odometer.reading", reading, dealer_env)
        _run(out, "history", vin, "--node", url, env={})
        _run(out, "report", vin, "--node", url, "--out", str(tmp / f"{vin}.json"), env={})
    # A refused record (a dealer may not register a car) and a wrong passphrase.
    refused = _run(
        out,
        "submit",
        "vehicle.register",
        json.dumps({"vin": "KNAXR000000000703"}),
        "--key",
        str(dealer_file),
        env=dealer_env,
        ok=False,
    )
    assert refused.returncode == 1
    wrong = _run(
        out,
        "submit",
        "odometer.reading",
        json.dumps({"vin": VINS[0], "km": 1300, "observed_on": today, "source": "dealer"}),
        "--key",
        str(dealer_file),
        env={"CARLEDGER_PASSPHRASE": "not-the-passphrase", "CARLEDGER_NODE": url},
        ok=False,
    )
    assert "[invalid_key_file]" in wrong.stderr
