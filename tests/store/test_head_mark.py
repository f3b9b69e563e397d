"""The head mark (``head.json``): written after each block, never in the block's way."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from carledger.ledger.block import BlockHeader
from carledger.node.home import Home


def _header(height: int) -> BlockHeader:
    return BlockHeader(
        chain="test-chain",
        height=height,
        prev="00" * 32,
        time="2026-01-01T00:00:00.000Z",
        proposer="node-1",
        tx_count=0,
        tx_root="00" * 32,
        state_root="00" * 32,
        log_size=0,
        log_root="00" * 32,
    )


def test_an_unwritable_mark_is_left_as_it_was_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    home = Home(tmp_path)
    home.record_head(_header(1))
    assert json.loads(home.head_mark_path.read_text())["height"] == 1
    # The temporary file cannot be written (as on a full disk): the mark stays at 1,
    # older than the store, which is what a power loss can leave too.
    (tmp_path / "head.json.tmp").mkdir()
    with caplog.at_level(logging.WARNING, logger="carledger.node.home"):
        home.record_head(_header(2))
    assert json.loads(home.head_mark_path.read_text())["height"] == 1
    assert "is not updated" in caplog.text
    (tmp_path / "head.json.tmp").rmdir()
    home.record_head(_header(3))
    assert json.loads(home.head_mark_path.read_text())["height"] == 3
