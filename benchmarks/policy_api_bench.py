"""Policy create and update latency as users meet it (issue 12: p99 < 500 ms).

A real ``volkeeper serve`` (embedded, SQLite under a temp home, its admin token) whose
catalog already holds an inventory of 2 hosts x 500 volumes and ``--existing`` policies
(default 1,000, each selecting one volume by label); then ``--n`` policies are created
(``POST /api/v1/policies``) and each updated once (``PATCH``) over HTTP, one after another,
timed from request to response. Docker is not needed: the inventory is written into the
catalog before the server starts (its host loops only log that Docker does not answer).

    python benchmarks/policy_api_bench.py [--existing 1000] [--n 200]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from common.db import Database, Policy, hosts  # noqa: E402
from common.db.migrate import upgrade  # noqa: E402

HOSTS, VOLUMES = ("h1", "h2"), 500


def seed(home: Path, existing: int) -> None:
    """The catalog the server starts with: inventory and ``existing`` policies."""
    db = Database(f"sqlite:///{home / 'volkeeper.db'}")
    upgrade(db, quiet=True)
    now = datetime.now(UTC)
    with db.session() as s:
        for h in HOSTS:
            hosts.register_host(s, h, docker_version="28.2", worker_version="bench")
            hosts.replace_inventory(s, h, [
                {"name": f"{h}-v{k:03d}", "driver": "local", "mountpoint": f"/x/{k}",
                 "size_bytes": 4096, "labels": {"volkeeper.policy": f"p{k % 250}"},
                 "containers": {"items": []}, "created_at": None}
                for k in range(VOLUMES)])
        for k in range(existing):
            s.add(Policy(name=f"seed{k:05d}",
                         selection={"volumes": [f"{HOSTS[k % 2]}-v{k % VOLUMES:03d}"]},
                         schedule="0 2 * * *", tz="Europe/Berlin", jitter_seconds=0,
                         targets=["local"], retention={"keep_daily": 7}, created_at=now,
                         updated_at=now))
    db.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * q))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--existing", type=int, default=1000)
    p.add_argument("--n", type=int, default=200)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        home.mkdir(mode=0o700)
        seed(home, args.existing)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("VOLKEEPER_")}
        env |= {"VOLKEEPER_HOME": str(home), "VOLKEEPER_HOST_NAME": "h1",
                "VOLKEEPER_DOCKER_HOST": f"unix://{tmp}/no-docker.sock",
                "PYTHONPATH": str(HERE.parent)}
        with open(Path(tmp) / "serve.log", "wb") as log:
            serve = subprocess.Popen([sys.executable, "-m", "cli.main", "serve", "--port",
                                      str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{port}/api/v1"
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(base + "/health", timeout=2).status_code in (200, 503):
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or serve.poll() is not None:
                    raise SystemExit((Path(tmp) / "serve.log").read_text()[-2000:])
                time.sleep(0.2)
            token = (home / "api.token").read_text().strip()
            created, updated = [], []
            with httpx.Client(base_url=base, timeout=30,
                              headers={"Authorization": f"Bearer {token}"}) as c:
                for k in range(args.n):
                    body = {"name": f"bench{k:04d}", "selector": f"volkeeper.policy=p{k % 250}",
                            "schedule": "0 3 * * *", "tz": "Europe/Berlin", "targets": ["local"],
                            "retention": {"keep_daily": 7, "keep_weekly": 4}, "rpo": "26h"}
                    t0 = time.perf_counter()
                    r = c.post("/policies", json=body)
                    created.append(time.perf_counter() - t0)
                    r.raise_for_status()
                for k in range(args.n):
                    t0 = time.perf_counter()
                    r = c.patch(f"/policies/bench{k:04d}", json={"schedule": "30 3 * * *"})
                    updated.append(time.perf_counter() - t0)
                    r.raise_for_status()
        finally:
            serve.terminate()
            serve.wait(30)
    for what, xs in (("create", created), ("update", updated)):
        p99 = percentile(xs, 0.99)
        print(f"{what}: {len(xs)} requests with {args.existing}+ policies over "
              f"{len(HOSTS)}x{VOLUMES} volumes: median {statistics.median(xs) * 1000:.0f} ms, "
              f"p99 {p99 * 1000:.0f} ms, max {max(xs) * 1000:.0f} ms — target p99 < 500 ms: "
              f"{'PASS' if p99 < 0.5 else 'FAIL'}")


if __name__ == "__main__":
    main()
