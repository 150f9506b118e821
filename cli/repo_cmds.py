"""CLI verbs for stored backups and repositories: tag, pin, unpin, forget, copy, prune,
stats, snapshots, key list|add|remove, unlock. Registered on the main app by
``register(app)``; each submits a job and (by default) waits for its result."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cli.front import CliError, Front, connect
from cli.options import BackupArg, Json
from cli.render import emit_json, err, optional, out, size, table, wait_for_job, when

Host = Annotated[str | None, typer.Option(
    help="Host whose worker does it (default: the backup's host; for a target, embedded "
    "this host, fleet the online host that last backed up to it).")]
Wait = Annotated[bool, typer.Option(help="Wait for the job and show its result.")]
TargetArg = Annotated[str, typer.Argument(metavar="TARGET")]


def _run(c: Front, job: dict[str, Any], wait: bool, as_json: bool, *,
         progress: bool = False) -> dict[str, Any] | None:
    """Wait for ``job`` (always embedded) and return it finished, or None when not waiting.
    With ``as_json`` the finished job is printed; a failed job exits 1 (with its error).
    ``progress``: a progress bar while waiting (not with ``as_json``)."""
    if not (wait or c.embedded):
        if as_json:
            emit_json(job)
        else:
            err().print(f"job {job['id']} queued; follow it with: volkeeper job "
                        f"{job['id']} --follow")
        return None
    done: dict[str, Any] = wait_for_job(c, job["id"], quiet=as_json or not progress)
    if as_json:
        emit_json(done)
    _check(done, as_json)
    return done


def _check(done: dict[str, Any], as_json: bool) -> None:
    if done["state"] not in ("failed", "cancelled"):
        return
    if as_json:
        raise typer.Exit(1)
    raise CliError(f"job {done['id']} ({done['kind']}) {done['state']}: {done.get('error')}")


def register(app: typer.Typer) -> None:
    key_app = typer.Typer(help="Passphrases (key files) of a target's repository.",
                          no_args_is_help=True)
    app.add_typer(key_app, name="key")

    def _label(backup_id: str, body: dict[str, Any], as_json: bool) -> None:
        with connect() as c:
            res = c.label(backup_id, body)
            job = res.get("job")
            if job:
                res["job"] = wait_for_job(c, job["id"], quiet=True)
        b = res["backup"]
        if as_json:
            emit_json(res)
        if job:
            _check(res["job"], as_json)
        if as_json:
            return
        pin = "pinned" if b["pinned"] else "not pinned"
        out().print(f"backup {b['id']}: tags {', '.join(b['tags']) or '(none)'}; {pin}"
                    + (" (written into its repository snapshot)" if job else ""), soft_wrap=True)

    @app.command()
    def tag(backup_id: BackupArg,
            add: Annotated[list[str] | None, typer.Option("--add", help="Tag to add.")] = None,
            remove: Annotated[list[str] | None, typer.Option(
                "--remove", help="Tag to remove.")] = None,
            host: Host = None, as_json: Json = False) -> None:
        """Add or remove tags of BACKUP (repo backups: also in the repository snapshot)."""
        if not add and not remove:
            raise CliError("nothing to do", "give --add TAG and/or --remove TAG")
        _label(backup_id, {"add_tags": add or [], "remove_tags": remove or [], "host": host},
               as_json)

    @app.command()
    def pin(backup_id: BackupArg, host: Host = None, as_json: Json = False) -> None:
        """Pin BACKUP: it can not be forgotten until unpinned."""
        _label(backup_id, {"pinned": True, "host": host}, as_json)

    @app.command()
    def unpin(backup_id: BackupArg, host: Host = None, as_json: Json = False) -> None:
        """Unpin BACKUP."""
        _label(backup_id, {"pinned": False, "host": host}, as_json)

    @app.command()
    def forget(backup_id: BackupArg,
               then_prune: Annotated[bool, typer.Option(
                   "--prune", help="Then prune its target (reclaim repository space).")
               ] = False,
               host: Host = None, as_json: Json = False) -> None:
        """Delete BACKUP: its stored objects, then its catalog entry. Pinned backups are
        refused. A repo backup's data shared with other snapshots stays; --prune reclaims
        what nothing references any more."""
        with connect() as c:
            job = c.forget(backup_id, host)
            done = _run(c, job, True, as_json and not then_prune)
            assert done is not None
            if not as_json:
                out().print(f"[green]backup {backup_id} forgotten[/]: deleted "
                            f"{', '.join(done['result'].get('deleted_objects') or []) or '-'}")
            if then_prune:
                pj = c.target_job("prune", job["target"], _host(host))
                pruned: dict[str, Any] = wait_for_job(c, pj["id"], quiet=True)
                if as_json:
                    emit_json({"forget": done, "prune": pruned})
                    _check(pruned, True)
                else:
                    _check(pruned, False)
                    _show_prune(pruned)

    @app.command()
    def copy(backup_id: BackupArg,
             to: Annotated[str, typer.Option("--to", help="Destination target.")],
             host: Host = None, wait: Wait = True, as_json: Json = False) -> None:
        """Copy BACKUP to another target (repo: without re-chunking; archives: object by
        object). The copy is a new backup in the catalog."""
        body = {"target": to} | ({"host": host} if host else {})
        with connect() as c:
            done = _run(c, c.copy(backup_id, body), wait, as_json)
        if done and not as_json:
            r = done["result"]
            if r.get("already_there"):
                out().print(f"[green]{to} holds {backup_id} already[/] as backup "
                            f"{r['copy_backup_id']}: nothing copied")
            else:
                out().print(f"[green]copied {backup_id} to {to}[/] as backup "
                            f"{r['copy_backup_id']} ({size(r.get('stored_bytes'))} stored)")

    @app.command()
    def prune(target: TargetArg,
              dry_run: Annotated[bool, typer.Option(
                  "--dry-run", help="Only report what would be deleted.")] = False,
              host: Host = None, wait: Wait = True, as_json: Json = False) -> None:
        """Reclaim the space of data no snapshot of TARGET's repository references. Refused
        while a backup writes to it."""
        body: dict[str, Any] = {"dry_run": dry_run} | ({"host": host} if host else {})
        with connect() as c:
            done = _run(c, c.target_job("prune", target, body), wait, as_json)
        if not as_json:
            _show_prune(done)

    def _show_prune(done: dict[str, Any] | None) -> None:
        if not done:
            return
        r = done["result"]
        table(f"Prune of {done['target']}" + (" (dry run)" if r.get("dry_run") else ""),
              ["what", "value"], [[k, v] for k, v in (r.get("report") or {}).items()
                                  if not isinstance(v, list | dict)])

    @app.command()
    def stats(target: TargetArg, host: Host = None, as_json: Json = False) -> None:
        """Sizes of TARGET's repository: logical, stored, deduplication, compression."""
        with connect() as c:
            done = _run(c, c.target_job("stats", target, _host(host)), True, as_json)
        if done and not as_json:
            st = done["result"].get("stats") or {}
            table(f"Repository of {target}", ["", "value"],
                  [[k.replace("_", " "), _stat_value(k, v)]
                   for k, v in st.items() if not isinstance(v, list | dict)])

    @app.command()
    def snapshots(target: TargetArg,
                  adopt: Annotated[bool, typer.Option(
                      "--adopt", help="Add the snapshots the catalog does not know to it.")
                  ] = False,
                  host: Host = None, as_json: Json = False) -> None:
        """Every snapshot in TARGET's repository, read from the repository itself (also
        those the catalog does not know, e.g. after losing the database; --adopt catalogs
        them so they can be restored again)."""
        with connect() as c:
            done = _run(c, c.target_job("snapshots", target,
                                        {"adopt": adopt} | _host(host)), True, as_json)
        if done and not as_json:
            rows = done["result"]["snapshots"]
            by_host = optional(rows, "host")
            table(f"Snapshots in {target}", ["snapshot"] + ["host"] * by_host
                  + ["volume", "time", "tags", "files", "size", "backup"],
                  [[s["id"][:16]] + [s["host"]] * by_host
                   + [s["volume"], when(s["time"]),
                      ("pinned " if s["pinned"] else "") + ",".join(s["tags"]), s["files"],
                      size(s["bytes"]), s["backup_id"] or "[yellow]not in catalog[/]"]
                   for s in rows], flexible=("host", "volume", "tags"))

    @app.command()
    def unlock(target: TargetArg, host: Host = None, as_json: Json = False) -> None:
        """Remove stale locks of TARGET's repository (left by workers that died)."""
        with connect() as c:
            done = _run(c, c.target_job("unlock", target, _host(host)), True, as_json)
        if done and not as_json:
            r = done["result"]
            out().print(f"removed {r['removed']} stale lock(s); "
                        f"{len(r.get('remaining') or [])} live lock(s) remain")

    @key_app.command("list")
    def key_list(target: TargetArg, host: Host = None, as_json: Json = False) -> None:
        """The key files of TARGET's repository."""
        with connect() as c:
            done = _run(c, c.target_job("keys/list", target, _host(host)), True, as_json)
        if done and not as_json:
            table(f"Keys of {target}", ["id", "created", "on", "used by this worker"],
                  [[k["id"][:16], when(k["created"]), k["hostname"], "yes" if k["in_use"] else ""]
                   for k in done["result"]["keys"]])

    @key_app.command("add")
    def key_add(target: TargetArg,
                new_password_file: Annotated[Path | None, typer.Option(
                    help="File holding the new passphrase (first line); else a prompt.")
                ] = None,
                host: Host = None, as_json: Json = False) -> None:
        """Add a passphrase to TARGET's repository."""
        secret = _read_new_password(new_password_file)
        with connect() as c:
            done = _run(c, c.target_job("keys", target,
                                        {"new_password": secret} | _host(host)), True, as_json)
        if done and not as_json:
            out().print(f"[green]key {done['result']['added'][:16]} added[/] to {target}")

    @key_app.command("remove")
    def key_remove(target: TargetArg, key_id: Annotated[str, typer.Argument(metavar="KEY")],
                   host: Host = None, as_json: Json = False) -> None:
        """Remove key KEY (an id prefix) from TARGET's repository."""
        with connect() as c:
            done = _run(c, c.remove_key(target, key_id, host), True,
                        as_json)
        if done and not as_json:
            out().print(f"key {done['result']['removed'][:16]} removed from {target}")


def _host(host: str | None) -> dict[str, Any]:
    return {"host": host} if host else {}


def _read_new_password(path: Path | None) -> str:
    if path is not None:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as e:
            raise CliError(f"cannot read {path}: {e.strerror}") from None
        if not lines or not lines[0]:
            raise CliError(f"{path} is empty", "write the new passphrase on its first line")
        return lines[0]
    first = typer.prompt("New passphrase", hide_input=True)
    if first != typer.prompt("Repeat it", hide_input=True):
        raise CliError("the passphrases differ", "type the same passphrase twice")
    if not first:
        raise CliError("the passphrase is empty")
    return str(first)


def _stat_value(key: str, value: Any) -> str:
    """A repository statistic for people: sizes in units, ratios as 1.7x, counts grouped
    (``--json`` keeps the numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if key.endswith("bytes"):
        return size(int(value))
    if key.endswith("ratio"):
        return f"{value:.1f}x"
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"
