"""Evacuation commands: ``evacuate HOST --to-host B`` (every volume of a host, a few at a
time, one report), ``evacuations`` (the list) and ``evacuation ID [--follow]``
(one evacuation's report). Embedded, ``evacuate`` and ``--follow`` drive its migrations
in this process until they end (there is no server to do it)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cli.front import Front, connect
from cli.migrate_cmds import check_line, secs
from cli.options import Json
from cli.render import emit_json, err, fit, out, size, table, too_wide, when


def evacuate(
    host: Annotated[str, typer.Argument(metavar="HOST")],
    to_host: Annotated[str, typer.Option("--to-host", help="Destination host.")],
    concurrency: Annotated[int, typer.Option(help="Volumes moved at once.")] = 2,
    via: Annotated[str | None, typer.Option(help="Target the data travels through.")
                   ] = None,
    cutover: Annotated[str, typer.Option(help="stop or none (as for migrate).")] = "stop",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only run the checks.")] = False,
    recreate_containers: Annotated[bool, typer.Option(
        "--recreate-containers", help="Recreate the containers stopped for each volume's "
        "cut-over on --to-host (as migrate --recreate-containers).")] = False,
    as_json: Json = False,
) -> None:
    """Migrate every volume of HOST to --to-host (same names), a few at a time, with one
    report for the whole move (embedded: driven here until it ends)."""
    body = {"host": host, "to_host": to_host, "concurrency": concurrency, "via": via,
            "cutover": cutover, "dry_run": dry_run,
            "recreate_containers": recreate_containers}
    with connect() as c:
        e = c.evacuate({k: v for k, v in body.items() if v is not None})
        if dry_run:
            _dry_run(e, as_json)
            return
        if not as_json:
            err().print(f"evacuation {e['id']}: {len(e['migrations'])} volumes")
        e = _follow(c, e)
    _show(e, as_json)


def evacuations(
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 50,
    as_json: Json = False,
) -> None:
    """List evacuations, newest first (`volkeeper evacuation ID` shows one)."""
    with connect(docker=False) as c:
        rows = c.evacuations(limit)
    if as_json:
        emit_json(rows)
        return
    columns = ["ID", "STATE", "FROM", "TO", "VOLUMES", "MOVED", "DOWNTIME", "CREATED"]
    cells = [[e["id"], e["state"], e["host"], e["to_host"],
              " ".join(f"{n} {k}" for k, n in e["counts"].items()) or str(e["volumes"]),
              size(e["bytes"]), secs(e["downtime_max_seconds"]), when(e["created_at"])]
             for e in rows]
    # narrow terminals (80 columns): the age, then the bytes, rather than folding the
    # counts per state into fragments ("succeed" / "ed"); `evacuation ID` has them all
    if too_wide(columns, cells):
        columns, cells = fit(columns, cells, ("CREATED", "MOVED"))
    table("Evacuations", columns, cells, flexible=("VOLUMES", "FROM", "TO"))


def evacuation(
    evacuation_id: Annotated[str, typer.Argument(metavar="ID")],
    follow: Annotated[bool, typer.Option(
        "--follow", help="Follow it to its end (embedded: drive it here).")] = False,
    as_json: Json = False,
) -> None:
    """Show evacuation ID's report (Markdown): each volume's migration and the totals
    (exit 1 unless it succeeded or is still running)."""
    with connect(docker=follow) as c:
        e = c.evacuation(evacuation_id)
        if follow:
            e = _follow(c, e)
    _show(e, as_json)


def _dry_run(e: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(e)
    else:
        for v in e["volumes"]:
            for x in v["checks"]:
                if not x["ok"]:
                    check_line(False, f"{v['volume']}: {x['name']}: {x['detail']}")
            if v["ok"]:
                check_line(True, f"{v['volume']}: {v['plan']}")
    if not e["ok"]:
        raise typer.Exit(1)


def _follow(c: Front, e: dict[str, Any]) -> dict[str, Any]:
    while e["state"] == "running":
        c.wait_migration()
        e = c.evacuation(e["id"])
    return e


def _show(e: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(e)
    else:
        from common.jobs.evacuations import markdown

        out().print(markdown(e), markup=False, highlight=False, soft_wrap=True)
    if e["state"] not in ("succeeded", "running"):
        raise typer.Exit(1)
