"""Kill drill: SIGKILL of the worker at random instants during backup, restore, replace
and copy, in both formats (``tar.zst`` archive, ``repo``) and on both targets (a local
directory, S3 on moto), on a real fleet.

Usage::

    python benchmarks/kill_drill.py [--seed 1] [--runs 4] [--mib 6]

Starts what ``tests/fixtures/fleet.py`` starts — a private PostgreSQL and Redis, a private
dockerd (host ``host-k``), moto S3, ``volkeeper serve`` and one ``volkeeper worker`` —
with the worker's storage throttled (``--rate`` MiB/s) so a job lasts a few seconds. For
every cell (operation x format x target) one job first runs to its end (its duration is
the cell's *typical* time); then ``--runs`` jobs are each submitted and the worker
process is SIGKILLed after a seeded random delay of 2-100 % of that time, the worker is
started again, and the drill waits for the job to be terminal (succeeded or failed, its
volume lock released: an interrupted restore is cleaned up first). Then it counts:

- *damaged*: a repository of a target the job wrote to (the cell's; a copy's destination)
  fails ``check_repository(read_data=True)``; or an archive object in a target has no
  catalog row; or a backup the job made (backup, copy) fails ``verify --read-data``.
- *half-written looking complete*: restore — the new volume exists with content after a
  failed job, or differs from the backed-up tree after a succeeded one; replace — the
  volume is neither its content from before (failed: put back from the safety snapshot)
  nor the backed-up tree (succeeded). Backups and copies write no volume.
- *not terminal*: the job is not succeeded/failed with its lock released within
  120 s of the worker's return.
- *stored, never cataloged*: runs whose archive (backup, safety snapshot, copy) was stored
  but not cataloged when the kill came — removed by the host's housekeeping
  (``common.jobs.leftovers``; the drill waits for it before it checks the target).

A run whose kill came after the job had finished still counts (it is checked the same);
the *killed mid-job* column says how many kills landed while the job ran. The script
prints one line per run and a Markdown table, and exits 1 on any damaged, half-written or
not-terminal run. ``run_cells`` is what tests/integration/fleet/test_kill_drill.py runs on
a small scale.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from common.db import Database, Job  # noqa: E402
from common.repository.check.checker import check_repository  # noqa: E402
from common.repository.core.repository import open_repository  # noqa: E402
from common.storage.base import Backend  # noqa: E402
from common.storage.local import LocalBackend  # noqa: E402
from common.storage.s3 import S3Backend  # noqa: E402
from tests.fixtures.fleet import Fleet  # noqa: E402
from tests.treecmp import compare_trees  # noqa: E402

OPERATIONS = ("backup", "restore", "replace", "copy")
FORMATS = ("tar.zst", "repo")
TARGETS = ("local", "s3")
HOST = "host-k"
REPO_PREFIX = "volkeeper/repo/"


@dataclass
class Cell:
    """One operation x format x target and what its runs left behind."""

    op: str
    fmt: str
    target: str
    runs: int = 0
    killed: int = 0
    damaged: int = 0
    half_written: int = 0
    not_terminal: int = 0
    leftovers: int = 0  # runs whose stored, never-cataloged archive the host removed
    typical: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.op} {self.fmt} {self.target}"


class KillDrill:
    """The drill on one fleet (one host, ``HOST``); see the module docstring."""

    def __init__(self, fleet: Fleet, s3: Any, work: Path, seed: int, mib: int = 6,
                 rate_mib: float = 3.0, settle: float = 120.0) -> None:
        self.fleet, self.s3, self.work = fleet, s3, work
        self.rnd = random.Random(seed)
        self.mib, self.settle = mib, settle
        self.worker_env = {"VOLKEEPER_BANDWIDTH_LIMIT": str(int(rate_mib * 1024 * 1024))}
        self.db = Database(fleet.env["VOLKEEPER_DATABASE_URL"])
        self.passphrase = fleet.env["VOLKEEPER_REPOSITORY_PASSWORD"]
        self.bucket = f"kill-{uuid.uuid4().hex[:10]}"
        self.sources: dict[tuple[str, str], tuple[str, Path]] = {}  # backup id, its tree
        self.counter = 0
        self.reported: set[str] = set()  # stray objects already counted

    # --- set-up -------------------------------------------------------------------------

    def set_up(self) -> None:
        self.s3.client().create_bucket(Bucket=self.bucket)
        (self.work / "local-target").mkdir(parents=True, exist_ok=True)
        self.api("POST", "/targets", {"name": "local",
                                      "url": (self.work / "local-target").as_uri()})
        self.api("POST", "/targets", {
            "name": "s3", "url": f"s3://{self.bucket}/kd",
            "options": {"endpoint_url": self.s3.endpoint_url, "path_style": True,
                        "region": self.s3.region},
            "credentials": {"access_key_id": self.s3.access_key_id,
                            "secret_access_key": self.s3.secret_access_key}})
        self.restart_worker()
        self.volume("kd-src")
        self.fill(self.mount("kd-src"))

    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        with self.fleet.http as c:
            r = c.request(method, path, json=body)
        if r.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {r.status_code} {r.text}")
        return r.json()

    def volume(self, name: str) -> Path:
        self.fleet.docker[HOST].client().volumes.create(name)
        self.fleet.wait_volume(HOST, name)
        return self.mount(name)

    def mount(self, name: str) -> Path:
        return Path(self.fleet.docker[HOST].client().volumes.get(name).attrs["Mountpoint"])

    def remove_volume(self, name: str) -> None:
        import docker

        with suppress(docker.errors.NotFound):
            self.fleet.docker[HOST].client().volumes.get(name).remove(force=True)

    def fill(self, path: Path) -> None:
        """Fresh content: one random file of ``mib`` MiB and 100 small files."""
        (path / "random.bin").write_bytes(self.rnd.randbytes(self.mib << 20))
        small = path / "small"
        small.mkdir(exist_ok=True)
        for i in range(100):
            (small / f"f{i}").write_bytes(self.rnd.randbytes(self.rnd.randrange(4000)))

    def snapshot_tree(self, path: Path, name: str) -> Path:
        """A copy of a volume's tree as it is now (what a restore must give back)."""
        dst = self.work / "trees" / name
        shutil.rmtree(dst, ignore_errors=True)
        dst.mkdir(parents=True)
        subprocess.run(["cp", "-a", f"{path}/.", str(dst)], check=True)
        return dst

    def restart_worker(self) -> None:
        self.fleet.stop_worker(HOST, signal.SIGKILL)
        self.fleet.start_worker(HOST, **self.worker_env)

    def source_backup(self, fmt: str, target: str) -> tuple[str, Path]:
        """A backup of ``kd-src`` (made once, not killed) and the tree it holds."""
        if (fmt, target) not in self.sources:
            job = self.finish(self.submit("backup", fmt, target, {})[0])
            assert job["state"] == "succeeded", job["error"]
            tree = self.snapshot_tree(self.mount("kd-src"), f"src-{fmt}-{target}")
            self.sources[fmt, target] = (job["backup_id"], tree)
        return self.sources[fmt, target]

    # --- one run ------------------------------------------------------------------------

    def submit(self, op: str, fmt: str, target: str, ctx: dict[str, Any]
               ) -> tuple[str, dict[str, Any]]:
        """Prepare and submit one job of ``op``; returns its id and what the checks need."""
        self.counter += 1
        n = self.counter
        if op == "backup":
            self.fill(self.mount("kd-src"))  # new data to store
            job = self.api("POST", "/backups", {"volume": "kd-src", "host": HOST,
                                                "target": target, "format": fmt})
            return job["id"], ctx
        if op == "copy":  # of a fresh backup: a copy the destination holds is not redone
            self.fill(self.mount("kd-src"))
            job = self.finish(self.api("POST", "/backups", {
                "volume": "kd-src", "host": HOST, "target": target, "format": fmt})["id"])
            assert job["state"] == "succeeded", job["error"]
            backup_id = job["backup_id"]
            dest = "s3" if target == "local" else "local"
            job = self.api("POST", f"/backups/{backup_id}/copy", {"target": dest})
            return job["id"], ctx | {"dest": dest}
        if op == "restore":
            backup_id, tree = self.source_backup(fmt, target)
            into = f"kd-r{n}"
            job = self.api("POST", "/restores", {"backup_id": backup_id, "into": into})
            return job["id"], ctx | {"volume": into, "expected": tree}
        # replace: a volume of its own, backed up once, then given other content
        name = f"kd-p-{fmt.replace('.', '')}-{target}"
        if (name, target) not in self.sources:
            self.fill(self.volume(name))
            job = self.finish(self.api("POST", "/backups", {
                "volume": name, "host": HOST, "target": target, "format": fmt})["id"])
            assert job["state"] == "succeeded", job["error"]
            self.sources[name, target] = (job["backup_id"],
                                          self.snapshot_tree(self.mount(name), name))
        backup_id, tree = self.sources[name, target]
        self.fill(self.mount(name))
        (self.mount(name) / f"only-before-{n}.txt").write_text("must survive a failure")
        before = self.snapshot_tree(self.mount(name), f"{name}-before")
        job = self.api("POST", "/restores", {"backup_id": backup_id, "mode": "replace"})
        return job["id"], ctx | {"volume": name, "expected": tree, "before": before}

    def finish(self, job_id: str) -> dict[str, Any]:
        """The job once terminal with its lock released (within ``settle`` seconds)."""
        deadline = time.monotonic() + self.settle
        while time.monotonic() < deadline:
            with self.db.session() as s:
                row = s.get(Job, job_id)
                done = row is not None and row.state.finished and row.active_lock is None
            if done:
                return dict(self.api("GET", f"/jobs/{job_id}"))
            time.sleep(0.2)
        return dict(self.api("GET", f"/jobs/{job_id}")) | {"not_terminal": True}

    def run(self, cell: Cell, kill_after: float | None) -> None:
        """One job of the cell, SIGKILLed ``kill_after`` seconds after its submission."""
        job_id, ctx = self.submit(cell.op, cell.fmt, cell.target, {})
        began = time.monotonic()  # the job was submitted (its preparation is done)
        mid_job = False
        if kill_after is not None:
            time.sleep(max(0.0, kill_after - (time.monotonic() - began)))
            mid_job = self.api("GET", f"/jobs/{job_id}")["state"] in ("queued", "running")
            self.restart_worker()
        job = self.finish(job_id)
        if kill_after is not None and job["state"] == "failed" and cell.fmt != "repo" \
                and cell.op in ("backup", "replace", "copy"):
            cell.leftovers += bool(self.settle_leftovers(job_id))
        if kill_after is None:
            cell.typical = time.monotonic() - began
        problems = self.check(cell, job, ctx)
        if kill_after is None:
            if job["state"] != "succeeded" or problems:
                raise RuntimeError(f"{cell.name}: the un-killed job: {job['error']} "
                                   f"{problems}")
            return
        cell.runs += 1
        cell.killed += mid_job
        cell.not_terminal += bool(job.get("not_terminal"))
        cell.damaged += any(p.startswith("damaged") for p in problems)
        cell.half_written += any(p.startswith("half-written") for p in problems)
        cell.problems += [f"{job_id}: {p}" for p in problems]
        when = "mid-job" if mid_job else "after the job"
        print(f"{cell.name}: SIGKILL after {kill_after:.2f}s of {cell.typical:.2f}s "
              f"({when}): {job['state']}{' NOT TERMINAL' if job.get('not_terminal') else ''}"
              f"{' — ' + '; '.join(problems) if problems else ''}", flush=True)
        if ctx.get("volume", "").startswith("kd-r"):
            self.remove_volume(ctx["volume"])

    def settle_leftovers(self, job_id: str) -> list[str]:
        """Wait (up to ``settle``) until the host's housekeeping looked for the archive
        objects the failed job may have stored but never cataloged
        (``common.jobs.leftovers``, which notes the keys it removed on the job)."""
        deadline = time.monotonic() + self.settle
        while time.monotonic() < deadline:
            with self.db.session() as s:
                row = s.get(Job, job_id)
                if row is None:
                    return []
                if "leftovers" in (row.result or {}):
                    return list(row.result["leftovers"])
            time.sleep(0.3)
        return []

    # --- checks -------------------------------------------------------------------------

    def check(self, cell: Cell, job: dict[str, Any], ctx: dict[str, Any]) -> list[str]:
        problems = []
        written = [ctx["dest"]] if cell.op == "copy" else [cell.target]
        for target in written:
            problems += self.target_damage(target, cell.fmt)
        if job["state"] == "succeeded" and cell.op in ("backup", "copy"):
            new_id = job["backup_id"] if cell.op == "backup" else job["result"][
                "copy_backup_id"]
            problems += self.verify(str(new_id), cell.fmt)
        if cell.op in ("restore", "replace"):
            problems += self.volume_state(cell.op, job, ctx)
        return problems

    def backend(self, target: str) -> Backend:
        if target == "local":
            return LocalBackend(self.work / "local-target")
        return S3Backend(**self.s3.backend_kwargs(self.bucket), prefix="kd")

    def target_damage(self, target: str, fmt: str) -> list[str]:
        backend = self.backend(target)
        try:
            if fmt == "repo":
                report = check_repository(open_repository(backend, self.passphrase),
                                          read_data=True)
                return [] if report.ok else [f"damaged repository in {target}: "
                                             f"{[p.to_dict() for p in report.problems][:3]}"]
            known = set()
            for kind in ("backup", "safety"):
                for b in self.api("GET", f"/backups?target={target}&kind={kind}&limit=1000"):
                    known |= {b["key"], b["manifest_key"]}
            stray = [o.key for o in backend.list("") if not o.key.startswith(REPO_PREFIX)
                     and o.key not in known and o.key not in self.reported]
            self.reported |= set(stray)  # counted once, in the run that left them
            return [f"damaged target {target}: objects without a catalog row: {stray[:3]}"
                    ] if stray else []
        finally:
            backend.close()

    def verify(self, backup_id: str, fmt: str) -> list[str]:
        body = {"read_data": True} if fmt == "repo" else {}  # archives are read whole
        job = self.finish(self.api("POST", f"/backups/{backup_id}/verify", body)["id"])
        if job["state"] != "succeeded":
            return [f"damaged backup {backup_id}: verify {job['state']}: {job['error']}"]
        return []

    def volume_state(self, op: str, job: dict[str, Any], ctx: dict[str, Any]) -> list[str]:
        name = ctx["volume"]
        exists = name in {v.name for v in self.fleet.docker[HOST].client().volumes.list()}
        path = self.mount(name) if exists else None
        if op == "restore" and job["state"] == "failed":
            if path is not None and any(path.iterdir()):
                return [f"half-written volume {name} left after a failed restore"]
            return []
        want: Path = ctx["expected"] if job["state"] == "succeeded" else ctx["before"]
        if path is None:
            return [f"half-written: volume {name} is gone after a {job['state']} {op}"]
        diffs = compare_trees(want, path)
        return [f"half-written volume {name} after a {job['state']} {op}: {diffs[:3]}"
                ] if diffs else []


