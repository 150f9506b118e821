"""The console's first useful paint per page, in a real browser (issue 15: < 1 s each with
2 hosts x 500 volumes and 10,000 backups in the catalog).

A real ``volkeeper serve`` (embedded, SQLite under a temp home) whose catalog is seeded
before it starts: an inventory of 2 hosts x 500 volumes, 10,000 backups spread over them,
3,000 finished jobs (some failed, with hints), 100 policies. Docker is not needed (the
host loops only log that Docker does not answer). Chromium (Debian's, driven by
Playwright) logs in with the server's token, then opens each page ``--n`` times in a
fresh tab — a full load: the shell, its modules, the API calls and the drawing — and
reads the ``volkeeper:<page>`` performance mark each page sets once its data is on
screen (``ui.mark``), in ms since the navigation started. Beside it, the server's share:
each page's API reads made one after another over HTTP (best of 3).

    python benchmarks/console_bench.py [--n 5] [--record]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from common.auth import login_url  # noqa: E402
from common.db import Backup, Database, Job, JobState, Policy, hosts  # noqa: E402
from common.db.migrate import upgrade  # noqa: E402
from common.db.models import new_id  # noqa: E402

HOSTS, VOLUMES, BACKUPS, JOBS, POLICIES = ("h1", "h2"), 500, 10_000, 3_000, 100
TARGET_MS = 1000.0


def seed(home: Path) -> tuple[str, str]:
    """The catalog the server starts with; returns a volume and a job to open."""
    db = Database(f"sqlite:///{home / 'volkeeper.db'}")
    upgrade(db, quiet=True)
    now = datetime.now(UTC)
    names = [(h, f"{h}-v{k:03d}") for h in HOSTS for k in range(VOLUMES)]
    with db.session() as s:
        for h in HOSTS:
            hosts.register_host(s, h, docker_version="28.2", worker_version="bench")
            hosts.replace_inventory(s, h, [
                {"name": f"{h}-v{k:03d}", "driver": "local", "mountpoint": f"/x/{k}",
                 "size_bytes": 4096 * k, "labels": {"volkeeper.policy": f"p{k % POLICIES}"},
                 "containers": {"items": [{"id": f"c{k}", "name": f"app{k}",
                                           "state": "running", "labels": {}}]},
                 "created_at": None} for k in range(VOLUMES)])
    with db.session() as s:
        s.add_all(Backup(
            id=new_id(), host=h, volume=v, target="local", format="tar.zst",
            key=f"volkeeper/archives/{h}/{v}/{i}.tar.zst",
            manifest_key=f"volkeeper/archives/{h}/{v}/{i}.tar.zst.manifest.jsonl",
            checksum="0" * 64, logical_bytes=1 << 20, stored_bytes=1 << 19, file_count=10,
            created_at=now - timedelta(hours=i // len(names) * 24 + i % 24),
            tags=["nightly"] if i % 7 == 0 else [], pinned=i % 97 == 0)
            for i, (h, v) in ((i, names[i % len(names)]) for i in range(BACKUPS)))
        s.add_all(Job(
            id=new_id(), kind="backup" if i % 10 else "drill", host=names[i % len(names)][0],
            volume=names[i % len(names)][1], target="local",
            state=JobState.failed if i % 50 == 0 else JobState.succeeded,
            error=("target local is not a directory (point the target at a directory)"
                   if i % 50 == 0 else None),
            params={}, progress={}, result={"passed": True} if i % 10 == 0 else {},
            requested_by="bench", created_at=now - timedelta(minutes=i),
            started_at=now - timedelta(minutes=i), finished_at=now - timedelta(minutes=i))
            for i in range(JOBS))
        for k in range(POLICIES):
            s.add(Policy(name=f"p{k:03d}", selection={"selector": f"volkeeper.policy=p{k}"},
                         schedule="0 2 * * *", tz="Europe/Berlin", jitter_seconds=0,
                         targets=["local"], retention={"keep_daily": 7}, created_at=now,
                         updated_at=now))
        job_id = s.scalar(Job.__table__.select().with_only_columns(Job.id).limit(1))
    db.dispose()
    return f"{HOSTS[0]}/{HOSTS[0]}-v007", str(job_id)


def serve(home: Path, tmp: Path, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOLKEEPER_")}
    env |= {"VOLKEEPER_HOME": str(home), "VOLKEEPER_HOST_NAME": "h1",
            "VOLKEEPER_DOCKER_HOST": f"unix://{tmp}/no-docker.sock",
            "PYTHONPATH": str(HERE.parent)}
    with open(tmp / "serve.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "cli.main", "serve", "--port", str(port)],
                                env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=2).status_code \
                    in (200, 503):
                return proc
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit((tmp / "serve.log").read_text()[-2000:])
        time.sleep(0.2)


def api_calls(volume: str, job_id: str) -> dict[str, list[str]]:
    """The API reads each page makes before its mark (besides /whoami)."""
    host, name = volume.split("/")
    return {
        "overview": ["/health", "/hosts", "/volumes?overdue=true",
                     "/jobs?job_state=running&limit=100", "/jobs?job_state=queued&limit=100",
                     "/jobs?job_state=failed&limit=200", "/drills?limit=100", "/targets"],
        "volumes": ["/volumes", "/hosts"],
        "volume": [f"/hosts/{host}/volumes/{name}", "/targets",
                   f"/backups?host={host}&volume={name}&limit=500",
                   f"/jobs?host={host}&volume={name}&limit=50"],
        "backups": ["/backups?kind=backup&limit=100&offset=0"],
        "jobs": ["/jobs?limit=100&offset=0"], "job": [f"/jobs/{job_id}"],
        "policies": ["/policies"], "policy": ["/policies/p001", "/targets"],
        "restore": ["/backups/volumes", "/hosts"], "targets": ["/targets"],
        "keys": ["/targets", "/tokens"], "hosts": ["/hosts", "/health"],
        "audit": ["/audit?limit=200"]}


def api_ms(url: str, token: str, calls: dict[str, list[str]], rounds: int = 3
           ) -> dict[str, float]:
    """Per page: its API reads one after another (the server's share of the paint; the
    browser makes them in parallel), the best of ``rounds``."""
    out = {}
    with httpx.Client(base_url=url + "/api/v1", timeout=60,
                      headers={"Authorization": f"Bearer {token}"}) as c:
        for page, paths in calls.items():
            best = float("inf")
            for _ in range(rounds):
                t0 = time.perf_counter()
                for path in paths:
                    c.get(path).raise_for_status()
                best = min(best, (time.perf_counter() - t0) * 1000)
            out[page] = best
    return out


def measure(url: str, token: str, pages: list[tuple[str, str]], n: int
            ) -> dict[str, list[float]]:
    from playwright.sync_api import sync_playwright

    executable = next((p for p in map(shutil.which, ("chromium", "chromium-browser",
                                                      "google-chrome")) if p), None)
    if executable is None:
        raise SystemExit("no chromium binary (apt-get install chromium)")
    out: dict[str, list[float]] = {name: [] for name, _ in pages}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        login = context.new_page()
        login.goto(login_url(url, token))
        login.wait_for_url(url + "/")
        login.close()
        for _ in range(n):
            for name, route in pages:
                page = context.new_page()
                page.goto(f"{url}/#{route}")
                page.wait_for_selector(f"#main[data-ready='{name}']", timeout=30_000)
                ms = page.evaluate(f"performance.getEntriesByName('volkeeper:{name}')[0]"
                                   ".startTime")
                out[name].append(float(ms))
                page.close()
        browser.close()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=5)
    p.add_argument("--record", action="store_true")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        home = tmp / "home"
        home.mkdir(mode=0o700)
        load_before = os.getloadavg()[0]
        t0 = time.perf_counter()
        volume, job_id = seed(home)
        print(f"seeded in {time.perf_counter() - t0:.1f} s", flush=True)
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        proc = serve(home, tmp, port)
        try:
            token = (home / "api.token").read_text().strip()
            pages = [("overview", "/"), ("volumes", "/volumes"), ("volume", f"/volumes/{volume}"),
                     ("backups", "/backups"), ("jobs", "/jobs"), ("job", f"/jobs/{job_id}"),
                     ("policies", "/policies"), ("policy", "/policies/p001"),
                     ("restore", "/restore"), ("targets", "/targets"), ("keys", "/keys"),
                     ("hosts", "/hosts"), ("audit", "/audit"), ("migrate", "/migrate"),
                     ("migrations", "/migrations"), ("evacuate", "/evacuate"),
                     ("evacuations", "/evacuations")]
            server = api_ms(f"http://127.0.0.1:{port}", token, api_calls(volume, job_id))
            results = measure(f"http://127.0.0.1:{port}", token, pages, args.n)
        finally:
            proc.terminate()
            proc.wait(30)
    lines = ["| page | paint median ms | paint max ms | its API reads, sequential ms | "
             "target < 1 s |", "|---|---|---|---|---|"]
    for name, xs in results.items():
        verdict = "PASS" if max(xs) < TARGET_MS else "FAIL"
        lines.append(f"| {name} | {statistics.median(xs):.0f} | {max(xs):.0f} | "
                     f"{server.get(name, 0):.0f} | {verdict} |")
    table = "\n".join(lines)
    load = f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after (2 cores)"
    print(table)
    print(load)
    if args.record:
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        with open(HERE / "RESULTS.md", "a") as f:
            f.write(f"\n## Console first useful paint (issue 15; `python benchmarks/"
                    f"console_bench.py --n {args.n}`, {stamp})\n\n"
                    f"Chromium, 1280x800, each page loaded {args.n} times in a fresh tab "
                    f"against `volkeeper serve` (embedded, SQLite) with {len(HOSTS)} hosts x "
                    f"{VOLUMES} volumes, {BACKUPS:,} backups, {JOBS:,} jobs, {POLICIES} "
                    f"policies; ms from navigation start to the page's `volkeeper:<page>` "
                    f"mark (its data drawn); {load}:\n\n{table}\n")


if __name__ == "__main__":
    main()
