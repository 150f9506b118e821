"""A/B benchmark of a migration's destination-side steps (issue 14), in-process.

    python benchmarks/writeback_bench.py [--size 1G] [--repeat 3] [--fraction 0.05] \
        [--workdir /var/tmp/vkwriteback] [--only precopy|verify]

On the mixed dataset (``dataset.py``) backed up into a local encrypted repository (S1;
then ``fraction`` of its bytes changed and backed up again, S2; the change reverted).
Interleaved, in a rotating order, each arm into a new directory (nothing deleted until
the end: ext4 creates files slowly after a mass delete), an untimed ``os.sync()`` before
each step:

precopy (the ``precopy.restore`` job: a migration's restore plus ``record_restored``):

- ``cold``: ``restore_snapshot`` of S1 alone (a plain restore: the baseline, unchanged);
- ``record``: the restore, then the record (``compare_tree(written=True)``) beside a
  flush of the file system (``flushing``), as before this change;
- ``overlap`` (``overlap:SECONDS``): the same with a writeback thread beside the restore
  (``writing_back`` below: ``syncfs`` every SECONDS, default 1) — an experiment, not in
  the product: it did not pay off here (benchmarks/RESULTS.md, session 11).

verify (the cut-over's apply and the verify, 5 % changed): S1 restored and recorded
(untimed), S2 synced in place (``sync_snapshot``, timed), then the verify
(``compare_tree(trusted=…)``, timed) trusting ``pre``: the pre-copy's record only, or
``synced``: the record with the sync's own (``sync_record``) merged in (the two in
alternating order).

Timing is in-process, like a long-lived worker (the repository opened and its index
loaded before the clock starts). Prints medians and per-repeat values; the process's CPU
seconds (user + sys, threads and restore worker processes included) beside them.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from dataset import ensure, parse_size  # noqa: E402
from procs import Deleter, machine  # noqa: E402
from snapshot_pair import snapshot_pair  # noqa: E402

PASSWORD = "vkwriteback-bench"


def cpu() -> float:
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


@contextlib.contextmanager
def writing_back(paths: Callable[[], Iterable[Path]], interval: float) -> Iterator[None]:
    """The experiment: while the block runs, a thread flushes the file systems of
    ``paths()`` (``flush.flush_filesystems``: ``syncfs``) every ``interval`` seconds, so
    what the block writes goes to disk while it still writes."""
    from common.engine.flush import flush_filesystems

    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            began = time.monotonic()
            flush_filesystems(paths())
            stop.wait(max(0.0, interval - (time.monotonic() - began)))

    thread = threading.Thread(target=loop, name="writeback", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def dirty_mib() -> float:
    """Dirty and under-writeback page cache (MiB), from /proc/meminfo."""
    with open("/proc/meminfo") as f:
        kib = sum(int(line.split()[1]) for line in f
                  if line.startswith(("Dirty:", "Writeback:")))
    return kib / 1024


def timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    os.sync()
    c, t = cpu(), time.monotonic()
    out = fn()
    return time.monotonic() - t, cpu() - c, out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="1G")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--fraction", type=float, default=0.05)
    p.add_argument("--workdir", default="/var/tmp/vkwriteback")
    p.add_argument("--only", choices=("precopy", "verify"))
    p.add_argument("--arms", default="cold,record,overlap",
                   help="the precopy arms to run (comma-separated; overlap:SECONDS: "
                   "the writeback thread's interval)")
    p.add_argument("--interval", type=float, default=None,
                   help="the overlap arm's writeback interval (default 1 s)")
    args = p.parse_args()

    from common.engine.flush import flushing
    from common.engine.tree_compare import Seen, compare_tree, sync_record
    from common.progress import NullTracker
    from common.repository.restore.restorer import restore_snapshot
    from common.repository.restore.sync import sync_snapshot

    work = Path(args.workdir)
    info = ensure(work / f"data-{args.size}", parse_size(args.size))
    print(f"dataset: {info.describe()}; {machine()}", flush=True)
    data = Path(info.root)
    repo, s1, s2, _ = snapshot_pair(data, work, args.fraction, PASSWORD)
    runs: dict[str, list[tuple[float, float]]] = {}
    made: list[Path] = []
    n = 0

    def new_dir() -> Path:
        nonlocal n
        n += 1
        d = work / f"out-{n}"
        Deleter.remove([d])
        d.mkdir(parents=True)
        made.append(d)
        return d

    def record(d: Path, seen: Seen) -> None:
        with flushing([d]):
            compare_tree(repo, s1, d, NullTracker(), seen=seen, written=True)

    def precopy(arm: str) -> None:
        d = new_dir()
        split: dict[str, float] = {}

        def go() -> None:
            t = time.monotonic()
            if arm.startswith("overlap"):  # "overlap" or "overlap:SECONDS"
                every = float(arm.partition(":")[2] or args.interval or 1.0)
                with writing_back(lambda: [d], every):
                    restore_snapshot(repo, s1, d)
            else:
                restore_snapshot(repo, s1, d)
            split["restore"] = time.monotonic() - t
            split["dirty_mib"] = dirty_mib()
            if arm != "cold":
                t = time.monotonic()
                record(d, {})
                split["record"] = time.monotonic() - t
        wall, c, _ = timed(go)
        runs.setdefault(arm, []).append((wall, c))
        for k in ("restore", "record"):
            if k in split:
                runs.setdefault(f"{arm}.{k}", []).append((split[k], 0.0))
        print(f"  {arm}: {wall:.2f} s (cpu {c:.2f}; "
              + ", ".join(f"{k} {v:.2f}" for k, v in split.items()) + ")", flush=True)

    def verify() -> None:
        d = new_dir()
        seen: Seen = {}
        restore_snapshot(repo, s1, d)
        record(d, seen)
        wall, c, stats = timed(lambda: sync_snapshot(repo, s2, d, in_place=True))
        runs.setdefault("sync", []).append((wall, c))
        merged = dict(seen)
        t = time.monotonic()
        sync_record(d, stats, merged)
        runs.setdefault("sync_record", []).append((time.monotonic() - t, 0.0))
        both = [("pre", seen), ("synced", merged)]
        for arm, trusted in both if len(runs["sync"]) % 2 else both[::-1]:
            wall, c, rep = timed(lambda t=trusted: compare_tree(  # type: ignore[misc]
                repo, s2, d, NullTracker(), trusted=t))
            assert rep.ok, rep.problems[:3]
            runs.setdefault(f"verify-{arm}", []).append((wall, c))
            print(f"  verify trusting {arm}: {wall:.2f} s (cpu {c:.2f}); "
                  f"{stats.files_written} files written by the sync", flush=True)

    arms = args.arms.split(",")
    try:
        for i in range(args.repeat):
            if args.only != "verify":
                k = i % len(arms)
                for arm in arms[k:] + arms[:k]:
                    precopy(arm)
            if args.only != "precopy":
                verify()
    finally:
        Deleter.remove(made)
    print(f"\nload {os.getloadavg()}")
    for arm, v in runs.items():
        print(f"{arm}: median {statistics.median(w for w, _ in v):.2f} s, cpu "
              f"{statistics.median(c for _, c in v):.2f} s; runs "
              + ", ".join(f"{w:.2f}" for w, _ in v))


if __name__ == "__main__":
    main()
