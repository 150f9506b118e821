"""Commands that run a job: backup, restore (and its dry run), rollback, verify, drill.
Embedded they always wait for the job (it runs in this process)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cli.front import CliError, Front, Options, connect
from cli.options import BackupArg, Json, Wait
from cli.render import emit_json, err, finish, out, size, table, wait_for_job


def backup(
    volume: Annotated[str | None, typer.Argument(
        metavar="VOLUME", help="The volume (none with --project or --group).")] = None,
    host: Annotated[str | None, typer.Option(help="Host of the volume.")] = None,
    target: Annotated[str | None, typer.Option(help="Target name.")] = None,
    fmt: Annotated[str | None, typer.Option(
        "--format", help="tar, tar.gz, tar.zst (portable archives) or repo (the native "
        "repository: deduplicated, encrypted, incremental).")] = None,
    stop_containers: Annotated[bool, typer.Option(
        help="Stop the running containers using the volume for the backup (always "
        "started again).")] = False,
    exclude: Annotated[list[str] | None, typer.Option(
        "--exclude", metavar="PATTERN",
        help="Leave out paths matching this glob, e.g. 'cache/**' or '*.tmp' "
        "(repeatable).")] = None,
    snapshot: Annotated[str | None, typer.Option(
        help="Back up from a filesystem snapshot instead of stopping containers: auto "
        "(where the volume's filesystem can take one, else as configured), btrfs, zfs, "
        "lvm (an error if it cannot), off. Default: the volkeeper.snapshot label.")] = None,
    project: Annotated[str | None, typer.Option(
        help="Back up all volumes of this Compose project as one job, in one stop "
        "window (one backup per volume, tied by a group id).")] = None,
    group: Annotated[str | None, typer.Option(
        help="Back up the --volume's as one group of this name (one job, one stop "
        "window).")] = None,
    member: Annotated[list[str] | None, typer.Option(
        "--volume", metavar="VOLUME", help="A volume of the --group (repeatable).")] = None,
    dump: Annotated[str | None, typer.Option(
        "--dump", metavar="KIND",
        help="Back up a database dump instead of the files: postgres, mysql, mariadb, redis, "
        "sqlite or mongodb, run inside the volume's running database container (or the "
        "containers labelled volkeeper.dump=KIND).")] = None,
    dump_database: Annotated[list[str] | None, typer.Option(
        "--dump-database", metavar="NAME",
        help="postgres, mysql, mariadb: dump this database alone, loadable into a database "
        "of another name (repeatable, or NAME,NAME). Default: the volkeeper.dump-database "
        "label, else every database in one stream.")] = None,
    wait: Wait = False,
    as_json: Json = False,
) -> None:
    """Back up VOLUME now, or a group of volumes (--project, or --group with --volume)
    in one stop window (see README, "Consistent backups", for hooks and excludes)."""
    body: dict[str, Any] = {"host": host, "target": target, "format": fmt,
                            "snapshot": snapshot}
    if stop_containers:
        body["stop_containers"] = True
    if exclude:
        body["excludes"] = exclude
    grouped = bool(project or group or member)
    if grouped == bool(volume):
        raise CliError("name one VOLUME, or a group: --project NAME, or --group NAME "
                       "with --volume A --volume B")
    if project and (group or member):  # (the API's words name its body's fields)
        raise CliError("--project backs up the project's volumes: give no --group or "
                       "--volume with it")
    if bool(group) != bool(member):
        raise CliError("a named group needs both --group NAME and its volumes: --volume A "
                       "--volume B")
    if dump:
        if grouped:
            raise CliError("--dump backs up one volume's database: name one VOLUME (in a "
                           "group, label the database's container volkeeper.dump=KIND)")
        body["dump"] = dump
    if dump_database:
        if grouped:
            raise CliError("--dump-database dumps one volume's database: name one VOLUME")
        body["dump_databases"] = dump_database
    if not Options.server:
        from common.hashes import builtin_only

        # hashlib without OpenSSL's libcrypto: ~3.4 MiB less peak RSS. A backup hashes its
        # data with BLAKE3 (ids, manifest digests); SHA-256 names only small things
        # (common.hashes; an S3 target brings OpenSSL's back before botocore loads)
        builtin_only()
    from common.repository.system.malloc import limit_arenas, map_backup_buffers

    # before the embedded front starts its threads: the backup's peak RSS 172 vs 185-261
    # MiB. Not for restore: 2 arenas cost it CPU (benchmarks/RESULTS.md, session 12)
    limit_arenas()
    map_backup_buffers()  # its large buffers mapped afresh: ~12 MiB lower peak (session 14)
    with connect() as c:
        if grouped:
            body |= {"project": project, "name": group, "volumes": member or []}
            job = c.group_backup({k: v for k, v in body.items() if v is not None})
        else:
            job = c.backup({k: v for k, v in (body | {"volume": volume}).items()
                            if v is not None})
        after_submit(c, job, wait, as_json)


def restore(
    backup_id: Annotated[str | None, typer.Argument(
        metavar="BACKUP", help="The backup (none with --group).")] = None,
    into: Annotated[str | None, typer.Option(help="Volume to restore into.")] = None,
    host: Annotated[str | None, typer.Option(help="Host to restore on.")] = None,
    wait: Wait = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Only validate: objects, target volume, free space.")] = False,
    mode: Annotated[str, typer.Option(
        help="new: into a missing/empty volume; replace: snapshot, replace, verify, roll "
        "back on failure.")] = "new",
    stop_containers: Annotated[bool, typer.Option(
        help="replace: stop containers using the volume (always restarted).")] = False,
    path: Annotated[list[str] | None, typer.Option(
        "--path", help="Restore only this path of the volume (repeatable).")] = None,
    group: Annotated[str | None, typer.Option(
        metavar="GROUP_ID", help="Restore every backup of this group (a group backup's "
        "id), each into its own volume (or VOLUME+--suffix).")] = None,
    suffix: Annotated[str, typer.Option(
        help="--group: restore each member into <volume><suffix>.")] = "",
    dump_into: Annotated[str | None, typer.Option(
        "--dump-into", metavar="CONTAINER",
        help="Load the backup's database dump into this running container (psql, mysql, "
        "mongorestore …; Redis is restarted) instead of restoring files.")] = None,
    dump_from: Annotated[str | None, typer.Option(
        "--dump-from", metavar="NAME",
        help="--dump-into, for a backup of several dumps: the dump of this container (its "
        "name when dumped), this database, CONTAINER@DATABASE or this file name.")] = None,
    database: Annotated[str | None, typer.Option(
        "--database", metavar="NAME",
        help="--dump-into, a one-database dump (--dump-database): load it into a new "
        "database of this name (default: its own); SQLite: a new file's path in the "
        "container. Refused if it exists, unless --replace-database.")] = None,
    replace_database: Annotated[bool, typer.Option(
        "--replace-database",
        help="--dump-into: replace the database (--database, or the dump's own) if it "
        "exists (PostgreSQL: swapped only after the dump loaded).")] = False,
    as_json: Json = False,
) -> None:
    """Restore BACKUP into a new or empty volume (default: its original name), or with
    --mode replace over a volume's content (safety snapshot first, automatic rollback);
    --group restores every volume of a group backup together."""
    if bool(group) == bool(backup_id):
        raise CliError("name one BACKUP, or a group backup with --group GROUP_ID")
    if group:
        if into or path or dry_run or dump_into or database or replace_database:
            raise CliError("--into, --path, --dry-run, --dump-into, --database and "
                           "--replace-database apply to one backup; a group "
                           "restores into its volumes' names (or with --suffix)")
        return _restore_group(group, {"host": host, "mode": mode, "suffix": suffix,
                                      "stop_containers": stop_containers}, wait, as_json)
    if suffix:  # not silently dropped: the user meant another name
        raise CliError("--suffix names the volumes of a --group restore; for one backup "
                       "give the volume's name with --into NAME")
    body: dict[str, Any] = {k: v for k, v in {"backup_id": backup_id, "into": into,
                                              "host": host}.items() if v is not None}
    body |= {"mode": mode, "stop_containers": stop_containers}
    if path:
        body["paths"] = path
    if dump_into:
        if dry_run:
            raise CliError("--dry-run checks a restore into a volume; --dump-into loads into "
                           "a running container (its loader's error says what it refused)")
        body["dump_into"] = dump_into
    if dump_from:
        body["dump_from"] = dump_from
    if database:
        body["database"] = database
    if replace_database:
        body["replace_database"] = True
    with connect() as c:
        if dry_run:
            return _show_validation(c.validate_restore(body), as_json)
        after_submit(c, c.restore(body), wait, as_json)


def _restore_group(group_id: str, body: dict[str, Any], wait: bool, as_json: bool) -> None:
    """One restore per member: wait for all (embedded, or --wait), then report each."""
    with connect() as c:
        made = c.group_restore(group_id, {k: v for k, v in body.items() if v is not None})
        if not (wait or c.embedded):
            if as_json:
                return emit_json(made)
            for job in made:
                out().print(f"job {job['id']} queued: restore into {job['volume']}",
                            highlight=False)
            return None
        done = [wait_for_job(c, job["id"], quiet=as_json) for job in made]
    if as_json:
        emit_json(done)
    failed = [j for j in done if j["state"] != "succeeded"]
    for job in done if not as_json else []:
        if job["state"] == "succeeded":
            finish(job, False)
    if failed:
        raise CliError("; ".join(f"job {j['id']} (into {j['volume']}) {j['state']}: "
                                 f"{j.get('error')}" for j in failed))
    return None


def _show_validation(v: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(v)
    else:
        table(f"Restore of {v['backup_id']} into {v['volume']} on {v['host']}",
              ["check", "ok", "detail"],
              [[c["name"], "yes" if c["ok"] else "[red]NO[/]", c["detail"]]
               for c in v["checks"]], flexible=("detail",))
        out().print(("[green]" if v["ok"] else "[red]") + v["plan"] + "[/]")
    if not v["ok"]:
        raise typer.Exit(1)


def after_submit(c: Front, job: dict[str, Any], wait: bool, as_json: bool) -> None:
    if wait or c.embedded:
        finish(wait_for_job(c, job["id"], quiet=as_json), as_json)
    elif as_json:
        emit_json(job)
    else:
        out().print(f"job {job['id']} queued", highlight=False)
        err().print(f"follow it with: volkeeper job {job['id']} --follow", highlight=False)


def rollback(
    job_id: Annotated[str, typer.Argument(metavar="RESTORE_JOB")],
    wait: Wait = False,
    as_json: Json = False,
) -> None:
    """Undo a completed `restore --mode replace`: put back its safety snapshot."""
    with connect() as c:
        after_submit(c, c.rollback(job_id), wait, as_json)


def verify(
    backup_id: BackupArg,
    host: Annotated[str | None, typer.Option(help="Host to verify on.")] = None,
    read_data: Annotated[bool, typer.Option(
        "--read-data", help="Repo snapshots: read back and re-hash every blob the snapshot "
        "references (default: structure only). Archives are always read whole.")] = False,
    subset: Annotated[str | None, typer.Option(
        metavar="PCT", help="Repo snapshots: read back a random share of the snapshot's "
        "packs, e.g. 5%. Refused for archives.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of --subset's random choice.")] = None,
    as_json: Json = False,
) -> None:
    """Verify BACKUP. Archives: checksum, full read-back, every file against the manifest.
    Repo snapshots: a structure check, --read-data for all data, --subset PCT for a share.
    Exits 1 when anything is damaged, naming the damaged objects and files."""
    if seed is not None and subset is None:
        raise CliError("--seed only seeds --subset's random choice: give --subset too "
                       "(e.g. --subset 5%), or leave --seed out")
    body: dict[str, Any] = {"read_data": read_data}
    if subset is not None:
        body["subset"] = subset
    if seed is not None:
        body["seed"] = seed
    with connect() as c:
        job = c.verify(backup_id, host, body)
        done = wait_for_job(c, job["id"], quiet=as_json)
    if as_json:
        emit_json(done)
        if done["state"] != "succeeded":
            raise typer.Exit(1)
        return
    r = done.get("result") or {}
    if done["state"] == "failed":
        for problem in r.get("problems", [])[:20]:
            err().print(f"  [red]damaged:[/] {problem}", highlight=False)
        raise CliError(done.get("error") or "verification failed")
    if done["state"] == "cancelled":
        raise CliError(f"job {done['id']} cancelled: {done.get('error')}")
    scope = r.get("scope", "full")
    what = {"full": f"{r.get('entries_checked')} entries match the manifest, checksum "
                    f"{r.get('archive_sha256')}",
            "structure": f"structure of {r.get('entries_checked')} referenced blobs in "
                         f"{r.get('packs_referenced')} packs (no data read; add --read-data)",
            "read-data": f"{r.get('entries_checked')} blobs read back from "
                         f"{r.get('packs_read')} packs ({size(r.get('bytes_read'))})",
            "subset": f"{r.get('entries_checked')} blobs of {r.get('packs_read')} of "
                      f"{r.get('packs_referenced')} packs read back ({r.get('subset_percent')}%"
                      f" asked, seed {r.get('seed')})"}.get(scope, scope)
    out().print(f"[green]backup {backup_id} is intact[/]: {what}", highlight=False,
                soft_wrap=True)


def drill(
    backup_id: BackupArg,
    host: Annotated[str | None, typer.Option(help="Host to drill on.")] = None,
    as_json: Json = False,
) -> None:
    """Restore drill: restore BACKUP into a scratch volume, compare every file with the
    backup, measure the restore time, delete the scratch volume. Exits 1 on failure."""
    body = {k: v for k, v in {"backup_id": backup_id, "host": host}.items() if v is not None}
    with connect() as c:
        job = c.drill(body)
        done = wait_for_job(c, job["id"], quiet=as_json)
    r = done.get("result") or {}
    if as_json:
        emit_json(done)
    elif done["state"] == "succeeded":
        out().print(
            f"[green]drill passed[/]: {r.get('files_restored')} files, "
            f"{size(r.get('bytes_restored'))} restored on {r.get('host')} in "
            f"{r.get('restore_seconds')} s ({size(int(r.get('throughput_bytes_per_s') or 0))}/s)"
            f"; {r.get('entries_checked')} entries match the backup", highlight=False,
            soft_wrap=True)
    else:
        for problem in r.get("problems", [])[:20]:
            err().print(f"  [red]differs:[/] {problem}", highlight=False)
    if done["state"] != "succeeded":
        if as_json:
            raise typer.Exit(1)
        raise CliError(done.get("error") or f"drill {done['state']}")
