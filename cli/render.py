"""Output for people and for scripts. Tables fit the terminal (80 columns included):
ages instead of timestamps, human sizes, columns that only matter across several hosts or
targets appear only then. ``--json`` prints the full values. Results go to stdout,
progress and notes to stderr. rich is imported only when something is drawn."""

from __future__ import annotations

import contextlib
import json
import sys
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from cli.front import CliError, Front
from common.units import size

if TYPE_CHECKING:
    from rich.console import Console


@cache
def out() -> Console:
    from rich.console import Console

    return Console()


@cache
def err() -> Console:
    from rich.console import Console

    return Console(stderr=True)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _parse(ts: str | None) -> datetime | None:
    if not ts:
        return None
    try:
        t = datetime.fromisoformat(ts)
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)  # the catalog stores UTC


def when(ts: str | None, never: str = "never") -> str:
    """``45s ago``, ``3m ago``, ``5h ago`` within a day, else the local ``2026-12-06 14:02``."""
    t = _parse(ts)
    if t is None:
        return never
    ago = (datetime.now(UTC) - t).total_seconds()
    if -60 < ago < 60:
        return f"{max(int(ago), 0)}s ago"
    if 0 < ago < 3600:
        return f"{int(ago // 60)}m ago"
    if 0 < ago < 86400:
        return f"{int(ago // 3600)}h ago"
    return t.astimezone().strftime("%Y-%m-%d %H:%M")


def upcoming(ts: str | None, never: str = "-") -> str:
    """A time that is usually ahead (a policy's next run): ``in 45s``, ``in 3m``, ``in
    5h`` within a day, else the local ``2026-12-06 14:02``; a past one as ``when``
    (which reads every time as past: a run 40 s ahead showed as "0s ago")."""
    t = _parse(ts)
    if t is None:
        return never
    ahead = (t - datetime.now(UTC)).total_seconds()
    if ahead <= 0:
        return when(ts, never)
    if ahead < 60:
        return f"in {-int(-ahead // 1)}s"
    if ahead < 3600:
        return f"in {int(ahead // 60)}m"
    if ahead < 86400:
        return f"in {int(ahead // 3600)}h"
    return t.astimezone().strftime("%Y-%m-%d %H:%M")


def local_time(ts: str | None) -> str:
    t = _parse(ts)
    return "-" if t is None else t.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def table(title: str, columns: list[str], rows: list[list[Any]], *,
          flexible: tuple[str, ...] = (), one_line: tuple[str, ...] = ()) -> None:
    """A compact table on stdout. Columns in ``flexible`` wrap or shrink (with …) when the
    terminal is narrow, those in ``one_line`` too but never wrap (a long error ends in …
    and its row stays one line: the whole text is one command away); the others keep
    their width (ids stay whole)."""
    if not rows:
        err().print(f"no {title.split()[0].lower()} yet")
        return
    from rich import box
    from rich.table import Table
    from rich.text import Text

    cells = [["" if v is None else str(v) for v in r] for r in rows]
    if one_line:
        cells = _clip_to_room(columns, cells, one_line)
    t = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
              collapse_padding=True, show_edge=False)
    for i, c in enumerate(columns):
        if c in one_line:
            t.add_column(c, no_wrap=True)
        elif c in flexible:
            t.add_column(c, overflow="fold")
        else:  # never squeezed: ids, sizes, ages stay whole
            width = max([len(c)] + [Text.from_markup(r[i]).cell_len for r in cells])
            t.add_column(c, no_wrap=True, min_width=width)
    for r in cells:
        t.add_row(*r)
    out().print(t)


