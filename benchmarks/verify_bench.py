"""A/B benchmark of a migration's verify walk (``compare_tree``, issue 14), in-process.

    python benchmarks/verify_bench.py [--size 1G] [--fraction 0.05] [--repeat 3] \
        [--workdir /var/tmp/vkverify] [--other /work/main] [--profile STEP]

Set up once (with this checkout's code): the mixed dataset (``dataset.py``) backed up
(S1), ``fraction`` of it changed and backed up again (S2, ``snapshot_pair``); S1 restored
into ``pre`` and into ``sync``, each recorded as a migration's pre-copy does
(``compare_tree(written=True)``); S2 synced in place into ``sync`` and the sync's files
added to its record (``sync_record``). Then, per repeat, one process per checkout (this one
and ``--other``, in alternating order; ``PYTHONPATH`` set to the checkout) times, in-process
with the repository open and its index loaded:

- ``written``: the pre-copy's record walk (``compare_tree(S1, pre, written=True)``);
- ``unchanged``: the verify of ``pre`` with S1 trusting its record (nothing changed);
- ``changed``: the verify of ``sync`` with S2 trusting the merged record (5 % changed and
  synced).

Each comparison must be ok. Prints each step's median wall time per checkout.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PASSWORD = "vkverify-bench"
STEPS = ("written", "unchanged", "changed")


def setup(work: Path, size: str, fraction: float) -> Path:
    sys.path[:0] = [str(HERE.parent), str(HERE)]
    from dataset import ensure, parse_size
    from procs import fresh_dir, machine
    from snapshot_pair import snapshot_pair

    from common.engine.tree_compare import Seen, compare_tree, sync_record
    from common.progress import NullTracker
    from common.repository.restore.restorer import restore_snapshot
    from common.repository.restore.sync import sync_snapshot

    info = ensure(work / f"data-{size}", parse_size(size))
    print(f"dataset: {info.describe()}; {machine()}", flush=True)
    repo, s1, s2, _ = snapshot_pair(Path(info.root), work, fraction, PASSWORD)
    records: dict[str, Seen] = {}
    for name in ("pre", "sync"):
        d = fresh_dir(work / name)
        restore_snapshot(repo, s1, d)
        seen: Seen = {}
        assert compare_tree(repo, s1, d, NullTracker(), seen=seen, written=True).ok
        if name == "sync":
            stats = sync_snapshot(repo, s2, d, in_place=True)
            sync_record(d, stats, seen)
            print(f"sync: {stats.files_written} files written", flush=True)
        records[name] = seen
    os.sync()
    state = work / "state.json"
    state.write_text(json.dumps({"repo": str(work / "repo"), "s1": s1.id.hex(),
                                 "s2": s2.id.hex(), "pre": str(work / "pre"),
                                 "sync": str(work / "sync"), "records": records}))
    return state


def run(state_path: Path, profile: str) -> None:
    """The timed steps, once each (this process's ``PYTHONPATH`` picks the code)."""
    from common.engine.tree_compare import Seen, compare_tree
    from common.progress import NullTracker
    from common.repository import open_repository
    from common.repository.core.snapshot import load_snapshot
    from common.storage.local import LocalBackend

    state = json.loads(state_path.read_text())
    repo = open_repository(LocalBackend(state["repo"]), PASSWORD)
    repo.load_index()
    s1 = load_snapshot(repo, bytes.fromhex(state["s1"]))
    s2 = load_snapshot(repo, bytes.fromhex(state["s2"]))
    rec: dict[str, Seen] = {k: {p: tuple(v) for p, v in r.items()}  # type: ignore[misc]
                            for k, r in state["records"].items()}
    steps = {
        "written": lambda: compare_tree(repo, s1, Path(state["pre"]), NullTracker(),
                                        seen={}, written=True),
        "unchanged": lambda: compare_tree(repo, s1, Path(state["pre"]), NullTracker(),
                                          trusted=rec["pre"], seen={}),
        "changed": lambda: compare_tree(repo, s2, Path(state["sync"]), NullTracker(),
                                        trusted=rec["sync"], seen={}),
    }
    out = {}
    for step, fn in steps.items():
        prof = cProfile.Profile() if step == profile else None
        t = time.perf_counter()
        if prof:
            prof.enable()
        rep = fn()
        if prof:
            prof.disable()
        out[step] = time.perf_counter() - t
        assert rep.ok, (step, rep.problems[:3])
        if prof:
            pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(25)
    print(json.dumps(out))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="1G")
    p.add_argument("--fraction", type=float, default=0.05)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--workdir", default="/var/tmp/vkverify")
    p.add_argument("--other", default="", help="another checkout to A/B against")
    p.add_argument("--profile", default="", choices=("", *STEPS))
    p.add_argument("--run", default="", help=argparse.SUPPRESS)  # a child: the state file
    p.add_argument("--reuse", action="store_true", help="keep an earlier setup")
    args = p.parse_args()
    if args.run:
        run(Path(args.run), args.profile)
        return
    work = Path(args.workdir)
    state = work / "state.json"
    if not (args.reuse and state.exists()):
        state = setup(work, args.size, args.fraction)
    arms = {"this": str(HERE.parent)}
    if args.other:
        arms["other"] = args.other
    times: dict[str, dict[str, list[float]]] = {a: {s: [] for s in STEPS} for a in arms}
    names = list(arms)
    for i in range(args.repeat):
        for arm in names if i % 2 == 0 else names[::-1]:
            env = dict(os.environ, PYTHONPATH=arms[arm], PYTHONDONTWRITEBYTECODE="1")
            res = subprocess.run(
                [sys.executable, __file__, "--run", str(state), "--profile",
                 args.profile if i == 0 else ""], env=env, check=True, capture_output=True,
                text=True)
            if res.stderr:
                print(res.stderr, file=sys.stderr)
            got = json.loads(res.stdout.strip().splitlines()[-1])
            for s in STEPS:
                times[arm][s].append(got[s])
            print(f"  {i} {arm}: " + ", ".join(f"{s} {got[s]:.3f}" for s in STEPS),
                  flush=True)
    for arm in names:
        print(f"{arm} ({arms[arm]}): " + ", ".join(
            f"{s} median {statistics.median(times[arm][s]):.3f} s" for s in STEPS))
    print(f"load {os.getloadavg()}")


if __name__ == "__main__":
    main()
