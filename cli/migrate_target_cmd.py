"""``volkeeper migrate-target FROM TO [--volume V …] [--delete-source]``: move a target's
backups to another target as one job (both fronts: ``POST /targets/{FROM}/migrate``)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cli.front import connect
from cli.options import Json
from cli.render import out, table
from cli.repo_cmds import Host, Wait, _run

Volumes = Annotated[list[str] | None, typer.Option(
    "--volume", help="Only the backups of this volume (repeatable; default: all).")]


def migrate_target(
    source: Annotated[str, typer.Argument(metavar="FROM")],
    destination: Annotated[str, typer.Argument(metavar="TO")],
    volume: Volumes = None,
    delete_source: Annotated[bool, typer.Option(
        "--delete-source", help="Forget each backup at FROM once its copy at TO read back "
        "whole (pinned ones are kept).")] = False,
    host: Host = None, wait: Wait = True, as_json: Json = False) -> None:
    """Move the backups of target FROM to target TO: repository snapshots without
    re-chunking, archives object by object; each copy is a new backup in the catalog and
    is verified (read back whole) before anything is deleted. Run it again after an
    interruption: what was copied already is skipped."""
    body: dict[str, Any] = {"destination": destination, "volumes": volume or [],
                            "delete_source": delete_source} | ({"host": host} if host else {})
    with connect() as c:
        done = _run(c, c.target_job("migrate", source, body), wait, as_json, progress=True)
    if done and not as_json:
        _show(done["result"])


def _show(r: dict[str, Any]) -> None:
    table(f"{r['source']} → {r['destination']}", ["backup", "volume", "copy", "verified",
                                                   "source"],
          [[i["source_backup_id"], i["volume"],
            i["copy_backup_id"] + ("" if i["copied"] else " (there already)"),
            "yes" if i["verified"] else "no",
            "deleted" if i["deleted"] else i["note"] or "kept"] for i in r["items"]],
          flexible=("volume",))
    out().print(f"[green]{r['backups']} backup(s)[/]: {r['copied']} copied, "
                f"{r['already_there']} there already, {r['verified']} verified, "
                f"{r['deleted']} deleted at {r['source']}", highlight=False)
