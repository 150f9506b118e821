"""Migration commands: ``migrate`` (start or dry-run one), ``migrations`` (the list),
``migration ID [--follow]`` / ``migration rollback ID`` / ``migration cancel ID`` and
(``evacuate``: cli/evacuate_cmds.py). Embedded, ``migrate``, ``--follow`` and
``rollback`` drive the migration in this process until it ends (there is no server to do
it)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cli.front import CliError, Front, connect
from cli.options import Json
from cli.render import emit_json, err, fit, out, table, too_wide, when
from common.units import size

FINAL = ("succeeded", "rolled_back", "failed", "cancelled")


def migrate(
    volume: Annotated[str, typer.Argument(metavar="VOLUME")],
    to_host: Annotated[str, typer.Option("--to-host", help="Destination host.")],
    host: Annotated[str | None, typer.Option(help="Host of the volume.")] = None,
    to_volume: Annotated[str | None, typer.Option(
        "--to-volume", help="Destination volume name (default: the same).")] = None,
    driver: Annotated[str, typer.Option(help="Destination volume driver.")] = "local",
    driver_opt: Annotated[list[str] | None, typer.Option(
        "--driver-opt", metavar="KEY=VALUE",
        help="A driver option, e.g. type=none, o=bind, device=/srv/data (repeatable).")
        ] = None,
    via: Annotated[str | None, typer.Option(
        help="Target the data travels through (default: the default target).")] = None,
    cutover: Annotated[str, typer.Option(
        help="stop: stop the containers using the source for the final copy (they stay "
        "stopped after a success); none: no stop.")] = "stop",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only run the checks.")] = False,
    remove_source: Annotated[bool, typer.Option(
        "--remove-source", help="After a verified copy: a pinned backup of the source, "
        "then remove it.")] = False,
    recreate_containers: Annotated[bool, typer.Option(
        "--recreate-containers", help="After a verified copy, recreate the containers "
        "stopped for the cut-over on the new volume, on the destination host (same "
        "configuration; the old ones kept, stopped).")] = False,
    as_json: Json = False,
) -> None:
    """Migrate VOLUME to another host, name or driver: checks, a pre-copy while it runs,
    a short cut-over, a verify; rolled back on any failure (see docs/migration.md)."""
    opts: dict[str, str] = {}
    for item in driver_opt or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"invalid --driver-opt {item!r}", "write it as KEY=VALUE")
        opts[key] = value
    body: dict[str, Any] = {"volume": volume, "host": host, "to_host": to_host,
                            "to_volume": to_volume, "driver": driver, "driver_opts": opts,
                            "via": via, "cutover": cutover, "dry_run": dry_run,
                            "remove_source": remove_source,
                            "recreate_containers": recreate_containers}
    with connect() as c:
        result = c.migrate({k: v for k, v in body.items() if v is not None})
        if dry_run:
            _dry_run(result, as_json)
            return
        if c.embedded:
            result = _follow(c, result["id"], as_json)
        _show(result, as_json)


def _dry_run(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(result)
    else:
        for c in result["checks"]:
            check_line(c["ok"], f"{c['name']}: {c['detail']}")
        _para(f"plan: {result['plan']}")
    if not result["ok"]:
        raise typer.Exit(1)


def migrations(
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 50,
    as_json: Json = False,
) -> None:
    """List migrations, newest first."""
    with connect(docker=False) as c:
        rows = c.migrations(limit)
    if as_json:
        emit_json(rows)
        return
    columns = ["ID", "STATE", "SOURCE", "DESTINATION", "DOWNTIME", "VERIFY", "CREATED"]
    cells = [[m["id"], m["state"], f"{m['source']['host']}/{m['source']['volume']}",
              f"{m['destination']['host']}/{m['destination']['volume']}",
              secs(m["downtime_seconds"]), m["verify_outcome"] or "-",
              when(m["created_at"])] for m in rows]
    # narrow terminals (80 columns): rather than cutting the volumes' names, leave out
    # what `migration ID` and --json show (the verify, then the age, then the downtime)
    if too_wide(columns, cells):
        columns, cells = fit(columns, cells, ("VERIFY", "CREATED", "DOWNTIME"))
    table("Migrations", columns, cells, flexible=("SOURCE", "DESTINATION"))


def migration(
    what: Annotated[str, typer.Argument(metavar="ID | rollback ID | cancel ID")],
    migration_id: Annotated[str | None, typer.Argument(metavar="[ID]")] = None,
    follow: Annotated[bool, typer.Option(
        "--follow", help="Follow it to its end (embedded: drive it here).")] = False,
    md: Annotated[bool, typer.Option("--md", help="The report as Markdown.")] = False,
    as_json: Json = False,
) -> None:
    """Show migration ID (with --follow until it ends), or `rollback ID` (undo a
    succeeded one) or `cancel ID` (stop a running one; it rolls back)."""
    action = what if what in ("rollback", "cancel") else "show"
    mid = migration_id if action != "show" else what
    if mid is None:
        raise CliError(f"no migration id given: volkeeper migration {action} ID",
                       "volkeeper migrations lists them")
    with connect(docker=action != "show" or follow) as c:
        if action == "rollback":
            m = c.rollback_migration(mid)
            follow = follow or c.embedded
        elif action == "cancel":
            m = c.cancel_migration(mid)
        else:
            m = c.migration(mid)
        if follow and m["state"] not in FINAL:
            m = _follow(c, mid, as_json)
        # embedded, nothing drives a migration between commands: one whose `migrate`
        # was killed stays "running" (its failed step not rolled back) until resumed
        idle = c.embedded and m["state"] not in FINAL and not as_json
        if md:
            out().print(c.migration_report(mid), markup=False, highlight=False, soft_wrap=True)
            return
    # a rollback that rolled back (a cancel that cancelled) did what was asked: exit 0
    _show(m, as_json, {"rollback": "rolled_back", "cancel": "cancelled"}.get(action))
    if idle:
        _para(f"  embedded, it moves on only while a volkeeper command drives it "
              f"(`volkeeper migrate`, `--follow`, `volkeeper serve`); if none does (its "
              f"`volkeeper migrate` was stopped): `volkeeper migration {mid} --follow`")


def _follow(c: Front, mid: str, as_json: bool) -> dict[str, Any]:
    """Wait for the migration to end, printing each phase as it changes (embedded: this
    process drives it)."""
    seen: dict[str, str] = {}
    while True:
        m = c.drive_migration(mid) or c.migration(mid)
        if not as_json:
            for p in m["phases"]:
                if seen.get(p["name"]) != p["state"]:
                    seen[p["name"]] = p["state"]
                    err().print(f"{p['name']}: {p['state']}", highlight=False)
        if m["state"] in FINAL:
            return m
        c.wait_migration()


def _show(m: dict[str, Any], as_json: bool, asked: str | None = None) -> None:
    if as_json:
        emit_json(m)
    else:
        src, dst = m["source"], m["destination"]
        _para(f"migration {m['id']}: {m['state']} — {src['host']}/{src['volume']} → "
              f"{dst['host']}/{dst['volume']} ({dst['driver']})", "")
        width = out().width
        for p in m["phases"]:
            head = f"  {p['name']:<9} {p['state']:<11} {size(p['bytes']):>10}"
            steps = [f"{j['step']}={j['job_id']}" for j in p["jobs"]]
            if len(head) + sum(len(x) + 2 for x in steps) <= width:
                out().print(" ".join([head, ", ".join(steps)]).rstrip(), highlight=False,
                            markup=False)
            else:  # each job id on a line of its own rather than cut by the wrap
                out().print(head, highlight=False, markup=False)
                for x in steps:
                    out().print(f"      {x}", highlight=False, markup=False)
        _para(f"  downtime {secs(m['downtime_seconds'])}, verify "
              f"{m['verify_outcome'] or '-'}")
        catchup = (m.get("report") or {}).get("catchup")
        if catchup:
            from common.jobs.migration_views import catchup_text
            _para(f"  catch-up {catchup_text(catchup)}")
        if m["reason"]:
            _para(f"  reason: {m['reason']}")
        for step in m.get("next_steps") or []:
            _para(f"  next: {step}")
        if asked and m["state"] not in FINAL:  # the server's coordinator goes on with it
            doing = "rolling back" if asked == "rolled_back" else "being cancelled"
            _para(f"  {doing}: `volkeeper migration {m['id']} --follow` follows it to "
                  "its end")
    if m["state"] in ("rolled_back", "failed", "cancelled") and m["state"] != asked:
        raise typer.Exit(1)


def _para(text: str, indent: str = "    ") -> None:
    """``text`` wrapped to the terminal, its further lines indented under the first."""
    import textwrap

    out().print("\n".join(textwrap.wrap(text, out().width, subsequent_indent=indent,
                                         break_on_hyphens=False, break_long_words=False))
                or text, highlight=False, markup=False, soft_wrap=True)


def check_line(ok: bool, text: str) -> None:
    """A check as "ok …" (green) or "FAILED …" (red), wrapped to the terminal with its
    further lines indented (the details are plain text, never markup)."""
    import textwrap

    from rich.markup import escape

    mark = "ok" if ok else "FAILED"
    lines = textwrap.wrap(f"{mark} {text}", out().width, subsequent_indent="    ",
                          break_on_hyphens=False, break_long_words=False) or [mark]
    colour = "green" if ok else "red"
    first = f"[{colour}]{mark}[/]{escape(lines[0][len(mark):])}"
    out().print("\n".join([first, *(escape(x) for x in lines[1:])]), highlight=False,
                soft_wrap=True)


def secs(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}s"
