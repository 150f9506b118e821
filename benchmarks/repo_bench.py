"""Benchmark of volkeeper's native repository (``--format repo``) against restic.

Usage::

    python benchmarks/repo_bench.py [--dataset mixed|small|both] [--size 1G] \
        [--files 200000] [--repeat 2] [--steps first,unchanged,changed,restore,check] \
        [--workdir /var/tmp/vkbench] [--no-results]
    python benchmarks/repo_bench.py --dataset small --files 1000000 --repeat 1 \
        --steps first,restore          # the RSS-at-scale run
    python benchmarks/repo_bench.py --index-memory 1000000   # index bytes per entry only

Both tools run as child processes against a local directory, encryption and compression
on (restic: repository version 2, ``--compression auto``; volkeeper: AES-256-GCM, zstd -3).
Per repeat, each tool gets a fresh repository (initialised untimed) and then, interleaved
step by step (who goes first alternates between repeats):

- ``first``:     first backup of the dataset;
- ``unchanged``: backup again, nothing changed (restic uses its parent snapshot, volkeeper
  the newest snapshot of the same host/volume, as the engine does);
- ``changed``:   5 % of the data bytes are changed in place (``dataset.mutate``), then a
  backup (the change is reverted after the restores);
- ``restore``:   the newest snapshot into a new, empty directory; every restored tree is
  compared with the source (file count and bytes; the first volkeeper restore of a run
  also byte for byte);
- ``check``:     ``check --read-data`` (volkeeper: ``check_repository(read_data=True)``).

volkeeper runs the library exactly as ``common/engine/repo.py`` does (``open_repository``
→ ``latest_snapshot`` → ``archiver.backup_directory`` / ``restorer.restore_snapshot`` /
``checker.check_repository``, a ``LocalBackend`` file target and a real
``ProgressTracker``). Wall time, CPU seconds (user + sys) and peak RSS of every child come
from ``wait4``.

Key derivation is included for both, at the same cost: every restic command derives its
key with the scrypt parameters restic calibrated at init (N=2**15..2**16, r=8, p=1 on the
2-core VM), and volkeeper's repository is initialised with those same parameters (the
engine's production default is N=2**17, ~0.6 s, which would add ~0.45 s to every volkeeper
command). Ratios compare volkeeper's in-process time (from the call into the library to
its return, as in the long-lived worker) with restic's whole-process wall time (a Go
binary starts in ~10 ms); the ratio including Python's start-up and imports (~0.3-0.5 s)
is shown beside it.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from dataset import (  # noqa: E402
    MARKER,
    DatasetInfo,
    MiB,
    ensure,
    ensure_small,
    mutate,
    parse_size,
    revert,
)
from procs import Deleter, fresh_dir, machine, run, tree_stats  # noqa: E402
from results import record  # noqa: E402

PASSWORD = "vkbench-password"
HOST, VOLUME = "bench", "vol"
RESTIC = "/usr/bin/restic"
STEPS = ("first", "unchanged", "changed", "restore", "check")
TARGETS = {"first": 0.8, "unchanged": 0.8, "changed": 0.8, "restore": 0.8, "check": 1.0}


# --- child: volkeeper's library, as the engine runs it --------------------------------------
def _open(store: str) -> Any:
    from common.repository import open_repository
    from common.storage.local import LocalBackend

    return open_repository(LocalBackend(store), PASSWORD)


def child(mode: str, store: str, arg: str = "") -> dict[str, Any]:
    """One volkeeper operation; returns its in-process time and a few facts."""
    from common.progress import ProgressTracker

    started = time.monotonic()
    out: dict[str, Any] = {}
    if mode == "init":
        from common.repository import init_repository
        from common.repository.core.keys import KdfParams
        from common.storage.local import LocalBackend

        n, r, p = (int(x) for x in arg.split(","))
        init_repository(LocalBackend(store), PASSWORD, kdf=KdfParams(n, r, p))
    elif mode == "backup":
        from common.repository.backup.archiver import backup_directory
        from common.repository.core.snapshot import latest_snapshot

        with ProgressTracker("bench", None) as tracker:
            tracker.set_phase("opening repository")
            repo = _open(store)
            parent = latest_snapshot(repo, HOST, VOLUME)
            snap = backup_directory(repo, arg, host=HOST, volume=VOLUME, tags=["job:bench"],
                                    parent=parent, progress=tracker)
        s = snap.stats
        out = {"files": s.files, "bytes": s.bytes, "files_read": s.files_read,
               "new_blobs": s.new_blobs, "new_bytes": s.new_bytes, "packs": s.packs}
    elif mode == "restore":
        from common.repository.core.snapshot import latest_snapshot
        from common.repository.restore.restorer import restore_snapshot

        with ProgressTracker("bench", None) as tracker:
            repo = _open(store)
            newest = latest_snapshot(repo, HOST, VOLUME)
            assert newest is not None
            st = restore_snapshot(repo, newest, arg, progress=tracker)
        out = {"files": st.files, "bytes": st.bytes, "warnings": len(st.warnings)}
    elif mode == "check":
        from common.repository.check.checker import check_repository

        with ProgressTracker("bench", None) as tracker:
            report = check_repository(_open(store), read_data=True, progress=tracker)
        if not report.ok:
            raise SystemExit(f"check found problems: {report.problems[:3]}")
        out = {"blobs_read": report.blobs_read, "packs_read": report.packs_read}
    elif mode == "index":
        out = index_memory(int(arg))
    else:
        raise SystemExit(f"unknown child mode {mode}")
    out["seconds"] = time.monotonic() - started
    return out


def index_memory(n: int) -> dict[str, Any]:
    """Bytes per entry of the in-memory Index holding ``n`` entries (tracemalloc and RSS)."""
    import tracemalloc

    from common.repository.core.ids import BlobType
    from common.repository.core.index import Index, IndexEntry

    def rss_kib() -> int:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    packs = [os.urandom(32) for _ in range(max(1, n // 40))]
    rss0 = rss_kib()
    tracemalloc.start()
    index = Index()
    for i in range(n):
        index.add(IndexEntry(os.urandom(32), BlobType.DATA, packs[i // 40], (i % 40) * 40000,
                             40000, 120000, 1))
    index.flush()
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss1 = rss_kib()
    return {"entries": len(index), "bytes_per_entry": current / n,
            "peak_bytes_per_entry": peak / n, "rss_bytes_per_entry": (rss1 - rss0) * 1024 / n}


# --- parent --------------------------------------------------------------------------------
def vk(mode: str, store: str, arg: str = "") -> dict[str, Any]:
    r = run([sys.executable, str(Path(__file__).resolve()), "--child", mode, store, arg],
            cwd=str(HERE.parent)).as_dict()
    r.update(json.loads(r.pop("stdout").strip().splitlines()[-1]))
    return r


def restic_env(work: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(RESTIC_PASSWORD=PASSWORD, RESTIC_CACHE_DIR=str(work / "restic-cache"))
    return env


def restic(work: Path, store: str, *args: str, cwd: str | None = None) -> dict[str, Any]:
    return {k: v for k, v in run([RESTIC, "-r", store, "-q", *args], env=restic_env(work),
                                 cwd=cwd).as_dict().items() if k not in ("stdout", "stderr")}


def same_content(src: str, dest: str) -> bool:
    """Byte-for-byte comparison of every regular file of ``src`` with ``dest``."""
    for dirpath, _dirs, files in os.walk(src):
        rel = os.path.relpath(dirpath, src)
        for name in files:
            a = os.path.join(dirpath, name)
            if name == MARKER or os.path.islink(a):
                continue
            if not filecmp.cmp(a, os.path.join(dest, rel, name), shallow=False):
                print(f"  DIFFERS: {os.path.join(rel, name)}")
                return False
    return True


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def settle() -> None:
    """Untimed, before every timed step: write back what earlier steps left dirty (a
    restore leaves ~1 GiB in the page cache; the kernel writes it back ~30 s later, into
    whichever step then runs: measured 2.1 s -> 3.3 s for a restore of the mixed set)."""
    os.sync()


class _Round:
    """One repeat: fresh repositories for both tools, then every step, interleaved."""

    def __init__(self, i: int, src: str, work: Path, want: tuple[int, int],
                 res: dict[str, dict[str, list[dict[str, Any]]]]) -> None:
        self.i, self.src, self.work, self.want, self.res = i, src, work, want, res
        self.tools = ["restic", "volkeeper"] if i % 2 == 0 else ["volkeeper", "restic"]
        self.stores = {"restic": str(fresh_dir(work / f"store-restic-{i}")),
                       "volkeeper": str(fresh_dir(work / f"store-vk-{i}"))}
        fresh_dir(work / "restic-cache")
        restic(work, self.stores["restic"], "init", "--repository-version", "2")
        # the same scrypt cost for both: restic calibrates its own at init, volkeeper's key
        # file gets those parameters (the engine's are settings.repository_kdf_n, r=8, p=1)
        key = json.loads(next(Path(self.stores["restic"], "keys").iterdir()).read_text())
        self.kdf = (key["N"], key["r"], key["p"])
        vk("init", self.stores["volkeeper"], ",".join(map(str, self.kdf)))

    def step(self, name: str) -> None:
        for tool in self.tools:
            settle()
            r = getattr(self, name)(tool)
            r["kdf"] = self.kdf
            self.res[name][tool].append(r)
            print(f"  #{self.i + 1} {name:9s} {tool:9s} {r['wall']:7.2f}s wall "
                  f"{r['cpu']:7.1f}s cpu {r['rss_kib'] / 1024:6.0f} MiB rss"
                  + (f" (in-process {r['seconds']:.2f}s)" if "seconds" in r else ""),
                  flush=True)

    def backup(self, tool: str) -> dict[str, Any]:
        if tool == "restic":
            return restic(self.work, self.stores["restic"], "backup", "--host", HOST, ".",
                          cwd=self.src)
        return vk("backup", self.stores["volkeeper"], self.src)

    first = unchanged = changed = backup

    def restore(self, tool: str) -> dict[str, Any]:
        dest = str(fresh_dir(self.work / f"restore-{tool}-{self.i}"))
        if tool == "restic":
            r = restic(self.work, self.stores["restic"], "restore", "latest", "--target", dest)
        else:
            r = vk("restore", self.stores["volkeeper"], dest)
        got = tree_stats(dest, skip=(MARKER,))
        if got != self.want:
            raise SystemExit(f"{tool} restore is WRONG: {got} (files, bytes) != source "
                             f"{self.want}")
        return r

    def check(self, tool: str) -> dict[str, Any]:
        if tool == "restic":
            return restic(self.work, self.stores["restic"], "check", "--read-data")
        return vk("check", self.stores["volkeeper"])


def measure(info: DatasetInfo, work: Path, repeat: int, steps: list[str]) -> dict[str, Any]:
    """All steps for both tools, ``repeat`` times interleaved; raw results per step."""
    src = info.root
    save = work / "mutation-originals"
    revert(src, save)  # left over by an interrupted run
    Deleter.remove(sorted(work.glob("restore-*")) + sorted(work.glob("store-*")))
    want = tree_stats(src, skip=(MARKER,))
    # warm the page cache, untimed (not "tar -cf /dev/null": GNU tar then skips the reads)
    subprocess.run(f"tar -cf - -C {src} . | cat > /dev/null", shell=True, check=True)
    res: dict[str, dict[str, list[dict[str, Any]]]] = {
        s: {"restic": [], "volkeeper": []} for s in steps}
    stored: dict[str, list[int]] = {"restic": [], "volkeeper": []}
    compared = False
    for i in range(repeat):
        rnd = _Round(i, src, work, want, res)
        try:
            if "first" in steps:
                rnd.step("first")
                for tool in rnd.tools:
                    stored[tool].append(du(Path(rnd.stores[tool])))
            if "unchanged" in steps:
                rnd.step("unchanged")
            if "changed" in steps:
                changed = mutate(src, save, 0.05, seed=100 + i)
                print(f"  changed {changed / MiB:.0f} MiB in place", flush=True)
                rnd.step("changed")
            if "restore" in steps:
                Deleter.wait_quiet()
                rnd.step("restore")
                if not compared:
                    if not same_content(src, str(work / f"restore-volkeeper-{i}")):
                        raise SystemExit("volkeeper restore differs from the source")
                    print("  volkeeper restore equals the source byte for byte", flush=True)
                    compared = True
        finally:
            revert(src, save)
        if "check" in steps:
            rnd.step("check")
    Deleter.remove(sorted(work.glob("restore-*")) + sorted(work.glob("store-*"))
           + [work / "restic-cache"])
    return {"steps": res, "stored": stored, "files": want[0], "bytes": want[1]}


def med(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in runs) if runs else float("nan")


def summarize(name: str, info: DatasetInfo, m: dict[str, Any]) -> list[str]:
    lines = [f"#### {name}: {info.describe()}", "",
             "| step | restic | volkeeper (with interpreter start) | ratio | ratio with start "
             "| target | CPU s restic / volkeeper | peak RSS restic / volkeeper |",
             "|---|---|---|---|---|---|---|---|"]
    kdf = None
    for step, runs in m["steps"].items():
        r, v = runs["restic"], runs["volkeeper"]
        if not r or not v:
            continue
        kdf = r[0]["kdf"]
        ratio = med(v, "seconds") / med(r, "wall")
        ok = "PASS" if ratio <= TARGETS[step] else "FAIL"
        lines.append(
            f"| {step} | {med(r, 'wall'):.2f} s | {med(v, 'seconds'):.2f} s "
            f"({med(v, 'wall'):.2f} s) | {ratio:.2f}x | {med(v, 'wall') / med(r, 'wall'):.2f}x "
            f"| ≤ {TARGETS[step]}x {ok} | {med(r, 'cpu'):.1f} / {med(v, 'cpu'):.1f} | "
            f"{max(x['rss_kib'] for x in r) / 1024:.0f} / "
            f"{max(x['rss_kib'] for x in v) / 1024:.0f} MiB |")
    if m["stored"]["restic"]:
        sr, sv = statistics.median(m["stored"]["restic"]), statistics.median(
            m["stored"]["volkeeper"])
        ok = "PASS" if abs(sv / sr - 1) <= 0.05 else "FAIL"
        lines.append(f"| stored size after first backup | {sr / MiB:.1f} MiB | "
                     f"{sv / MiB:.1f} MiB | {sv / sr:.3f}x | | within 5 % {ok} | | |")
    lines += ["", f"scrypt cost for both (restic's calibration): N, r, p = {kdf}.",
              "", "All wall times (s), in run order: " + "; ".join(
                  f"{step} restic " + ", ".join(f"{x['wall']:.2f}" for x in runs["restic"])
                  + " / volkeeper " + ", ".join(f"{x['seconds']:.2f}"
                                                for x in runs["volkeeper"])
                  for step, runs in m["steps"].items()), ""]
    return lines


def write_results(section: str) -> None:
    """Put ``section`` between the repo-run markers of RESULTS.md, keeping the rest."""
    record("repo-run", section)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", choices=("mixed", "small", "both"), default="both")
    p.add_argument("--size", default="1G", help="size of the mixed dataset")
    p.add_argument("--files", type=int, default=200_000, help="files of the small dataset")
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--steps", default=",".join(STEPS))
    p.add_argument("--workdir", default="/var/tmp/vkbench")
    p.add_argument("--index-memory", type=int, default=1_000_000, metavar="N",
                   help="entries for the index-memory measurement (0: skip)")
    p.add_argument("--no-results", action="store_true", help="do not update RESULTS.md")
    p.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    steps = [s for s in args.steps.split(",") if s]
    if unknown := set(steps) - set(STEPS):
        raise SystemExit(f"unknown steps {unknown}")
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    mach = machine(restic=[RESTIC, "version"])
    print("machine:", mach, flush=True)
    started = time.monotonic()
    lines = [f"### Repository run of {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}", "",
             "Machine: " + ", ".join(f"{k} {v}" for k, v in mach.items()), "",
             f"Median of {args.repeat} interleaved runs; restic: wall time of the process; "
             "volkeeper: in-process time (interpreter start-up included in brackets); key "
             "derivation included for both, at the same scrypt cost; CPU = user+sys of the "
             "process.", ""]
    sets: list[tuple[str, DatasetInfo]] = []
    if args.dataset in ("mixed", "both"):
        sets.append((f"mixed {args.size}", ensure(work / f"data-{args.size}",
                                                  parse_size(args.size))))
    if args.dataset in ("small", "both"):
        sets.append((f"{args.files} small files",
                     ensure_small(work / f"small-{args.files}", args.files)))
    for name, info in sets:
        print(f"dataset {name}: {info.describe()}", flush=True)
        # one run directory per checkout: two checkouts can bench side by side
        m = measure(info, work / f"repo-run-{HERE.parent.name}", args.repeat, steps)
        lines += summarize(name, info, m)
    if args.index_memory:
        r = vk("index", "-", str(args.index_memory))
        lines += [f"Index memory with {r['entries']} entries: {r['bytes_per_entry']:.1f} "
                  f"bytes/entry held (tracemalloc; peak while merging "
                  f"{r['peak_bytes_per_entry']:.1f}), RSS delta {r['rss_bytes_per_entry']:.1f}"
                  " bytes/entry.", ""]
    lines.append(f"Run time {(time.monotonic() - started) / 60:.1f} min; load at the end "
                 + " ".join(f"{x:.2f}" for x in os.getloadavg()) + ".")
    section = "\n".join(lines) + "\n"
    print()
    print(section)
    if not args.no_results:
        write_results(section)


if __name__ == "__main__":
    main()
