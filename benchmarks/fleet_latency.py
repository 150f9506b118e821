"""Latency of the API's interactive calls on the real fleet, idle and under load.

Starts what ``tests/fixtures/fleet.py`` starts — a private PostgreSQL and Redis, two
private dockerds (two hosts), ``volkeeper serve`` and one ``volkeeper worker`` per host (a
Celery worker, 2 job slots) — with the production heartbeat and sweep periods, a
``file://`` target, and the repository passphrase at the production scrypt cost. Then it
measures, each ``--n`` times:

- ``POST /restores/validate`` of a tar.zst backup and of a repo snapshot (the dry run is
  a task on the backup's host: API → Redis → worker → job row, which the API polls) —
  target < 2 s;
- ``POST /backups`` (job submission; the jobs run later) — target well under 1 s (p99);
- ``GET /volumes``, ``GET /backups``, ``GET /jobs`` (console pages) — well under 1 s;

in three states: **idle**; **busy**: each host's worker runs one long backup (one of its
two job slots; backups are resubmitted as they finish); **saturated**: two backups per host,
so every job slot is taken and a dry run waits in the host's queue (fewer calls).

    python benchmarks/fleet_latency.py [--n 40] [--load-mib 256]

Needs root, Debian's docker.io, redis-server and postgresql-15 (as the tests do). Prints a
Markdown table; paste it into RESULTS.md ("API latency").
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from fleetkit import mountpoint, private_fleet, run_job  # noqa: E402

from tests.fixtures.fleet import Fleet  # noqa: E402

TARGETS = {"POST /restores/validate (tar.zst)": 2000.0, "POST /restores/validate (repo)": 2000.0}


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered), p99, ordered[-1]


FAILED: dict[str, int] = {}  # row key -> calls answered with an error status


def timed(n: int, call: Callable[[], httpx.Response], key: str) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = call()
        out.append((time.perf_counter() - t0) * 1000)
        if r.status_code >= 400:
            FAILED[key] = FAILED.get(key, 0) + 1
            print(f"{key}: {r.status_code} {r.text[:300]}", file=sys.stderr)
    return out


def fill(path: Path, mib: int, seed: int) -> None:
    """Half incompressible, half log-like text (compresses ~2:1), in files of 8 MiB."""
    rnd = random.Random(seed)
    for i in range(max(1, mib // 8)):
        data = rnd.randbytes(8 << 20) if i % 2 else rnd.randbytes(4 << 20).hex().encode()
        (path / f"f{i:03d}.bin").write_bytes(data)


@contextmanager
def load(fleet: Fleet, volumes: list[tuple[str, str]]) -> Iterator[None]:
    """Keep a backup of each (host, volume) running until the block ends."""
    stop = threading.Event()

    def loop(host: str, volume: str) -> None:
        while not stop.is_set():
            with fleet.http as c:
                r = c.post("/backups", json={"volume": volume, "host": host, "target": "disk"})
            if r.status_code != 202:
                time.sleep(0.2)
                continue
            fleet.wait_job(r.json()["id"], timeout=600)

    threads = [threading.Thread(target=loop, args=v, daemon=True) for v in volumes]
    for t in threads:
        t.start()
    with fleet.http as c:  # wait until every load backup is running
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            running = [j for j in c.get("/jobs", params={"job_state": "running"}).json()
                       if j["volume"].startswith("load")]
            if len(running) >= len(volumes):
                break
            time.sleep(0.2)
    try:
        yield
    finally:
        stop.set()
        for t in threads:
            t.join(600)


def measure(fleet: Fleet, n: int, backups: dict[str, str], state: str,
            submit_volumes: list[str]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    with fleet.http as c:
        for fmt, backup_id in backups.items():
            name = f"POST /restores/validate ({fmt})"
            out[name] = timed(n, lambda b=backup_id: c.post(
                "/restores/validate", json={"backup_id": b, "into": "bench-new"}),
                f"{state} {name}")
        if state == "saturated":
            return out  # the list and submit calls do not touch the workers
        for page in ("/volumes", "/backups", "/jobs"):
            out[f"GET {page}"] = timed(n, lambda p=page: c.get(p), f"{state} GET {page}")
        volumes = iter(submit_volumes)
        out["POST /backups (submit)"] = timed(len(submit_volumes), lambda: c.post(
            "/backups", json={"volume": next(volumes), "host": "host-b", "target": "disk",
                              "format": "tar"}), f"{state} POST /backups (submit)")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--load-mib", type=int, default=256, help="size of each load volume")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="vk-fleetbench-"))
    try:
        with private_fleet(work) as fleet:
            results = run(fleet, args.n, args.load_mib, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(results, args.n)


def run(fleet: Fleet, n: int, load_mib: int, work: Path) -> dict[str, dict[str, list[float]]]:
    with fleet.http as c:
        c.post("/targets", json={"name": "disk", "url": (work / "target").as_uri()}
               ).raise_for_status()
    a = fleet.docker["host-a"].client()
    a.volumes.create("bench-data")
    mount = mountpoint(fleet, "host-a", "bench-data")
    for i in range(2000):  # ~64 MiB in 2,000 files, as benchmarks/api_latency.py
        d = mount / f"d{i % 40}"
        d.mkdir(exist_ok=True)
        (d / f"f{i}").write_bytes(os.urandom(32 * 1024))
    for host in ("host-a", "host-b"):
        for k in (1, 2):
            fleet.docker[host].client().volumes.create(f"load{k}")
            fill(mountpoint(fleet, host, f"load{k}"), load_mib, seed=k)
    for i in range(3 * n):
        fleet.docker["host-b"].client().volumes.create(f"bench-v{i}")
    fleet.wait_volume("host-a", "bench-data")
    fleet.wait_volume("host-b", f"bench-v{3 * n - 1}", timeout=60)
    backups = {fmt: run_job(fleet, "/backups", {"volume": "bench-data", "host": "host-a",
                                                "target": "disk", "format": fmt})[1]["backup_id"]
               for fmt in ("tar.zst", "repo")}
    vols = [f"bench-v{i}" for i in range(3 * n)]
    results = {"idle": measure(fleet, n, backups, "idle", vols[:n])}
    with load(fleet, [("host-a", "load1"), ("host-b", "load1")]):
        results["busy"] = measure(fleet, n, backups, "busy", vols[n:2 * n])
    with load(fleet, [(h, f"load{k}") for h in ("host-a", "host-b") for k in (1, 2)]):
        results["saturated"] = measure(fleet, max(5, n // 4), backups, "saturated", [])
    return results


def report(results: dict[str, dict[str, list[float]]], n: int) -> None:
    load = os.getloadavg()
    print(f"Machine: nproc {os.cpu_count()}, {platform.processor() or platform.machine()}, "
          f"kernel {platform.release()}, python {platform.python_version()}, "
          f"load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {n} calls per row unless noted\n")
    print("| state | call | calls | errors | p50 ms | p99 ms | max ms | target |")
    print("|---|---|---|---|---|---|---|---|")
    for state, rows in results.items():
        for name, samples in rows.items():
            p50, p99, mx = percentiles(samples)
            target = TARGETS.get(name, 1000.0)
            errors = FAILED.get(f"{state} {name}", 0)
            verdict = "PASS" if p99 < target and not errors else "FAIL"
            print(f"| {state} | {name} | {len(samples)} | {errors} | {p50:.0f} | {p99:.0f} | "
                  f"{mx:.0f} | < {target:.0f} ms: {verdict} |")


if __name__ == "__main__":
    main()
