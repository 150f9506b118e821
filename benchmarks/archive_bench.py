"""Benchmark of volkeeper's tar.zst backup and restore against plain ``tar | zstd``.

Usage::

    python benchmarks/archive_bench.py --size 1G [--big 4G] [--repeat 3] \
        [--workdir /var/tmp/vkbench] [--no-results]

Each measurement runs ``--repeat`` times, baseline and volkeeper interleaved, and the
median is reported; the targets are ratios against the baselines of the same run:

- backup:  ``tar -c -C DIR . | zstd -T0 -3 > out``  vs  ``gnutar.create_stream`` →
  ``write_archive`` (with a manifest spooled to a temp file, like common/engine/backup.py)
  → ``LocalBackend`` writer → commit (which fsyncs; reported separately);
- restore: ``zstd -dc out | tar -x -C DEST``  vs  ``LocalBackend`` reader →
  ``extract_archive(expected_sha256=…)`` → ``gnutar.extract_stream``.

volkeeper runs in a child process per run (``--child``), which reports its own peak RSS
(``getrusage(RUSAGE_SELF)``) and its pipeline time (interpreter start-up excluded, as the
worker is long-lived). Caches are not dropped: the source tree is read once, untimed,
before the first run so every run sees warm caches. Every volkeeper restore is checked
(file count and total bytes equal the source) so a fast but wrong pipeline cannot pass.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from dataset import DatasetInfo, GiB, MiB, ensure, parse_size  # noqa: E402
from procs import Deleter, fresh_dir, machine, run, sh, tree_stats  # noqa: E402
from results import record  # noqa: E402

TARGET = 1.2
KEY = "bench/vol.tar.zst"


# --- child: volkeeper's pipeline ---------------------------------------------------------
def child_backup(src: str, store: str) -> dict[str, Any]:
    """Back up ``src`` into a LocalBackend at ``store`` the way the engine does."""
    from common.archive import ManifestWriter, gnutar, write_archive
    from common.progress import ProgressTracker
    from common.storage.local import LocalBackend

    backend = LocalBackend(store)
    started = time.monotonic()
    with tempfile.TemporaryFile("w+", encoding="utf-8") as spool, \
            ProgressTracker("bench", None) as tracker:
        manifest = ManifestWriter(spool, {"volume": "bench"})
        tracker.set_phase("backing up")
        writer = backend.open_writer(KEY)
        try:
            with gnutar.create_stream(src) as stream:
                stats = write_archive(stream, writer, "tar.zst", tracker, manifest=manifest,
                                      level=3, name=KEY)
            streamed = time.monotonic()
            info = writer.commit()
        except BaseException:
            writer.abort()
            raise
        done = time.monotonic()
        spool.seek(0)
        with backend.open_writer(KEY + ".manifest.jsonl") as mw:
            while chunk := spool.read(MiB):
                mw.write(chunk.encode())
            mw.commit()
    return {"seconds": done - started, "commit_seconds": done - streamed,
            "stored": info.size, "sha256": stats.archive_sha256, "tar_bytes": stats.tar_bytes,
            "files": stats.files, "file_bytes": stats.file_bytes,
            "rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}


def child_restore(store: str, sha256: str, dest: str) -> dict[str, Any]:
    """Restore the benchmark archive into ``dest`` the way the engine does."""
    from common.archive import extract_archive, gnutar
    from common.progress import ProgressTracker
    from common.storage.local import LocalBackend

    backend = LocalBackend(store)
    started = time.monotonic()
    with ProgressTracker("bench", None) as tracker:
        tracker.set_phase("restoring")
        with backend.open_reader(KEY) as reader, gnutar.extract_stream(dest) as sink:
            stats = extract_archive(reader, "tar.zst", sink, tracker, expected_sha256=sha256,
                                    name=KEY)
    return {"seconds": time.monotonic() - started, "tar_bytes": stats.tar_bytes,
            "rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}


def run_child(*args: str) -> dict[str, Any]:
    """Run one ``--child`` invocation; its JSON result plus the parent-side wall time."""
    m = run([sys.executable, str(Path(__file__).resolve()), "--child", *args])
    result: dict[str, Any] = json.loads(m.stdout.strip().splitlines()[-1])
    result["wall"], result["cpu"] = m.wall, m.cpu
    return result


# --- parent: baselines, measurements, report ---------------------------------------------
def remove_restores(work: Path) -> None:
    """Delete the restored trees of earlier runs."""
    Deleter.remove(sorted(work.glob("restore-*")))


def machine_info() -> dict[str, str]:
    import zstandard

    info = machine(tar=["tar", "--version"], zstd=["zstd", "--version"])
    load = info.pop("load")
    return info | {"python-zstandard": f"{zstandard.__version__} (libzstd "
                                       f"{zstandard.ZSTD_VERSION})", "load": load}


def measure(info: DatasetInfo, work: Path, repeat: int, baseline: bool) -> dict[str, Any]:
    """Backup and restore timings (median of ``repeat``) for one dataset."""
    src = info.root
    remove_restores(work)  # left over by an interrupted run
    Deleter.wait_quiet()
    work.mkdir(parents=True, exist_ok=True)
    want = tree_stats(src)
    sh(f"tar -cf - -C {src} . | cat > /dev/null")  # warm the page cache, untimed
    out = work / "baseline.tar.zst"
    store = work / "store"
    res: dict[str, list[float]] = {k: [] for k in (
        "base_backup", "vk_backup", "vk_backup_wall", "vk_commit", "base_restore",
        "vk_restore", "vk_restore_wall", "base_backup_cpu", "vk_backup_cpu",
        "base_restore_cpu", "vk_restore_cpu")}
    rss_backup = rss_restore = 0
    vk: dict[str, Any] = {}
    for i in range(repeat):
        if baseline:
            m = sh(f"tar -c -C {src} . | zstd -q -T0 -3 > {out}")
            res["base_backup"].append(m.wall)
            res["base_backup_cpu"].append(m.cpu)
        fresh_dir(store)
        vk = run_child("backup", src, str(store))
        res["vk_backup"].append(vk["seconds"])
        res["vk_backup_wall"].append(vk["wall"])
        res["vk_commit"].append(vk["commit_seconds"])
        res["vk_backup_cpu"].append(vk["cpu"])
        rss_backup = max(rss_backup, vk["rss_kib"])
        print(f"  backup  #{i + 1}: baseline "
              f"{res['base_backup'][-1] if baseline else float('nan'):.2f}s  "
              f"volkeeper {vk['seconds']:.2f}s (commit {vk['commit_seconds']:.2f}s, "
              f"rss {vk['rss_kib'] / 1024:.0f} MiB); cpu baseline "
              f"{res['base_backup_cpu'][-1] if baseline else float('nan'):.1f}s "
              f"volkeeper {vk['cpu']:.1f}s", flush=True)
    stored = (store / KEY).stat().st_size
    for i in range(repeat):
        # Every restore goes into a new directory, removed only after all runs: ext4 makes
        # file creation crawl for ~30 s after a mass delete (recently_deleted() in inode
        # allocation), which would penalise whichever run follows an ``rm -rf``.
        if baseline:
            dest = str(fresh_dir(work / f"restore-base-{i}"))
            m = sh(f"zstd -q -dc {out} | tar -x -C {dest}")
            res["base_restore"].append(m.wall)
            res["base_restore_cpu"].append(m.cpu)
            if i == 0 and tree_stats(dest) != want:
                raise SystemExit(f"baseline restore differs: {tree_stats(dest)} != {want}")
        dest = str(fresh_dir(work / f"restore-vk-{i}"))
        r = run_child("restore", str(store), vk["sha256"], dest)
        got = tree_stats(dest)
        if got != want:
            raise SystemExit(f"volkeeper restore is WRONG: {got} (files, bytes) != source {want}")
        res["vk_restore"].append(r["seconds"])
        res["vk_restore_wall"].append(r["wall"])
        res["vk_restore_cpu"].append(r["cpu"])
        rss_restore = max(rss_restore, r["rss_kib"])
        print(f"  restore #{i + 1}: baseline "
              f"{res['base_restore'][-1] if baseline else float('nan'):.2f}s  "
              f"volkeeper {r['seconds']:.2f}s (rss {r['rss_kib'] / 1024:.0f} MiB, verified); cpu "
              f"baseline {res['base_restore_cpu'][-1] if baseline else float('nan'):.1f}s "
              f"volkeeper {r['cpu']:.1f}s", flush=True)
    remove_restores(work)
    med = {k: statistics.median(v) if v else None for k, v in res.items()}
    return {"median": med, "runs": res, "rss_backup_kib": rss_backup,
            "rss_restore_kib": rss_restore, "stored": stored,
            "baseline_stored": out.stat().st_size if baseline else None,
            "tar_bytes": vk["tar_bytes"], "files": want[0], "bytes": want[1]}


def fmt_ratio(num: float | None, den: float | None) -> tuple[str, str]:
    if not num or not den:
        return "-", "-"
    r = num / den
    return f"{r:.2f}x", "PASS" if r <= TARGET else "FAIL"


def report(args: argparse.Namespace, mach: dict[str, str], small: DatasetInfo,
           m: dict[str, Any], big: DatasetInfo | None, mb: dict[str, Any] | None) -> str:
    med = m["median"]
    b_ratio, b_ok = fmt_ratio(med["vk_backup"], med["base_backup"])
    r_ratio, r_ok = fmt_ratio(med["vk_restore"], med["base_restore"])
    nosync = [v - c for v, c in zip(m["runs"]["vk_backup"], m["runs"]["vk_commit"], strict=True)]
    n_ratio, _ = fmt_ratio(statistics.median(nosync), med["base_backup"])
    lines = [
        f"## Run of {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in mach.items()),
        "",
        f"Dataset ({args.size}, seed 42): {small.describe()}",
        f"tar stream {m['tar_bytes'] / MiB:.0f} MiB, volkeeper archive "
        f"{m['stored'] / MiB:.0f} MiB, baseline archive {m['baseline_stored'] / MiB:.0f} MiB.",
        "",
        f"Median of {args.repeat} runs (caches warm, baseline and volkeeper interleaved):",
        "",
        "| measurement | baseline | volkeeper | ratio | target ≤ 1.2x |",
        "|---|---|---|---|---|",
        f"| backup  | {med['base_backup']:.2f} s | {med['vk_backup']:.2f} s "
        f"(incl. fsync {med['vk_commit']:.2f} s; {med['vk_backup_wall']:.2f} s with "
        f"interpreter start) | {b_ratio} | {b_ok} |",
        f"| backup without the final fsync (the baseline does not fsync) | "
        f"{med['base_backup']:.2f} s | {statistics.median(nosync):.2f} s | {n_ratio} | - |",
        f"| restore (with sha256 check) | {med['base_restore']:.2f} s | "
        f"{med['vk_restore']:.2f} s ({med['vk_restore_wall']:.2f} s with interpreter start) "
        f"| {r_ratio} | {r_ok} |",
        "",
        f"CPU seconds (user+sys of all processes, median): backup baseline "
        f"{med['base_backup_cpu']:.1f}, volkeeper {med['vk_backup_cpu']:.1f}; restore baseline "
        f"{med['base_restore_cpu']:.1f}, volkeeper {med['vk_restore_cpu']:.1f}. On 2 cores the "
        "wall time of a saturated pipeline is at least CPU/2, so the CPU ratio is the "
        "noise-free view of the wall-time ratio.",
        "",
        "All runs (s): " + "; ".join(
            f"{k} " + ", ".join(f"{x:.2f}" for x in v) for k, v in m["runs"].items() if v),
        "",
        "| peak RSS | backup | restore |",
        "|---|---|---|",
        f"| {small.data_bytes / GiB:.0f} GiB volume | {m['rss_backup_kib'] / 1024:.0f} MiB | "
        f"{m['rss_restore_kib'] / 1024:.0f} MiB |",
    ]
    if big is not None and mb is not None:
        lines.append(f"| {big.data_bytes / GiB:.0f} GiB volume | "
                     f"{mb['rss_backup_kib'] / 1024:.0f} MiB | "
                     f"{mb['rss_restore_kib'] / 1024:.0f} MiB |")
        lines += ["", f"{args.big} dataset: {big.describe()}; one volkeeper backup "
                  f"{mb['median']['vk_backup']:.1f} s, restore {mb['median']['vk_restore']:.1f} s"
                  " (verified)."]
    return "\n".join(lines) + "\n"


def write_results(section: str) -> None:
    """Put ``section`` under '# Latest run' in RESULTS.md, keeping the other sections."""
    record("latest-run", section, empty="# Archive benchmark results\n\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="1G")
    p.add_argument("--big", default=None, help="also back up/restore this size once (RSS)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--workdir", default="/var/tmp/vkbench")
    p.add_argument("--no-results", action="store_true", help="do not update RESULTS.md")
    p.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        mode, *rest = args.child
        result = child_backup(*rest) if mode == "backup" else child_restore(*rest)
        print(json.dumps(result))
        return
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    mach = machine_info()
    print("machine:", mach, flush=True)
    small = ensure(work / f"data-{args.size}", parse_size(args.size))
    print(f"dataset {args.size}: {small.describe()}", flush=True)
    m = measure(small, work / "run", args.repeat, baseline=True)
    big = mb = None
    if args.big:
        big = ensure(work / f"data-{args.big}", parse_size(args.big))
        print(f"dataset {args.big}: {big.describe()}", flush=True)
        mb = measure(big, work / "run", 1, baseline=False)
    section = report(args, mach, small, m, big, mb)
    print()
    print(section)
    if not args.no_results:
        write_results(section)


if __name__ == "__main__":
    main()
