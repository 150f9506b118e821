"""Latency of the API's interactive calls on a real Docker engine.

Starts a private dockerd (needs root and Debian's docker.io), runs the embedded API app
in-process, makes a volume with ~64 MiB in 2,000 files, backs it up once, then measures:

- ``POST /restores/validate`` (dry run: objects, volume state, free space — on the host's
  worker) — target < 2 s;
- ``POST /backups`` (job submission; the job itself is not waited for) — target well under
  1 s (p99);
- ``GET /volumes`` and ``GET /backups`` (console pages) — target well under 1 s (p99).

Prints p50/p99/max in milliseconds and, with ``--record``, appends them to RESULTS.md.

    python benchmarks/api_latency.py [--n 30] [--record]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered), p99, ordered[-1]


def timed(n: int, call: Callable[[], object]) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        call()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--record", action="store_true")
    args = ap.parse_args()

    from common.config import Settings
    from tests.fixtures.dockerd import DockerdFactory
    from tests.fixtures.embedded import embedded_http

    factory = DockerdFactory()
    try:
        dockerd = factory.start("bench")
        client = dockerd.client()
        client.volumes.create("bench-data")
        mount = Path(client.volumes.get("bench-data").attrs["Mountpoint"])
        for i in range(2000):
            d = mount / f"d{i % 40}"
            d.mkdir(exist_ok=True)
            (d / f"f{i}").write_bytes(os.urandom(32 * 1024))
        home = Path(tempfile.mkdtemp(prefix="vk-apibench-"))
        settings = Settings(home=home, docker_host=dockerd.url, host_name="bench")
        with embedded_http(settings, base_url="http://bench") as http:
            job = http.post("/api/v1/backups", json={"volume": "bench-data"}).json()
            while http.get(f"/api/v1/jobs/{job['id']}").json()["state"] not in (
                    "succeeded", "failed", "cancelled"):
                time.sleep(0.1)
            backup_id = http.get(f"/api/v1/jobs/{job['id']}").json()["backup_id"]
            results = {
                "POST /restores/validate": timed(args.n, lambda: http.post(
                    "/api/v1/restores/validate",
                    json={"backup_id": backup_id, "into": "bench-new"}).raise_for_status()),
                "GET /volumes": timed(args.n, lambda: http.get(
                    "/api/v1/volumes").raise_for_status()),
                "GET /backups": timed(args.n, lambda: http.get(
                    "/api/v1/backups").raise_for_status()),
            }
            submit: list[float] = []
            for i in range(args.n):
                client.volumes.create(f"bench-v{i}")
            http.post("/api/v1/hosts/bench/refresh")
            time.sleep(1)
            for i in range(args.n):
                t0 = time.perf_counter()
                http.post("/api/v1/backups", json={"volume": f"bench-v{i}"}).raise_for_status()
                submit.append((time.perf_counter() - t0) * 1000)
            results["POST /backups (submit)"] = submit
        targets = {"POST /restores/validate": 2000.0}
        lines = ["| call | p50 ms | p99 ms | max ms | target |", "|---|---|---|---|---|"]
        for name, samples in results.items():
            p50, p99, mx = percentiles(samples)
            target = targets.get(name, 1000.0)
            verdict = "PASS" if p99 < target else "FAIL"
            lines.append(f"| {name} | {p50:.0f} | {p99:.0f} | {mx:.0f} | "
                         f"< {target:.0f} ms: {verdict} |")
        table = "\n".join(lines)
        print(table)
        if args.record:
            stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
            with open(REPO / "benchmarks" / "RESULTS.md", "a") as f:
                f.write(f"\n## API latency, embedded, {args.n} calls each ({stamp})\n\n"
                        f"{table}\n")
    finally:
        factory.stop_all()


if __name__ == "__main__":
    main()
