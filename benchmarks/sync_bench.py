"""Benchmark of the sync restore (issue 14: a migration's cut-over applies S2 over S1).

Usage::

    python benchmarks/sync_bench.py [--size 128M] [--fraction 0.05] [--repeat 2] \
        [--workdir /var/tmp/vksync] [--verify-content] [--no-results]

On the mixed dataset (``dataset.py``): S1 is a backup of it into a local encrypted
repository; then ``dataset.mutate`` changes ``fraction`` of its data bytes (small files
rewritten whole, 1 MiB regions of large files overwritten) and S2 is an incremental
backup (the mutation is reverted at the end). Per repeat, untimed: S1 is restored into a
new directory (the destination of the pre-copy). Timed, in alternating order:

- ``full``: a restore of S2 into a new, empty directory (``restore_snapshot``: what a
  migration without a pre-copy would do during its downtime);
- ``sync``: ``sync_snapshot`` of S2 over a restore of S1 (the cut-over's apply step),
  changed files rebuilt under a temporary name and renamed over (the default);
- ``sync-in-place``: the same with ``in_place=True`` (only changed chunks written, into
  the files themselves), over its own restore of S1.

Before each timed step, ``os.sync()`` writes the earlier restores' dirty pages out (a
cut-over comes long after its pre-copy). The first repeat checks that each synced tree
equals the full restore (``tests/treecmp``:
types, bytes, modes, owners, mtimes, links, sparseness, xattrs). Timing is in-process (the
library call, as a long-lived worker runs it: the repository is opened and its index
loaded and merged before the clock starts, for all steps). The verdict is ``sync / full``;
the issue's target is a downtime of at most 25 % of a cold full copy.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from dataset import MiB, ensure, parse_size  # noqa: E402
from procs import Deleter, machine  # noqa: E402
from results import record  # noqa: E402
from snapshot_pair import snapshot_pair  # noqa: E402

PASSWORD = "vksync-bench"
TARGET = 0.25


def measure(data: Path, work: Path, fraction: float, repeat: int,
            verify_content: bool) -> dict[str, Any]:
    from common.repository.restore.restorer import restore_snapshot
    from common.repository.restore.sync import sync_snapshot
    from tests.treecmp import compare_trees

    repo, s1, s2, changed = snapshot_pair(data, work, fraction, PASSWORD)
    steps = ("full", "sync", "sync-in-place")
    runs: dict[str, list[float]] = {k: [] for k in steps}
    facts: dict[str, Any] = {"changed_bytes": changed, "files": s2.stats.files,
                             "bytes": s2.stats.bytes}
    made: list[Path] = []
    for i in range(repeat):
        dirs = {k: work / f"{k}-{i}" for k in steps}
        Deleter.remove(list(dirs.values()))
        made += dirs.values()
        Deleter.wait_quiet()
        restore_snapshot(repo, s1, dirs["sync"])
        restore_snapshot(repo, s1, dirs["sync-in-place"])
        order = steps if i % 2 == 0 else steps[::-1]
        for step in order:
            os.sync()  # the pre-copy's dirty pages are written long before a cut-over
            started = time.monotonic()
            if step == "full":
                restore_snapshot(repo, s2, dirs[step])
            else:
                stats = sync_snapshot(repo, s2, dirs[step], verify_content=verify_content,
                                      in_place=step == "sync-in-place")
                facts[step] = {k: getattr(stats, k) for k in (
                    "files_written", "bytes_fetched", "bytes_reused", "entries_written",
                    "metadata_fixed", "deleted", "unchanged")}
            runs[step].append(time.monotonic() - started)
            print(f"  repeat {i + 1} {step}: {runs[step][-1]:.2f} s", flush=True)
        if i == 0:
            for step in ("sync", "sync-in-place"):
                diffs = compare_trees(dirs["full"], dirs[step])
                if diffs:
                    raise SystemExit(f"{step}: the synced tree differs from a full restore: "
                                     f"{diffs[:5]}")
            facts["identical"] = True
    Deleter.remove(made)
    return {"runs": runs, "facts": facts}


def report(size: int, fraction: float, verify: bool, m: dict[str, Any]) -> str:
    med = {k: statistics.median(v) for k, v in m["runs"].items()}
    f = m["facts"]
    info = machine()
    lines = [
        f"Run of {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: mixed dataset "
        f"{size // MiB} MiB ({f['files']} files, {f['bytes'] // MiB} MiB), "
        f"{fraction:.0%} of the data bytes changed ({f['changed_bytes'] // MiB} MiB), "
        f"{len(m['runs']['full'])} repeat(s), verify_content={verify}; "
        f"{info['nproc']} CPUs, load {info['load']}.",
        "",
        "| step | median s | / full | runs |",
        "|---|---|---|---|",
        *(f"| {k} | {med[k]:.2f} | {med[k] / med['full']:.2f} | "
          f"{', '.join(f'{x:.2f}' for x in v)} |" for k, v in m["runs"].items()),
        "",
    ]
    for step in ("sync", "sync-in-place"):
        s = f[step]
        paired = sorted(x / y for x, y in zip(m["runs"][step], m["runs"]["full"], strict=True))
        ratio = statistics.median(paired)
        lines += [
            f"- **{step} / full restore = {ratio:.2f}** (median of the per-repeat ratios "
            f"{', '.join(f'{x:.2f}' for x in paired)}; target ≤ {TARGET:.2f}: "
            f"{'PASS' if ratio <= TARGET else 'FAIL'}): {s['files_written']} files written "
            f"({s['bytes_fetched'] / MiB:.1f} MiB fetched from the repository, "
            f"{s['bytes_reused'] / MiB:.1f} MiB kept from the old versions of those files), "
            f"{s['entries_written']} other entries created, {s['metadata_fixed']} metadata "
            f"fixed, {s['deleted']} deleted, {s['unchanged']} unchanged."]
    lines += ["- Both synced trees equal the full restore (tests/treecmp: full fidelity).", ""]
    return "\n".join(lines)


def write_results(section: str) -> None:
    record("sync-run", section)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="128M", help="size of the mixed dataset")
    p.add_argument("--fraction", type=float, default=0.05)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--workdir", default="/var/tmp/vksync")
    p.add_argument("--verify-content", action="store_true")
    p.add_argument("--no-results", action="store_true", help="do not update RESULTS.md")
    args = p.parse_args()
    size = parse_size(args.size)
    work = Path(args.workdir)
    info = ensure(work / f"data-{args.size}", size)
    print(f"dataset: {info.describe()}", flush=True)
    m = measure(Path(info.root), work, args.fraction, args.repeat, args.verify_content)
    section = report(size, args.fraction, args.verify_content, m)
    print(section)
    if not args.no_results:
        write_results(section)


if __name__ == "__main__":
    main()