def run_cells(drill: KillDrill, cells: list[Cell], runs: int) -> list[Cell]:
    """Calibrate each cell with one un-killed job, then ``runs`` killed ones."""
    drill.set_up()
    for cell in cells:
        drill.run(cell, None)
        for _ in range(runs):
            drill.run(cell, cell.typical * drill.rnd.uniform(0.02, 1.0))
    return cells


def all_cells() -> list[Cell]:
    return [Cell(op, fmt, target) for op in OPERATIONS for fmt in FORMATS for target in TARGETS]


def table(cells: list[Cell]) -> str:
    rows = ["| operation | format | target | runs | killed mid-job | damaged repositories / "
            "targets | half-written volumes looking complete | jobs not terminal | "
            "stored, never cataloged (removed by the host) |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for c in cells:
        half = str(c.half_written) if c.op in ("restore", "replace") else "n/a"
        rows.append(f"| {c.op} | {c.fmt} | {c.target} | {c.runs} | {c.killed} | {c.damaged} "
                    f"| {half} | {c.not_terminal} | {c.leftovers} |")
    total = Cell("all", "", "")
    for c in cells:
        for k in ("runs", "killed", "damaged", "half_written", "not_terminal", "leftovers"):
            setattr(total, k, getattr(total, k) + getattr(c, k))
    rows.append(f"| **all** | | | {total.runs} | {total.killed} | {total.damaged} | "
                f"{total.half_written} | {total.not_terminal} | {total.leftovers} |")
    return "\n".join(rows)


def failures(cells: list[Cell]) -> list[str]:
    return [f"{c.name}: {p}" for c in cells for p in c.problems] + [
        f"{c.name}: {c.not_terminal} jobs not terminal" for c in cells if c.not_terminal]


@contextmanager
def servers(work: Path) -> Iterator[tuple[Fleet, Any]]:
    """PostgreSQL, Redis, a dockerd, moto S3 and the fleet on them (all private)."""
    from moto.server import ThreadedMotoServer

    from tests.fixtures.dockerd import DockerdFactory
    from tests.fixtures.fleet import running_fleet
    from tests.fixtures.s3 import S3Server
    from tests.fixtures.servers import PostgresServer, RedisServer
    from tests.fixtures.util import free_port, require_binary

    roots = [Path(tempfile.mkdtemp(prefix=p)) for p in ("vk-kredis-", "vk-kpg-")]
    roots[1].chmod(0o755)  # the postgres user enters it
    redis = RedisServer(require_binary("redis-server"), roots[0], free_port())
    postgres = PostgresServer(roots[1], free_port())
    factory = DockerdFactory()
    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    try:
        redis.start()
        postgres.init()
        moto.start()
        docker = {HOST: factory.start(HOST)}
        db_url = postgres.create_database(f"kill_{uuid.uuid4().hex[:8]}")
        with running_fleet(work, db_url, redis.url, docker) as fleet:
            yield fleet, S3Server(endpoint_url=f"http://127.0.0.1:{port}")
    finally:
        factory.stop_all()
        moto.stop()
        redis.kill()
        postgres.stop(mode="immediate")
        for d in roots:
            shutil.rmtree(d, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--runs", type=int, default=4, help="killed runs per cell (16 cells)")
    ap.add_argument("--mib", type=int, default=6, help="size of the random file of a volume")
    ap.add_argument("--rate", type=float, default=3.0, help="worker storage MiB/s")
    args = ap.parse_args()
    os.chdir(REPO)  # the fleet's processes run from the checkout
    work = Path(tempfile.mkdtemp(prefix="vk-killdrill-"))
    began = time.monotonic()
    try:
        with servers(work) as (fleet, s3):
            drill = KillDrill(fleet, s3, work, args.seed, args.mib, args.rate)
            cells = run_cells(drill, all_cells(), args.runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nseed {args.seed}, {args.runs} killed runs per cell, {args.mib} MiB volumes at "
          f"{args.rate} MiB/s, {time.monotonic() - began:.0f}s\n")
    print(table(cells))
    bad = failures(cells)
    for line in bad:
        print("FAIL", line)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
