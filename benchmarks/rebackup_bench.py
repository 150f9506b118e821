"""A/B of the incremental repository backup after 5 % changed (issue 14's cut-over backup,
issue 10's "re-backup after 5 % changed"), in-process, checkout against checkout.

Usage::

    python benchmarks/rebackup_bench.py --arm A=/work/main --arm B=/work/wt-x \
        [--rounds 5] [--fraction 0.05] [--seed 7] [--workdir /var/tmp/vkrebackup]

Setup (once per workdir): a private copy of the mixed 1 GiB set (``dataset.ensure``'s
cache copied, so mutating it disturbs no other bench) and a repository holding its
snapshot S1 (cheap key derivation). Each round mutates the copy (``dataset.mutate``: the
migration's shape with seed 7, ~4,400 small files rewritten and ~20 large files changed in
1 MiB regions), then each arm, order alternating, in a fresh process with that checkout
on ``sys.path``: the repository hard-linked into a scratch copy, and timed there
``backup_directory(parent=S1)`` (the index load included, as in a job), wall and CPU
(process, and of the walking thread); then the mutation is reverted. ``--worker``: as a
migration's worker, the run's process first backs the volume up unchanged (the catch-up:
``kept.keeping`` where the checkout has it, untimed), then mutates it and times the
backup whose parent is that catch-up snapshot (the cut-over's). Both arms' snapshots
must have the same tree (the same content, the same format; not with ``--worker``, where
each run's mutation has its own times). ``--profile ARM`` prints a
cProfile of the walking thread of one more run of that arm.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PASSWORD = "vkrebackup-bench"


def _one(args: argparse.Namespace) -> None:
    """(child) One timed backup with the checkout on sys.path; prints a JSON line."""
    sys.path.insert(0, args.checkout)
    from common.repository import open_repository
    from common.repository.backup.archiver import backup_directory
    from common.repository.core.snapshot import load_snapshot
    from common.storage.local import LocalBackend

    work = Path(args.workdir)
    scratch = work / f"scratch-{os.getpid()}"
    subprocess.run(["cp", "-al", str(work / "repo"), str(scratch)], check=True)
    try:
        repo = open_repository(LocalBackend(str(scratch)), PASSWORD)
        s1 = load_snapshot(repo, bytes.fromhex((work / "s1").read_text().strip()))
        parent = s1
        if args.worker:  # the catch-up: this process backs the volume up first
            import contextlib

            from dataset import mutate
            try:
                from common.repository.backup.kept import keeping
            except ImportError:  # a checkout without kept trees
                keeping = contextlib.nullcontext
            with keeping():
                parent = backup_directory(repo, work / "data", host="bench", volume="vol",
                                          parent=s1)
            mutate(work / "data", work / "mutation", args.fraction, args.seed)
        prof = None
        if args.profile:
            import cProfile
            prof = cProfile.Profile()
            prof.enable()
        t0, c0, w0 = time.perf_counter(), os.times(), time.thread_time()
        snap = backup_directory(repo, work / "data", host="bench", volume="vol",
                                parent=parent)
        w1, c1, t1 = time.thread_time(), os.times(), time.perf_counter()
        if prof is not None:
            prof.disable()
            import pstats
            pstats.Stats(prof, stream=sys.stderr).sort_stats("cumulative").print_stats(45)
            pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(30)
        print(json.dumps({
            "wall": t1 - t0, "cpu": (c1.user + c1.system) - (c0.user + c0.system),
            "walk_cpu": w1 - w0, "tree": snap.tree.hex(), "files_read": snap.stats.files_read,
            "bytes_read": snap.stats.bytes_read, "new_bytes": snap.stats.new_bytes}))
    finally:
        if args.worker:
            from dataset import revert
            revert(work / "data", work / "mutation")
        shutil.rmtree(scratch, ignore_errors=True)


def _setup(work: Path) -> None:
    sys.path.insert(0, str(HERE.parent))
    sys.path.insert(0, str(HERE))
    from dataset import GiB, ensure

    if (work / "s1").exists():
        return
    src = ensure(Path("/var/tmp/vkbench/data-1G"), GiB)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    subprocess.run(["cp", "-a", "--sparse=always", str(src.root), str(work / "data")],
                   check=True)
    from common.repository import init_repository, open_repository
    from common.repository.backup.archiver import backup_directory
    from common.repository.core.keys import KdfParams
    from common.storage.local import LocalBackend

    init_repository(LocalBackend(str(work / "repo")), PASSWORD, kdf=KdfParams(2**14, 8, 1))
    repo = open_repository(LocalBackend(str(work / "repo")), PASSWORD)
    s1 = backup_directory(repo, work / "data", host="bench", volume="vol")
    repo.load_index()
    repo.index.flush()
    (work / "s1").write_text(s1.id.hex())


def _run(checkout: str, work: Path, args: argparse.Namespace, profile: bool = False
         ) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--child", "--checkout", checkout, "--workdir", str(work),
           "--fraction", str(args.fraction), "--seed", str(args.seed)] + (
               ["--profile", "1"] if profile else []) + (["--worker"] if args.worker else [])
    env = dict(os.environ, PYTHONPATH=checkout, PYTHONDONTWRITEBYTECODE="1")
    out = subprocess.run(cmd, env=env, check=True, capture_output=not profile, text=True)
    if profile:
        return {}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arm", action="append", default=[], help="NAME=CHECKOUT")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--fraction", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--workdir", default="/var/tmp/vkrebackup")
    ap.add_argument("--profile", default="", help="ARM: one profiled run of it at the end")
    ap.add_argument("--worker", action="store_true",
                    help="as in a worker whose previous job loaded the repository's index")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--checkout", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    work = Path(args.workdir)
    sys.path.insert(0, str(HERE))
    if args.child:
        _one(args)
        return
    arms = dict(a.split("=", 1) for a in args.arm) or {"main": "/work/main"}
    _setup(work)
    from dataset import mutate, revert

    save = work / "mutation"
    revert(work / "data", save)  # a run interrupted earlier
    runs: dict[str, list[dict[str, float]]] = {a: [] for a in arms}
    for r in range(args.rounds):
        # --worker: each run's process mutates the data after its catch-up backup
        changed = 0 if args.worker else mutate(work / "data", save, args.fraction, args.seed)
        try:
            order = list(arms) if r % 2 == 0 else list(reversed(arms))
            trees = set()
            for name in order:
                one = _run(arms[name], work, args)
                runs[name].append(one)
                trees.add(one["tree"])
                print(f"round {r} {name}: wall {one['wall']:.3f} s, CPU {one['cpu']:.3f} s "
                      f"(walk {one['walk_cpu']:.3f}), read {one['files_read']} files "
                      f"{one['bytes_read'] / 2**20:.0f} MiB, changed {changed / 2**20:.0f} "
                      f"MiB, load {os.getloadavg()[0]:.1f}", flush=True)
            if len(trees) != 1 and not args.worker:  # (--worker: each run's own mtimes)
                raise SystemExit(f"the arms' snapshots differ: {trees}")
            if args.profile and r == args.rounds - 1:
                _run(arms[args.profile], work, args, profile=True)
        finally:
            revert(work / "data", save)
    for name, rs in runs.items():
        def med(k: str, rs: list[dict[str, float]] = rs) -> float:
            return statistics.median(x[k] for x in rs)
        print(f"{name}: wall median {med('wall'):.3f} s (min "
              f"{min(x['wall'] for x in rs):.3f}), CPU {med('cpu'):.3f} s, walking thread "
              f"{med('walk_cpu'):.3f} s, n={len(rs)}")


if __name__ == "__main__":
    main()
