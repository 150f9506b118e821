"""Benchmark of a migration (issue 14), embedded on one private dockerd.

Usage (root: a private dockerd)::

    python benchmarks/migrate_bench.py [--size 256M] [--fraction 0.05] \
        [--workdir /var/tmp/vkmig] [--no-results]

The mixed dataset (``dataset.py``) is generated into a Docker volume. Each step writes
through its own fresh target, so no step profits from another's repository.

- ``cold copy``: ``volkeeper backup VOL --format repo`` then ``volkeeper restore ID
  --into NEW`` — whole processes, as users run them; their sum is what moving the volume
  costs without a migration, and the downtime of a move without pre-copy.
- ``migrate``: ``volkeeper migrate VOL --to-host H --to-volume NEW2 --via T`` (whole
  process, nothing changes while it runs): pre-copy, cut-over, verify. Target: total
  at most 1.3 times the cold copy.
- ``downtime``: the same migration driven in-process (``Coordinator``), with ``fraction``
  of the source's data bytes changed right before the cut-over (``dataset.mutate``, as
  an application writing between pre-copy and cut-over; reverted afterwards). Its
  downtime is the one the migration itself measures and reports (stop → verified: final
  backup, in-place sync, verify). Target: ≤ 25 % of the cold copy.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from dataset import MiB, generate, mutate, parse_size, revert  # noqa: E402
from privdockerd import PrivateDockerd  # noqa: E402
from procs import fresh_dir, machine, run  # noqa: E402
from results import record  # noqa: E402

HOST = "bench"
PASSWORD = "vkmig benchmark passphrase"


def environment(work: Path, docker_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOLKEEPER_")}
    return env | {"VOLKEEPER_HOME": str(work / "home"), "VOLKEEPER_DOCKER_HOST": docker_url,
                  "VOLKEEPER_HOST_NAME": HOST, "VOLKEEPER_REPOSITORY_PASSWORD": PASSWORD,
                  "VOLKEEPER_REPOSITORY_KDF_N": "16384",
                  "VOLKEEPER_RESTORE_DEVICE_NODES": "true",
                  "VOLKEEPER_ALLOWED_TARGET_ROOTS": str(work),
                  "PYTHONPATH": str(HERE.parent)}


def cli(env: dict[str, str], *args: str) -> tuple[float, Any]:
    m = run([sys.executable, "-m", "cli.main", *args, "--json"], env=env,
            cwd=str(HERE.parent))
    return m.wall, json.loads(m.stdout)


def add_target(env: dict[str, str], work: Path, name: str) -> str:
    path = fresh_dir(work / f"target-{name}")
    run([sys.executable, "-m", "cli.main", "targets", "add", name, f"file://{path}"],
        env=env, cwd=str(HERE.parent))
    return name


def measure(work: Path, size: int, fraction: float) -> dict[str, Any]:
    with PrivateDockerd(work / "docker") as d:
        for v in ("mb-src", "mb-cold", "mb-mig", "mb-mig2"):
            d.remove_volume(v)
        src = d.create_volume("mb-src")
        info = generate(src, size)
        env = environment(work, d.url)
        fresh_dir(work / "home")
        for t in ("cold", "mig", "mig2"):
            add_target(env, work, t)
        backup_s, b = cli(env, "backup", "mb-src", "--format", "repo", "--target", "cold")
        restore_s, _ = cli(env, "restore", b["backup_id"], "--into", "mb-cold")
        cold = backup_s + restore_s
        migrate_s, m = cli(env, "migrate", "mb-src", "--to-host", HOST, "--to-volume",
                           "mb-mig", "--via", "mig")
        assert m["state"] == "succeeded", m
        down = downtime(env, work, src, fraction)
        return {"dataset": info.describe(), "cold": cold, "backup": backup_s,
                "restore": restore_s, "migrate": migrate_s, "migration": m,
                "downtime": down}


def downtime(env: dict[str, str], work: Path, src: Path, fraction: float) -> dict[str, Any]:
    os.environ.update({k: v for k, v in env.items() if k.startswith("VOLKEEPER_")})
    from common.config import get_settings
    from common.jobs import host
    from common.jobs.embedded import EmbeddedRuntime
    from common.jobs.migration_flow import Coordinator
    from common.jobs.migrations import MigrationService

    save = work / "mutation"
    if save.exists():
        import shutil

        shutil.rmtree(save)
    changed: list[int] = []

    def before(step: str, _m: Any) -> None:
        if step == "cutover.backup":
            changed.append(mutate(src, save, fraction))
            os.sync()

    with EmbeddedRuntime(get_settings(), background=False) as rt:
        host.refresh_inventory(rt.ctx)
        service = MigrationService(rt.service)
        m = service.submit(request={"volume": "mb-src", "to_host": HOST,
                                    "to_volume": "mb-mig2", "via": "mig2"})
        try:
            Coordinator(rt.service, observer=before).run(m["id"], timeout=3600)
        finally:
            if save.exists():
                revert(src, save)
        done = service.get(m["id"])
    assert done["state"] == "succeeded", done
    return {"seconds": done["downtime_seconds"], "changed": changed[0], "view": done}


def _phase(view: dict[str, Any], name: str) -> float:
    from datetime import datetime

    for p in view["phases"]:
        if p["name"] == name and p["started_at"] and p["finished_at"]:
            return (datetime.fromisoformat(p["finished_at"])
                    - datetime.fromisoformat(p["started_at"])).total_seconds()
    return float("nan")


def report(size: int, fraction: float, r: dict[str, Any]) -> str:
    mach = machine()
    d = r["downtime"]
    total = r["migrate"] / r["cold"]
    down = d["seconds"] / r["cold"]
    view = d["view"]
    lines = [
        f"Run of {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: embedded, one "
        f"private dockerd, plain volume → new volume; mixed dataset {size // MiB} MiB "
        f"({r['dataset']}); {mach.get('nproc', '?')} CPUs, load "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}.", "",
        "| step | seconds |", "|---|---|",
        f"| cold copy: `volkeeper backup` + `volkeeper restore` | {r['cold']:.2f} "
        f"({r['backup']:.2f} + {r['restore']:.2f}) |",
        f"| `volkeeper migrate` (whole process, nothing changing) | {r['migrate']:.2f} |",
        f"| … of which pre-copy (backup, restore + its record, check) / cut-over / verify | "
        f"{_phase(r['migration'], 'pre-copy'):.2f} / {_phase(r['migration'], 'cut-over'):.2f}"
        f" / {_phase(r['migration'], 'verify'):.2f} |",
        f"| downtime with {fraction:.0%} changed ({d['changed'] / MiB:.1f} MiB) before the "
        f"cut-over | {d['seconds']:.2f} |",
        f"| … of which cut-over (final backup + in-place sync) / verify | "
        f"{_phase(view, 'cut-over'):.2f} / {_phase(view, 'verify'):.2f} |", "",
        f"- **migrate / cold copy = {total:.2f}** (target ≤ 1.3: "
        f"{'PASS' if total <= 1.3 else 'FAIL'})",
        f"- **downtime / cold copy = {down:.2f}** (target ≤ 0.25: "
        f"{'PASS' if down <= 0.25 else 'FAIL'})",
        "- The pre-copy's restore records what it wrote (a stat walk: each file's inode, "
        "size, mtime, ctime and the snapshot's chunk ids; the restore verified every blob "
        "as it wrote it); the checks after it read only the files whose stat changed "
        "since (the cut-over's sync, or anyone else: a write moves the ctime).", ""]
    return "\n".join(lines)


def write_results(section: str) -> None:
    record("migrate-run", section, new_heading="## Migration")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="256M", help="size of the mixed dataset")
    p.add_argument("--fraction", type=float, default=0.05)
    p.add_argument("--workdir", default="/var/tmp/vkmig")
    p.add_argument("--no-results", action="store_true", help="do not update RESULTS.md")
    args = p.parse_args()
    size = parse_size(args.size)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    r = measure(work, size, args.fraction)
    section = report(size, args.fraction, r)
    print(section)
    if not args.no_results:
        write_results(section)


if __name__ == "__main__":
    main()
