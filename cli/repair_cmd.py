"""``volkeeper repair TARGET``: rewrite what is readable of a repository's damaged packs,
drop them, and name what is lost (both fronts: a ``repair`` target job)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cli.front import connect
from cli.options import Json
from cli.render import out, table
from cli.repo_cmds import Host, TargetArg, Wait, _run


def repair(target: TargetArg,
           dry_run: Annotated[bool, typer.Option(
               "--dry-run", help="Only report what would be done.")] = False,
           read_data: Annotated[bool, typer.Option(
               "--read-data", help="Read every pack first (otherwise only the packs "
               "verify or check recorded as damaged).")] = False,
           forget_broken: Annotated[bool, typer.Option(
               "--forget-broken", help="Rewrite the snapshots that need lost data without "
               "the broken files (tagged 'repaired') and forget the originals.")] = False,
           host: Host = None, wait: Wait = True, as_json: Json = False) -> None:
    """Repair TARGET's repository: the readable blobs of damaged packs go into new packs,
    the damaged packs are deleted; lost blobs are listed with the snapshots and files that
    need them (back those volumes up again to store what still exists). Refused while a
    backup writes to it."""
    body: dict[str, Any] = {"dry_run": dry_run, "read_data": read_data,
                            "forget_broken": forget_broken} | ({"host": host} if host else {})
    with connect() as c:
        done = _run(c, c.target_job("repair", target, body), wait, as_json)
    if done and not as_json:
        show(done)


def show(done: dict[str, Any]) -> None:
    """The repair's counts, then what is lost and which snapshots need it."""
    r = (done.get("result") or {}).get("report") or {}
    table(f"Repair of {done['target']}" + (" (dry run)" if r.get("dry_run") else ""),
          ["what", "value"],
          [[k, len(v) if isinstance(v, list) else v] for k, v in r.items()
           if k not in ("actions", "broken_snapshots", "snapshots_rewritten", "dry_run")])
    broken = r.get("broken_snapshots") or []
    if broken:
        table("Snapshots that need lost data", ["snapshot", "host", "volume", "paths"],
              [[b["snapshot_id"][:8], b["host"], b["volume"], ", ".join(b["paths"][:5])
                + (" …" if len(b["paths"]) > 5 else "")] for b in broken])
    for old, new in (r.get("snapshots_rewritten") or {}).items():
        out().print(f"snapshot {old[:8]} rewritten as {new[:8]} (tagged repaired)")
    if broken and not r.get("snapshots_rewritten"):
        out().print("back those volumes up again (files that still exist are stored "
                    "whole), or run repair --forget-broken to cut the lost files out")
