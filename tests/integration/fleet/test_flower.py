"""Flower, pointed at the fleet's Redis, sees one worker per Docker host."""

from __future__ import annotations

import httpx
import pytest

from tests.fixtures.util import wait_for

pytestmark = pytest.mark.integration




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
