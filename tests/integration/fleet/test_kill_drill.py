"""The kill drill on a small scale (``benchmarks/kill_drill.py`` runs 4 kills in each of
the 16 cells for docs/reliability.md): the worker SIGKILLed at a random instant during a
backup, a restore, a replace and a copy — across both formats and both targets — leaves
no damaged repository or archive, no half-written volume looking complete, and every job
terminal with its lock released. On a fleet of its own (its database, Redis database 2, a
private dockerd), so the kills touch nothing of the other tests."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.kill_drill import HOST, Cell, KillDrill, failures, run_cells, table
from tests.fixtures.fleet import Fleet, running_fleet

pytestmark = pytest.mark.integration

SEED = int(os.environ.get("VOLKEEPER_TEST_KILL_SEED") or 1)


@pytest.fixture
def kill_fleet(postgres_server: Any, redis_server: Any, dockerd_factory: Any,
               tmp_path: Path) -> Iterator[Fleet]:
    database_url = postgres_server.create_database(f"kill_{uuid.uuid4().hex[:8]}")
    redis_url = redis_server.url.rsplit("/", 1)[0] + "/2"
    (tmp_path / "fleet").mkdir()
    docker = {HOST: dockerd_factory.start(HOST)}
    with running_fleet(tmp_path / "fleet", database_url, redis_url, docker) as f:
        yield f


def test_a_worker_killed_at_random_instants_leaves_no_damage_no_half_volume_no_live_job(
        kill_fleet: Fleet, s3_server: Any) -> None:
    cells = [Cell("backup", "repo", "s3"), Cell("restore", "tar.zst", "local"),
             Cell("replace", "repo", "local"), Cell("copy", "tar.zst", "s3")]
    drill = KillDrill(kill_fleet, s3_server, kill_fleet.root, SEED, mib=4)
    run_cells(drill, cells, runs=1)
    print(f"kill seed {SEED}\n{table(cells)}")
    assert failures(cells) == []
    assert sum(c.runs for c in cells) == 4
