"""Fixtures of the web tests: a real demo node, Debian's Chromium, demo member keys.

The node is ``carledger up`` on a demo chain made by ``create_demo`` (30 vehicles,
seed 7), started once per module. Browsers are Debian's ``/usr/bin/chromium`` driven
by Playwright, headless, each with a fresh user-data directory; nothing is
downloaded. Screenshots go to ``artifacts/web/`` (git-ignored).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from web_support import Api

from carledger.node.demo import DEMO_START, create_demo
from carledger.node.home import Home
from carledger.vehicle import demo
from tests_support import NodeProcess, start_node

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SEED = 7
VEHICLES = 30
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "web"


@pytest.fixture(scope="session")
def network() -> demo.DemoNetwork:
    return demo.build_network(str(SEED), DEMO_START)


@pytest.fixture(scope="module")
def demo_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    data = tmp_path_factory.mktemp("web") / "node"
    create_demo(Home(data), vehicles=VEHICLES, seed=SEED)
    node = start_node(data, "--block-interval-ms", "20")
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="module")
def playwright_api() -> Iterator[Any]:
    """Playwright, per module: its event loop must not outlive the browser tests (later
    tests may run their own with asyncio.run)."""
    if not os.path.exists(CHROMIUM) or shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed (scripts/setup --dev installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


@pytest.fixture
def browser_factory(playwright_api: Any, tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Start a headless Chromium with a fresh profile; returns its (persistent) context."""
    contexts: list[Any] = []

    def launch(width: int = 1100, height: int = 900, mobile: bool = False) -> Any:
        profile = tmp_path / f"profile-{len(contexts)}"
        context = playwright_api.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": width, "height": height},
            is_mobile=mobile,
            has_touch=mobile,
            device_scale_factor=2 if mobile else 1,
            locale="ko-KR",
        )
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context

    yield launch
    for context in contexts:
        context.close()


@pytest.fixture(scope="module")
def api(demo_node: NodeProcess, network: demo.DemoNetwork) -> Iterator[Api]:
    client = Api(demo_node.url, network)
    try:
        yield client
    finally:
        client.http.close()
