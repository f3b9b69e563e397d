"""docs/examples/dealer_flow.py runs as docs/client.md says, against a fresh demo node."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests_support import NodeProcess

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.integration


def test_dealer_flow_example(tmp_path: Path, node_factory: Callable[..., NodeProcess]) -> None:
    data = tmp_path / "demo"
    node = node_factory(data, "--demo", "--demo-vehicles", "20")
    done = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "examples" / "dealer_flow.py"), node.url, str(data)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "sale committed at height" in out and out.count(" by ") == 5
    assert "report verified offline: 5 records" in out
