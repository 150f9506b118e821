"""Fixtures of the console's browser tests: one embedded ``volkeeper serve`` with real
volumes and one chromium (Debian's, driven by Playwright), shared by every console test
module of this package."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fixtures.console import CHROMIUM_NAMES, Console
from tests.fixtures.embedded import embedded_environment, serving
from tests.fixtures.util import unavailable


@pytest.fixture(scope="package")
def console(tmp_path_factory: pytest.TempPathFactory, docker_host_a: Any) -> Iterator[Console]:
    root = tmp_path_factory.mktemp("console")
    # storage at 8 MiB/s and progress every 0.2 s: a 16 MiB backup shows its bar moving
    env = embedded_environment(root, docker_host_a.url) | {
        "VOLKEEPER_BANDWIDTH_LIMIT": str(8 << 20), "VOLKEEPER_PROGRESS_INTERVAL_SECONDS": "0.2"}
    with serving(env, root / "serve.log") as url:
        c = Console(url=url, env=env, docker=docker_host_a, root=root)
        try:
            yield c
        finally:
            client = docker_host_a.client()
            for name in c.volumes:
                with contextlib.suppress(Exception):  # a restore may not have made it
                    client.volumes.get(name).remove(force=True)


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install -e '.[test]')")
    executable = next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)
    if executable is None:
        unavailable("no chromium binary (apt-get install chromium)")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()
