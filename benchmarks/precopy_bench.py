"""The pre-copy restore (a migration's ``precopy.restore`` job) against a plain restore of
the same snapshot, in-process, per phase (issue 14).

    python benchmarks/precopy_bench.py [--size 1G] [--repeat 3] [--dirty 1024] \
        [--workdir /var/tmp/vkprecopy] [--other /work/main] [--arms cold,precopy]

Set up once: the mixed dataset (``dataset.py``) backed up into a local encrypted
repository (S1). Each repeat runs every arm in a new process (this checkout and
``--other``, alternating; ``PYTHONPATH`` picks the code), each into a new directory:

- ``cold``: what a plain ``restore`` job does past Docker: the repository opened
  (``open_repo``), the snapshot loaded, the shared lock taken, ``restore_snapshot``;
- ``precopy``: the same, then the pre-copy's record as the job makes it
  (``migration_steps.record_restored`` past Docker; in a checkout with
  ``PrecopyRecord`` walked inside the restore's lock, the flush started after the save);
  ``precopy-beside``: that with the flush started before the walk, as main does.

Before each arm an untimed ``os.sync()``, then ``--dirty`` MiB written into a file beside
the repository and left dirty (the fleet's restore follows a backup that just wrote the
repository: the destination's ``syncfs`` writes that out too). Prints per-arm medians and
each phase's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PASSWORD = "vkprecopy-bench"


def setup(work: Path, size: str) -> Path:
    sys.path[:0] = [str(HERE.parent), str(HERE)]
    from dataset import ensure, parse_size
    from procs import fresh_dir, machine

    from common.repository import init_repository, open_repository
    from common.repository.backup.archiver import backup_directory
    from common.repository.core.keys import KdfParams
    from common.storage.local import LocalBackend

    info = ensure(work / f"data-{size}", parse_size(size))
    print(f"dataset: {info.describe()}; {machine()}", flush=True)
    store = fresh_dir(work / "repo")
    init_repository(LocalBackend(str(store)), PASSWORD, kdf=KdfParams(2**14, 8, 1))
    repo = open_repository(LocalBackend(str(store)), PASSWORD)
    s1 = backup_directory(repo, Path(info.root), host="bench", volume="vol")
    repo.load_index()
    repo.index.flush()
    state = work / "state.json"
    state.write_text(json.dumps({"repo": str(store), "s1": s1.id.hex()}))
    return state


def run(state_path: Path, arm: str, out_dir: Path, dirty: int) -> None:
    """One arm in this process (its ``PYTHONPATH`` picks the code); prints its phases."""
    from common.config import Settings
    from common.engine.records import StoredBackup
    from common.engine.repo import load_backup
    from common.jobs import migration_steps as steps
    from common.progress import NullTracker
    from common.repository.core.locks import backup_lock
    from common.repository.restore.restorer import restore_snapshot
    from common.storage.local import LocalBackend

    state = json.loads(state_path.read_text())
    home = out_dir.parent / f"{out_dir.name}-home"
    settings = Settings(home=home, repository_password=PASSWORD)
    backend = LocalBackend(state["repo"])
    backup = StoredBackup(id="b1", key="", manifest_key="", format="repo", checksum="",
                          logical_bytes=0, file_count=0, volume="vol", host="bench",
                          snapshot_id=state["s1"])
    load_backup(backend, backup, settings)  # the key derived (a worker has it cached)
    os.sync()
    if dirty:
        junk = out_dir.parent / f"{out_dir.name}-dirty"
        with open(junk, "wb") as f:
            block = b"\1" * (1 << 20)
            for _ in range(dirty):
                f.write(block)
    phases: dict[str, float] = {}
    inside = arm.startswith("precopy") and hasattr(steps, "PrecopyRecord")
    t0 = t = time.perf_counter()
    repo, snap = load_backup(backend, backup, settings)
    with backup_lock(repo, "restore"):
        restore_snapshot(repo, snap, out_dir, progress=NullTracker(), devices=False)
        phases["restore"] = time.perf_counter() - t
        if inside:  # this checkout walks the record inside the restore
            t = time.perf_counter()
            if arm == "precopy-beside":  # the flush started before the walk (as main)
                from common.engine.flush import flush_behind as beside

                beside([out_dir])
            walk = steps.PrecopyRecord(NullTracker())
            if os.environ.get("PRECOPY_PROFILE"):  # the walk's profile on stderr
                import cProfile
                import pstats

                prof = cProfile.Profile()
                prof.runcall(walk.walk, repo, snap, out_dir)
                pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(18)
            else:
                walk.walk(repo, snap, out_dir)
            phases["walk"] = time.perf_counter() - t
    if inside:
        from common.engine.flush import flush_behind
        from common.jobs.migration_state import state_file

        t = time.perf_counter()
        steps.keep_record(state_file(settings.home, "m1"), walk.report, walk.seen,
                          walk.snapshot_id)
        if arm != "precopy-beside":
            flush_behind([out_dir])
        phases["save"] = time.perf_counter() - t
        assert walk.report is not None and walk.report.ok, walk.report
    elif arm.startswith("precopy"):
        t = time.perf_counter()
        out = _main_record(backend, backup, out_dir, settings, phases)
        phases["record"] = time.perf_counter() - t
        assert not out["record_problems"] or all(
            p.startswith("/:") for p in out["record_problems"]), out
    phases["total"] = time.perf_counter() - t0
    print(json.dumps(phases))


def _main_record(backend, backup, d, settings, phases):  # type: ignore[no-untyped-def]
    """``record_restored`` of a checkout without ``record_precopy`` (main), past Docker."""
    from common.engine.flush import flush_behind, flushing
    from common.jobs.migration_state import (
        ROOT_META,
        boot_id,
        held_path,
        hold,
        save_record,
        state_file,
    )
    from common.progress import NullTracker

    seen: dict = {}
    wait = boot_id() is None
    if not wait:
        flush_behind([d])
    import contextlib

    from common.engine.repo import load_backup
    from common.engine.tree_compare import compare_tree
    from common.repository.core.locks import backup_lock
    with flushing([d]) if wait else contextlib.nullcontext():
        # ``compare_backup``'s steps, each timed
        t = time.perf_counter()
        repo, snap = load_backup(backend, backup, settings)
        phases["open"] = time.perf_counter() - t
        t = time.perf_counter()
        lock = backup_lock(repo, "comparison")
        phases["lock"] = time.perf_counter() - t
        t = time.perf_counter()
        repo.load_index()
        phases["index"] = time.perf_counter() - t
        t = time.perf_counter()
        with lock:
            report = compare_tree(repo, snap, d, NullTracker(), seen=seen, written=True)
            phases["walk"] = time.perf_counter() - t
            t = time.perf_counter()
        phases["unlock"] = time.perf_counter() - t
    t = time.perf_counter()
    state = state_file(settings.home, "m1")
    held_path(state).unlink(missing_ok=True)
    save_record(state, seen)
    if report.problem_count == len(report.problems) and all(
            p.startswith(ROOT_META) for p in report.problems):
        hold(state, backup.snapshot_id or "")
    phases["save"] = time.perf_counter() - t
    return {"files_recorded": len(seen), "record_problems": report.problems[:10]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="1G")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--dirty", type=int, default=1024, help="MiB left dirty before each arm")
    p.add_argument("--workdir", default="/var/tmp/vkprecopy")
    p.add_argument("--other", default="", help="another checkout to A/B against")
    p.add_argument("--arms", default="cold,precopy")
    p.add_argument("--run", nargs=3, help=argparse.SUPPRESS)  # a child: state arm dir
    p.add_argument("--reuse", action="store_true", help="keep an earlier setup")
    args = p.parse_args()
    if args.run:
        run(Path(args.run[0]), args.run[1], Path(args.run[2]), args.dirty)
        return
    work = Path(args.workdir)
    state = work / "state.json"
    if not (args.reuse and state.exists()):
        state = setup(work, args.size)
    sys.path[:0] = [str(HERE)]
    from procs import Deleter

    checkouts = {"this": str(HERE.parent)}
    if args.other:
        checkouts["other"] = args.other
    arms = [(c, a) for c in checkouts for a in args.arms.split(",")]
    times: dict[tuple[str, str], list[dict[str, float]]] = {x: [] for x in arms}
    n = 0
    made: list[Path] = []
    try:
        for i in range(args.repeat):
            k = i % len(arms)
            for co, arm in arms[k:] + arms[:k]:
                n += 1
                d = work / f"out-{n}"
                Deleter.remove([d])
                d.mkdir(parents=True)
                made += [d, work / f"out-{n}-home", work / f"out-{n}-dirty"]
                env = dict(os.environ, PYTHONPATH=checkouts[co], PYTHONDONTWRITEBYTECODE="1")
                res = subprocess.run([sys.executable, __file__, "--dirty", str(args.dirty),
                                      "--run", str(state), arm, str(d)], env=env,
                                     check=True, capture_output=True, text=True)
                got = json.loads(res.stdout.strip().splitlines()[-1])
                times[(co, arm)].append(got)
                print(f"  {i} {co} {arm}: " + ", ".join(f"{k} {v:.3f}" for k, v in got.items()),
                      flush=True)
    finally:
        for old in made:
            if old.is_dir():
                Deleter.remove([old])
            else:
                old.unlink(missing_ok=True)
    for x in arms:
        keys = sorted({k for r in times[x] for k in r})
        print(f"{x[0]} {x[1]}: " + ", ".join(
            f"{k} {statistics.median(r.get(k, 0.0) for r in times[x]):.3f}" for k in keys))
    print(f"load {os.getloadavg()}")


if __name__ == "__main__":
    main()
