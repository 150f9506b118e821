"""Human output (rich tables, progress bars) and ``--json`` output."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from workers.cli.client import ApiClient, CliError

console = Console()
err_console = Console(stderr=True)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def size(n: int | None) -> str:
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(n)


def table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    t = Table(title=title, title_justify="left")
    for i, c in enumerate(columns):
        t.add_column(c, no_wrap=i == 0, overflow="fold")
    for r in rows:
        t.add_row(*["" if v is None else str(v) for v in r])
    console.print(t)


def wait_for_job(client: ApiClient, job_id: str, quiet: bool) -> dict[str, Any]:
    """Poll the job until it finishes, showing a progress bar unless ``quiet``."""
    if quiet:
        while True:
            job: dict[str, Any] = client.get(f"/jobs/{job_id}")
            if job["state"] in ("succeeded", "failed"):
                return job
            time.sleep(0.25)
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(),
               DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err_console, transient=False) as bar:
        task = bar.add_task("queued", total=None)
        while True:
            job = client.get(f"/jobs/{job_id}")
            p = job.get("progress") or {}
            total = p.get("bytes_total")
            bar.update(task, description=p.get("phase") or job["state"],
                       completed=p.get("bytes_done") or 0,
                       total=max(total, p.get("bytes_done") or 0) if total else None)
            if job["state"] in ("succeeded", "failed"):
                return job
            time.sleep(0.25)


def finish(job: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(job)
    if job["state"] == "failed":
        raise CliError(f"job {job['id']} failed: {job.get('error')}")
    if not as_json:
        r = job.get("result") or {}
        if job["kind"] == "backup":
            console.print(f"[green]backup {r.get('backup_id')} of {job['volume']} done[/]: "
                          f"{r.get('file_count')} files, {size(r.get('logical_bytes'))} → "
                          f"{size(r.get('stored_bytes'))} stored at {r.get('key')}")
        elif job["kind"] == "restore":
            console.print(f"[green]restored into volume {job['volume']} on {job['host']}[/]: "
                          f"{r.get('files_restored')} files, {size(r.get('bytes_restored'))}")
            if r.get("safety_backup_id"):
                console.print(f"previous content kept as safety snapshot "
                              f"{r['safety_backup_id']}; undo with: volkeeper rollback "
                              f"{job['id']}")
