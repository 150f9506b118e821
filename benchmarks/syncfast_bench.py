"""Profile/benchmark of a migration cut-over's sync (issue 14, scenario ``late``).

Usage::

    python benchmarks/syncfast_bench.py [--size 1G] [--fraction 0.05] [--repeat 3] \
        [--workdir /var/tmp/vksyncfast] [--profile]

The mixed dataset (``dataset.py``) backed up (S1), ``fraction`` of it mutated and backed
up again (S2, incremental), then per repeat: S1 restored into a new directory and recorded
(``compare_tree(..., written=True)``: the pre-copy's record), ``os.sync()``, and timed
in-process: ``sync_snapshot(S2, in_place=True)`` with the arms, interleaved:

- ``plain``: no record, no base (hashing every old chunk of a changed file);
- ``record``: the record and the base snapshot S1 passed (the kept chunks known from it);
- ``trust``: the same with ``trust_base=True`` (a migration's apply since session 12:
  directories and files whose node is S1's not looked at, subtrees not entered).

``--fraction 0`` measures an apply with nothing changed; ``--no-devices`` syncs with
``devices=False`` as a migration does (device nodes looked for before anything is written).

Each synced tree is compared with S2 (``compare_tree``: it must be ok). Prints wall and
CPU medians; ``--profile`` prints a cProfile of one ``plain`` sync.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from dataset import ensure, parse_size  # noqa: E402
from procs import Deleter, machine  # noqa: E402
from snapshot_pair import snapshot_pair  # noqa: E402

PASSWORD = "vksyncfast-bench"


def cpu() -> float:
    t = os.times()
    return t.user + t.system


def evict(root: Path) -> None:
    """Drop the pages of the files below ``root`` (clean after ``os.sync``) from the cache."""
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            p = os.path.join(dirpath, name)
            if os.path.isfile(p) and not os.path.islink(p):
                fd = os.open(p, os.O_RDONLY)
                try:
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                finally:
                    os.close(fd)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="1G")
    p.add_argument("--fraction", type=float, default=0.05)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--workdir", default="/var/tmp/vksyncfast")
    p.add_argument("--arms", default="plain,record")
    p.add_argument("--profile", default="", help="an arm to profile once (cProfile)")
    p.add_argument("--no-devices", action="store_true",
                   help="devices=False, as a migration's apply (a device scan first)")
    p.add_argument("--cold", action="store_true",
                   help="the destination's pages dropped from the page cache before each "
                   "sync (posix_fadvise DONTNEED on its files only), as after a long "
                   "pre-copy")
    args = p.parse_args()

    from common.engine.tree_compare import Seen, compare_tree
    from common.progress import NullTracker
    from common.repository.restore.restorer import restore_snapshot
    from common.repository.restore.sync import sync_snapshot

    work = Path(args.workdir)
    info = ensure(work / f"data-{args.size}", parse_size(args.size))
    print(f"dataset: {info.describe()}; {machine()}", flush=True)
    data = Path(info.root)
    repo, s1, s2, _ = snapshot_pair(data, work, args.fraction, PASSWORD)
    arms = args.arms.split(",")
    runs: dict[str, list[tuple[float, float]]] = {a: [] for a in arms}
    d = work / "out"
    for i in range(args.repeat + (1 if args.profile else 0)):
        order = arms if i % 2 == 0 else arms[::-1]
        if args.profile and i == 0:
            order = [args.profile]
        for arm in order:
            Deleter.remove([d])
            Deleter.wait_quiet()
            d.mkdir(parents=True)
            restore_snapshot(repo, s1, d)
            seen: Seen = {}
            compare_tree(repo, s1, d, NullTracker(), seen=seen, written=True)
            os.sync()
            if args.cold:
                evict(d)
            kw: dict[str, object] = {} if arm == "plain" else {"record": seen, "base": s1}
            if arm == "trust":
                kw["trust_base"] = True
            if args.no_devices:
                kw["devices"] = False
            prof = cProfile.Profile() if args.profile and i == 0 else None
            t, c = time.monotonic(), cpu()
            if prof:
                prof.enable()
            stats = sync_snapshot(repo, s2, d, in_place=True, **kw)  # type: ignore[arg-type]
            if prof:
                prof.disable()
            wall, c = time.monotonic() - t, cpu() - c
            rep = compare_tree(repo, s2, d, NullTracker())
            assert rep.ok, rep.problems[:3]
            if prof:
                pstats.Stats(prof).sort_stats("cumulative").print_stats(35)
                pstats.Stats(prof).sort_stats("tottime").print_stats(20)
                continue
            runs[arm].append((wall, c))
            print(f"  {i} {arm}: {wall:.2f} s (cpu {c:.2f}); {stats.files_written} written, "
                  f"{stats.bytes_fetched >> 20} MiB fetched, {stats.bytes_reused >> 20} MiB "
                  f"reused, {stats.files_known} files known (not hashed), "
                  f"{stats.subtrees_skipped} subtrees skipped, {stats.files_held} files held "
                  "(not looked at)", flush=True)
    Deleter.remove([d])
    for arm, v in runs.items():
        if v:
            print(f"{arm}: wall median {statistics.median(w for w, _ in v):.2f} s, cpu median "
                  f"{statistics.median(c for _, c in v):.2f} s ({len(v)} runs)")
    print(f"load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
