"""Targets and the report of ``cli_bench.py``: a console table and a Markdown block for
``RESULTS.md``. ``Runs`` maps a step to the measured runs of volkeeper (``vk``) and of its
peer (``peer``)."""

from __future__ import annotations

import os
import statistics
from datetime import UTC, datetime

from procs import Measured

Runs = dict[str, dict[str, list[Measured]]]

# step -> (what is compared, limit): "s" volkeeper's median in seconds, "x" its ratio to the
# peer's median, "MB" peak RSS of its process tree in 10**6 bytes, "-" reported only
TARGETS: dict[str, tuple[str, float]] = {
    "help": ("s", 0.2), "volumes": ("s", 0.3), "first": ("x", 0.7), "unchanged": ("x", 0.7),
    "changed": ("x", 0.7), "restore": ("x", 0.7), "tar-backup": ("x", 1.2),
    "tar-restore": ("x", 1.0), "backups": ("MB", 60), "api": ("-", 0)}
PEERS = {"help": "restic version", "volumes": "docker volume ls", "first": "restic backup",
         "unchanged": "restic backup", "changed": "restic backup",
         "restore": "restic restore", "tar-backup": "tar | zstd -L -T0 (same level)",
         "tar-restore": "zstd -dc | tar -x", "backups": "restic snapshots --json",
         "api": "restic backup (unchanged)"}
STEP_NAMES = {"api": "api: POST /backups until done (unchanged)"}


def med(runs: list[Measured], key: str) -> float:
    return statistics.median(getattr(m, key) for m in runs) if runs else float("nan")


def _mb(runs: list[Measured]) -> float:
    return max(m.tree_rss_kib for m in runs) * 1024 / 1e6


def rows(res: Runs) -> list[list[str]]:
    """step, volkeeper, peer, ratio, target, verdict; a read command gets a time row too."""
    out: list[list[str]] = []
    for step, runs in res.items():
        v, p = runs["vk"], runs["peer"]
        if not v or not p:
            continue
        kind, limit = TARGETS[step]
        vw, pw = med(v, "wall"), med(p, "wall")
        name = STEP_NAMES.get(step, step)
        times = [name, f"{vw:.2f} s", f"{pw:.2f} s ({PEERS[step]})", f"{vw / pw:.2f}x"]
        if kind == "MB":
            got = _mb(v)
            out.append([f"{step} (peak RSS)", f"{got:.0f} MB",
                        f"{_mb(p):.0f} MB ({PEERS[step]})", f"{got / _mb(p):.2f}x",
                        f"≤ {limit:g} MB", "PASS" if got <= limit else "FAIL"])
            out.append([*times, "-", "-"])
        elif kind == "-":
            out.append([*times, "-", "-"])
        else:
            got = vw if kind == "s" else vw / pw
            out.append([*times, f"≤ {limit:g}{' s' if kind == 's' else 'x'}",
                        "PASS" if got <= limit else "FAIL"])
    return out


def rss_rows(res: Runs) -> list[list[str]]:
    """step, peak RSS (process tree) volkeeper / peer, CPU seconds volkeeper / peer."""
    out = []
    for step, runs in res.items():
        v, p = runs["vk"], runs["peer"]
        if v and p:
            rss = "-" if not _mb(v) else f"{_mb(v) / 1.048576:.0f} / {_mb(p) / 1.048576:.0f} MiB"
            out.append([step, rss, f"{med(v, 'cpu'):.1f} / {med(p, 'cpu'):.1f}"])
    return out


def _md(table: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in table]


def markdown(res: Runs, facts: list[str], repeats: int, took: float) -> str:
    """The block for RESULTS.md: ``facts`` (machine, CLI, dataset lines), both tables, every
    run's wall time."""
    lines = [f"### CLI run of {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} "
             "(`cli_bench.py`)", "", *facts, "",
             f"Median of {repeats} interleaved runs (start-up and read steps: of "
             f"{max(5, repeats)} after a warm-up), whole processes, caches warm:", "",
             "| step | volkeeper | peer | ratio | target | verdict |",
             "|---|---|---|---|---|---|", *_md(rows(res)), "",
             "| step | peak RSS of the process tree, volkeeper / peer | CPU s, volkeeper / peer |",
             "|---|---|---|", *_md(rss_rows(res)), "",
             "All wall times (s), in run order: " + "; ".join(
                 f"{s} volkeeper " + ", ".join(f"{m.wall:.2f}" for m in r["vk"]) + " / peer "
                 + ", ".join(f"{m.wall:.2f}" for m in r["peer"])
                 for s, r in res.items() if r["vk"]), "",
             f"Run time {took / 60:.1f} min; load at the end "
             + " ".join(f"{x:.2f}" for x in os.getloadavg()) + "."]
    return "\n".join(lines) + "\n"


def print_table(res: Runs) -> None:
    head = ["step", "volkeeper", "peer", "ratio", "target", "verdict"]
    body = rows(res)
    widths = [max(len(r[c]) for r in [head, *body]) for c in range(len(head))]
    for r in [head, *body]:
        print("  ".join(x.ljust(w) for x, w in zip(r, widths, strict=True)).rstrip())
