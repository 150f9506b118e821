"""Flower, pointed at the fleet's Redis, sees one worker per Docker host."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import httpx
import pytest

from tests.fixtures.fleet import Fleet
from tests.fixtures.util import free_port, running_process, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def flower(fleet: Fleet) -> Iterator[str]:
    port = free_port()
    cmd = [sys.executable, "-m", "celery", "--broker", fleet.env["VOLKEEPER_REDIS_URL"],
           "flower", f"--port={port}", "--address=127.0.0.1"]
    url = f"http://127.0.0.1:{port}"
    with running_process(cmd, fleet.env | {"FLOWER_UNAUTHENTICATED_API": "true"},
                         fleet.root / "flower.log", url + "/healthcheck", "flower"):
        yield url


def test_flower_lists_the_worker_of_every_host(flower: str) -> None:
    seen: set[str] = set()

    def both() -> bool:
        r = httpx.get(flower + "/api/workers", params={"refresh": "1"}, timeout=20)
        seen.update(name.split("@")[0] for name in r.json())
        return {"host-a", "host-b", "host-a.quick", "host-b.quick"} <= seen

    wait_for(both, 60, "flower seeing the workers and quick lanes of both hosts", interval=1)
    queues = httpx.get(flower + "/api/workers", params={"refresh": "1"}, timeout=20).json()
    active = {q["name"] for info in queues.values() for q in info.get("active_queues", [])}
    assert {"host.host-a", "host.host-b", "host.host-a.quick", "host.host-b.quick"} <= active