def _clip_to_room(columns: list[str], cells: list[list[str]], one_line: tuple[str, ...]
                  ) -> list[list[str]]:
    """The cells of the ``one_line`` columns cut (with …) to the room the other columns,
    whole, leave them (at least 12 characters each): rich would otherwise squeeze the
    flexible columns beside them to nothing. Their text is plain (no markup)."""
    widths = _widths(columns, cells)
    idx = [i for i, c in enumerate(columns) if c in one_line]
    rest = sum(w for i, w in enumerate(widths) if i not in idx) + 2 * (len(columns) - 1)
    room = max(12, (out().width - rest) // max(1, len(idx)))
    return [[clip(v, max(room, len(columns[i]))) if i in idx else v for i, v in enumerate(r)]
            for r in cells]


def too_wide(columns: list[str], rows: list[list[Any]]) -> bool:
    """Whether the table's cells, each whole, would not fit the terminal's width."""
    return not _fits(_widths(columns, rows))


def fit(columns: list[str], rows: list[list[Any]], drop: tuple[str, ...]
        ) -> tuple[list[str], list[list[Any]]]:
    """The table without those of the columns ``drop`` names (in that order) it must
    leave out to fit the terminal: a narrow one would otherwise squeeze its flexible
    columns (host, volume …) down to nothing. ``--json`` has them all."""
    widths = _widths(columns, rows)  # measured once: leaving a column out drops its width
    keep = list(range(len(columns)))
    for name in drop:
        if _fits([widths[i] for i in keep]):
            break
        if name in columns:
            keep.remove(columns.index(name))
    return [columns[i] for i in keep], [[r[i] for i in keep] for r in rows]


def _widths(columns: list[str], rows: list[list[Any]]) -> list[int]:
    """Each column's width with its cells whole (markup not counted)."""
    from rich.text import Text

    return [max([len(c)] + [Text.from_markup("" if r[i] is None else str(r[i])).cell_len
                            for r in rows]) for i, c in enumerate(columns)]


def _fits(widths: list[int]) -> bool:
    return sum(widths) + 2 * (len(widths) - 1) <= out().width


def clip(text: str, n: int) -> str:
    """``text`` cut to ``n`` characters (with …): details are in ``job ID``."""
    return text if len(text) <= n else text[: n - 1] + "…"


def optional(rows: list[dict[str, Any]], key: str) -> bool:
    """Show column ``key`` only when the rows differ in it (several hosts or targets)."""
    return len({r.get(key) for r in rows}) > 1


# --- jobs ---------------------------------------------------------------------------


def _progress_text(job: dict[str, Any]) -> str:
    """What is known of a running job: bytes (of total), files, rate, ETA."""
    p = job.get("progress") or {}
    done, total = p.get("bytes_done") or 0, p.get("bytes_total")
    parts = [f"{size(done)} of {size(total)}" if total else size(done)]
    if p.get("percent") is not None:
        parts[0] += f" ({p['percent']:.0f}%)"
    files, files_total = p.get("files_done"), p.get("files_total")
    if files:
        parts.append(f"{files} of {files_total} files" if files_total else f"{files} files")
    if p.get("rate_bytes_per_s"):
        parts.append(f"{size(p['rate_bytes_per_s'])}/s")
    if p.get("eta_seconds") is not None and total:
        parts.append(f"ETA {int(p['eta_seconds'])}s")
    return ", ".join(parts)


def progress_line(job: dict[str, Any]) -> str:
    """A job's last progress as ``volkeeper job ID`` shows it: its phase (else its state),
    then what ``_progress_text`` tells (sizes and rates human, as everywhere; no ETA for a
    job that ended)."""
    progress = dict(job.get("progress") or {})
    if job.get("state") in FINISHED:
        progress.pop("eta_seconds", None)
    phase = progress.get("phase") or job.get("state")
    text = _progress_text(job | {"progress": progress})
    return f"{phase}: {text}" if phase else text


#: the states a job ends in
FINISHED = ("succeeded", "failed", "cancelled")


def wait_for_job(front: Front, job_id: str, quiet: bool) -> dict[str, Any]:
    """Poll the job until it finishes, with a progress bar on stderr unless ``quiet``.
    Embedded, Ctrl-C cancels the job (this process runs it: it cannot be left running)
    and waits for it to stop; a second Ctrl-C stops waiting."""
    try:
        return _wait(front, job_id, quiet)
    except KeyboardInterrupt:
        if not front.embedded:
            raise
    err().print(f"interrupted: cancelling job {job_id} and waiting for it to stop "
                "(Ctrl-C again to stop waiting)", highlight=False, soft_wrap=True)
    with contextlib.suppress(CliError):  # it finished meanwhile
        front.cancel_job(job_id)
    return _wait(front, job_id, True)


def _wait(front: Front, job_id: str, quiet: bool) -> dict[str, Any]:
    if quiet or not err().is_terminal:
        while True:
            job = front.job(job_id)
            if job["state"] in FINISHED:
                return job
            # no bar to draw: woken by the job's end (embedded; a read a second at most
            # meanwhile), else polled
            front.pause(job_id, 1.0 if front.embedded else 0.2, until_end=True)
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("[bold]{task.description}"), BarColumn(bar_width=24),
               TextColumn("{task.fields[info]}"), TimeElapsedColumn())
    with Progress(*columns, console=err(), transient=True) as bar:
        task = bar.add_task("queued", total=None, info="")
        while True:
            job = front.job(job_id)
            p = job.get("progress") or {}
            total = p.get("bytes_total")
            bar.update(task, description=p.get("phase") or job["state"],
                       completed=p.get("bytes_done") or 0,
                       total=max(total, p.get("bytes_done") or 0) if total else None,
                       info=_progress_text(job))
            if job["state"] in FINISHED:
                return job
            front.pause(job_id, 0.2)


