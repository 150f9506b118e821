"""The real fleet for a benchmark: what ``tests/fixtures/fleet.py`` starts for the tests,
outside pytest — a private PostgreSQL and Redis, one private dockerd per host (each in a
network namespace of its own), ``volkeeper serve`` and one ``volkeeper worker`` per host —
with the production heartbeat and sweep periods (``PRODUCTION``), not the tests' quick
ones. Everything is stopped and removed when the block ends.

    with private_fleet(work, ("host-a", "host-b")) as fleet:
        ...

Needs root, Debian's docker.io, redis-server and postgresql-15 (as the tests do).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
for _path in (str(REPO), str(REPO / "benchmarks")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from procs import proc_stats  # noqa: E402

from tests.fixtures.dockerd import DockerdFactory  # noqa: E402
from tests.fixtures.fleet import Fleet, running_fleet  # noqa: E402
from tests.fixtures.servers import PostgresServer, RedisServer  # noqa: E402
from tests.fixtures.util import free_port, require_binary  # noqa: E402

PRODUCTION = {  # the defaults of common/config.py, not the tests' quick ones
    "VOLKEEPER_HEARTBEAT_SECONDS": "10", "VOLKEEPER_HOST_OFFLINE_AFTER_SECONDS": "45",
    "VOLKEEPER_STALE_JOB_SECONDS": "120", "VOLKEEPER_SWEEP_SECONDS": "15",
    "VOLKEEPER_REQUEUE_SECONDS": "120", "VOLKEEPER_STORAGE_RETRIES": "5",
    "VOLKEEPER_LOG_LEVEL": "WARNING", "VOLKEEPER_REPOSITORY_PASSWORD": "bench passphrase",
}
FINISHED = ("succeeded", "failed", "cancelled")


@contextmanager
def private_fleet(work: Path, hosts: Sequence[str] = ("host-a", "host-b"),
                  extra_env: dict[str, str] | None = None) -> Iterator[Fleet]:
    """A running fleet whose files live under ``work`` (its ``file://`` targets must be
    below it); ``extra_env`` is added to ``PRODUCTION``."""
    os.chdir(REPO)  # the fleet's processes run from the checkout
    redis_root, pg_root = (Path(tempfile.mkdtemp(prefix=p)) for p in ("vk-bredis-", "vk-bpg-"))
    pg_root.chmod(0o755)  # the postgres user enters it
    redis = RedisServer(require_binary("redis-server"), redis_root, free_port())
    postgres = PostgresServer(pg_root, free_port())
    factory = DockerdFactory()
    try:
        redis.start()
        postgres.init()
        docker = {h: factory.start(h) for h in hosts}
        db_url = postgres.create_database(f"bench_{uuid.uuid4().hex[:8]}")
        with running_fleet(work, db_url, redis.url, docker,
                           PRODUCTION | (extra_env or {})) as fleet:
            yield fleet
    finally:
        factory.stop_all()
        redis.kill()
        postgres.stop(mode="immediate")
        for d in (redis_root, pg_root):
            shutil.rmtree(d, ignore_errors=True)


def cpu_seconds(fleet: Fleet) -> float:
    """User + system CPU seconds so far of the fleet's processes (API, workers) and all
    their descendants (a worker's quick lane; exited children they waited for): on a
    shared machine a steadier figure than wall time."""
    tick = os.sysconf("SC_CLK_TCK")
    parent: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for name, fields in proc_stats():
        parent[int(name)] = int(fields[1])
        ticks[int(name)] = sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    roots = {p.pid for p in fleet.procs.values()}

    def ours(pid: int) -> bool:
        while pid > 1:
            if pid in roots:
                return True
            pid = parent.get(pid, 0)
        return False

    return sum(v for pid, v in ticks.items() if ours(pid)) / tick


def mountpoint(fleet: Fleet, host: str, volume: str) -> Path:
    """Where ``volume``'s files are on ``host``'s dockerd."""
    return Path(fleet.docker[host].client().volumes.get(volume).attrs["Mountpoint"])


def add_target(fleet: Fleet, name: str, path: Path) -> str:
    """A ``file://`` target at ``path`` (a new, empty directory) named ``name``."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    with fleet.http as c:
        c.post("/targets", json={"name": name, "url": path.as_uri()}).raise_for_status()
    return name


def run_job(fleet: Fleet, path: str, body: dict[str, Any], poll: float = 0.1,
            timeout: float = 3600) -> tuple[float, dict[str, Any]]:
    """``POST path`` then poll the job until it ends, as a user's client would: (seconds
    from the request to the job seen finished, the job). RuntimeError unless it
    succeeded."""
    t0 = time.monotonic()
    with fleet.http as c:
        r = c.post(path, json=body)
        if r.status_code >= 400:
            raise RuntimeError(f"POST {path} {body}: {r.status_code} {r.text}")
        job_id = r.json()["id"]
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            job: dict[str, Any] = c.get(f"/jobs/{job_id}").json()
            if job["state"] in FINISHED:
                break
            time.sleep(poll)
        else:
            raise RuntimeError(f"job {job_id} ({path}) did not end within {timeout}s")
    seconds = time.monotonic() - t0
    if job["state"] != "succeeded":
        raise RuntimeError(f"POST {path} {body}: job {job_id} {job['state']}: {job['error']}")
    return seconds, job