def finish(job: dict[str, Any], as_json: bool) -> None:
    """Print a finished backup or restore job: JSON, or one result line."""
    if as_json:
        emit_json(job)
    if job["state"] in ("failed", "cancelled"):
        for warning in (job.get("result") or {}).get("hook_warnings") or []:
            if warning not in (job.get("error") or ""):  # (a failing pre hook is the error)
                err().print(f"[yellow]warning:[/] {warning}", highlight=False,
                            soft_wrap=True)
        raise CliError(f"job {job['id']} {job['state']}: {job.get('error')}")
    if as_json:
        return
    r = job.get("result") or {}
    if job["kind"] == "backup":
        out().print(f"[green]backup {r.get('backup_id')}[/] of {job['volume']}: "
                    f"{r.get('file_count')} files, {size(r.get('logical_bytes'))} → "
                    f"{size(r.get('stored_bytes'))} stored on {job['target']}",
                    soft_wrap=True, highlight=False)
        _around(r)
    elif job["kind"] == "group-backup":
        out().print(f"[green]group {r.get('group_id')}[/] ({job['volume']}): " + ", ".join(
            f"{m['volume']} → backup {m.get('backup_id')}" for m in r.get("members") or []),
            soft_wrap=True, highlight=False)
        err().print(f"restore it together with: volkeeper restore --group {r.get('group_id')}",
                    highlight=False, soft_wrap=True)
        _around(r)
    elif job["kind"] == "restore" and "loaded" in r:  # --dump-into: no volume written
        for d in r["loaded"]:
            where = f", database {d['database']}" if d.get("database") else ""
            out().print(f"[green]loaded {d['path']}[/] ({d['kind']}) into container "
                        f"{d['container']}{where} on {job['host']}: {size(d.get('bytes'))}",
                        soft_wrap=True, highlight=False)
            for e in d.get("errors") or []:  # psql went on after them: check what is missing
                err().print(f"[yellow]warning:[/] the load reported {e}", highlight=False,
                            soft_wrap=True)
    elif job["kind"] == "restore":
        out().print(f"[green]restored into volume {job['volume']}[/] on {job['host']}: "
                    f"{r.get('files_restored')} files, {size(r.get('bytes_restored'))}",
                    soft_wrap=True, highlight=False)
        _around(r)
        if r.get("safety_backup_id"):
            # soft-wrapped: the command to copy stays on one line at 80 columns
            err().print(f"previous content kept as safety snapshot {r['safety_backup_id']}; "
                        f"undo with: volkeeper rollback {job['id']}", soft_wrap=True,
                        highlight=False)


def _around(r: dict[str, Any]) -> None:
    """What happened around a backup (stderr): stop windows, excludes, hook warnings."""
    windows = r.get("stop_windows") or []
    if windows:
        err().print("containers stopped: " + ", ".join(
            f"{w['name']} {w['seconds_down']:.1f}s" if w.get("restarted", True)
            and w.get("seconds_down") is not None else f"{w['name']} (removed meanwhile)"
            if w.get("removed") else f"{w['name']} NOT started again"
            for w in windows), highlight=False)
    snap = r.get("snapshot")
    if snap:
        err().print(f"read from a {snap['kind']} snapshot (taken in "
                    f"{snap.get('seconds_to_take') or 0:.2f}s, "
                    f"{'dropped' if snap.get('dropped') else 'NOT dropped'})", highlight=False)
    if r.get("snapshot_note"):
        err().print(r["snapshot_note"], highlight=False, soft_wrap=True)
    if r.get("excludes"):
        err().print(f"excluded {r.get('excluded_entries', 0)} paths "
                    f"({', '.join(r['excludes'])})", highlight=False)
    for warning in r.get("hook_warnings") or []:
        err().print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
