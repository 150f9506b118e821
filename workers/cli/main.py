"""``volkeeper`` — every verb of the product. Run ``volkeeper --help``."""

from __future__ import annotations

import logging
import sys
from typing import Annotated, Any

import typer

from common.config import Settings, get_settings
from common.errors import VolkeeperError
from workers.cli import repo_cmds
from workers.cli.client import ApiClient, CliError, open_client
from workers.cli.render import emit_json, err_console, finish, size, table, wait_for_job

app = typer.Typer(help="Backup, restore and verify Docker volumes across a fleet of hosts.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
targets_app = typer.Typer(help="Storage targets (local directories, S3 buckets).",
                          no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(targets_app, name="targets")
app.add_typer(db_app, name="db")

Json = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


class Opts:
    server: str | None = None
    token: str | None = None


@app.callback()
def _global(
    server: Annotated[str | None, typer.Option(
        envvar="VOLKEEPER_SERVER", help="API URL; without it the CLI runs embedded.")] = None,
    token: Annotated[str | None, typer.Option(
        envvar="VOLKEEPER_API_TOKEN", help="API bearer token.", show_default=False)] = None,
) -> None:
    Opts.server, Opts.token = server, token


def _settings() -> Settings:
    try:
        return get_settings()
    except Exception as e:  # pydantic validation of VOLKEEPER_* variables
        raise CliError(f"invalid configuration: {e}", "check the VOLKEEPER_* variables") from e


def _client(volume_sizes: bool = False) -> Any:
    return open_client(_settings(), Opts.server, Opts.token, volume_sizes)


@app.command()
def serve(
    bind: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
) -> None:
    """Run the API (and, embedded, the in-process worker)."""
    import uvicorn

    settings = _settings()
    bind = bind or settings.bind
    port = port or settings.port
    _logging(settings)
    if settings.mode == "embedded" and bind not in ("127.0.0.1", "localhost", "::1"):
        raise CliError(f"embedded mode listens on 127.0.0.1 only, not {bind}",
                       "run the fleet (VOLKEEPER_DATABASE_URL, VOLKEEPER_REDIS_URL, "
                       "VOLKEEPER_API_TOKEN) to serve other machines")
    from api.main import create_app

    api = create_app(settings)  # embedded: with the in-process runtime
    err_console.print(f"volkeeper ({settings.mode}) listening on http://{bind}:{port}")
    uvicorn.run(api, host=bind, port=port, log_level=settings.log_level.lower())


@app.command()
def worker(
    host: Annotated[str, typer.Option(help="Name of this Docker host (queue host.NAME).")],
    concurrency: Annotated[int, typer.Option(help="Long jobs run at once.")] = 2,
    quick_only: Annotated[bool, typer.Option(
        "--quick-only", hidden=True, help="Internal: the quick-task consumer.")] = False,
) -> None:
    """Run the Celery worker of one Docker host (fleet). It also starts the host's quick
    lane: a child consumer for dry runs and inventory, so they never wait behind backups."""
    from workers.worker import run_worker

    _logging(_settings())
    run_worker(host, concurrency=concurrency, quick_only=quick_only)


@app.command()
def hosts(as_json: Json = False) -> None:
    """List Docker hosts and whether their worker is online."""
    with _client() as c:
        rows = c.get("/hosts")
    if as_json:
        return emit_json(rows)
    table("Hosts", ["host", "status", "docker", "volumes", "last seen"],
          [[h["name"], "online" if h["online"] else "OFFLINE", h["docker_version"],
            h["volume_count"], h["last_seen_at"]] for h in rows])


@app.command()
def volumes(
    host: Annotated[str | None, typer.Option(help="Only this host.")] = None,
    as_json: Json = False,
) -> None:
    """List volumes on every host: driver, size, containers, last backup."""
    with _client(volume_sizes=True) as c:
        rows = c.get("/volumes", host=host)
    if as_json:
        return emit_json(rows)
    table("Volumes", ["host", "volume", "driver", "size", "containers", "last backup"],
          [[v["host"], v["name"], v["driver"], size(v["size_bytes"]),
            ", ".join(x["name"] for x in v["containers"]), v["last_backup_at"] or "never"]
           for v in rows])


@app.command()
def backup(
    volume: str,
    host: Annotated[str | None, typer.Option(help="Host of the volume.")] = None,
    target: Annotated[str | None, typer.Option(help="Target name.")] = None,
    fmt: Annotated[str | None, typer.Option(
        "--format", help="tar, tar.gz, tar.zst (portable archives) or repo (the native "
        "repository: deduplicated, encrypted, incremental).")] = None,
    wait: Annotated[bool, typer.Option(help="Wait for the job (always, embedded).")] = False,
    as_json: Json = False,
) -> None:
    """Back up VOLUME now."""
    body = {"volume": volume, "host": host, "target": target, "format": fmt}
    with _client() as c:
        job = c.post("/backups", {k: v for k, v in body.items() if v is not None})
        _after_submit(c, job, wait, as_json)


@app.command()
def restore(
    backup_id: Annotated[str, typer.Argument(metavar="BACKUP")],
    into: Annotated[str | None, typer.Option(help="Volume to restore into.")] = None,
    host: Annotated[str | None, typer.Option(help="Host to restore on.")] = None,
    wait: Annotated[bool, typer.Option(help="Wait for the job (always, embedded).")] = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Only validate: objects, target volume, free space.")] = False,
    mode: Annotated[str, typer.Option(
        help="new: into a missing/empty volume; replace: snapshot, replace, verify, roll "
        "back on failure.")] = "new",
    stop_containers: Annotated[bool, typer.Option(
        help="replace: stop containers using the volume (always restarted).")] = False,
    path: Annotated[list[str] | None, typer.Option(
        "--path", help="Restore only this path of the volume (repeatable).")] = None,
    as_json: Json = False,
) -> None:
    """Restore BACKUP into a new or empty volume (default: its original name), or with
    --mode replace over a volume's content (safety snapshot first, automatic rollback)."""
    body: dict[str, Any] = {k: v for k, v in {"backup_id": backup_id, "into": into,
                                              "host": host}.items() if v is not None}
    body |= {"mode": mode, "stop_containers": stop_containers}
    if path:
        body["paths"] = path
    with _client() as c:
        if dry_run:
            return _show_validation(c.post("/restores/validate", body), as_json)
        job = c.post("/restores", body)
        _after_submit(c, job, wait, as_json)


def _show_validation(v: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(v)
    else:
        table(f"Restore of {v['backup_id']} into {v['volume']} on {v['host']}",
              ["check", "ok", "detail"],
              [[c["name"], "yes" if c["ok"] else "NO", c["detail"]] for c in v["checks"]])
        err_console.print(("[green]" if v["ok"] else "[red]") + v["plan"] + "[/]")
    if not v["ok"]:
        raise typer.Exit(1)


def _after_submit(c: ApiClient, job: dict[str, Any], wait: bool, as_json: bool) -> None:
    if wait or c.embedded:
        finish(wait_for_job(c, job["id"], quiet=as_json), as_json)
    elif as_json:
        emit_json(job)
    else:
        err_console.print(f"job {job['id']} queued; follow it with: volkeeper job {job['id']}")


@app.command()
def verify(
    backup_id: Annotated[str, typer.Argument(metavar="BACKUP")],
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
    path = f"/backups/{backup_id}/verify" + (f"?host={host}" if host else "")
    body: dict[str, Any] = {"read_data": read_data}
    if subset is not None:
        body["subset"] = subset
    if seed is not None:
        body["seed"] = seed
    with _client() as c:
        job = c.post(path, body)
        done = wait_for_job(c, job["id"], quiet=as_json)
    if as_json:
        emit_json(done)
        if done["state"] == "failed":
            raise typer.Exit(1)
        return
    r = done.get("result") or {}
    if done["state"] == "failed":
        for problem in r.get("problems", [])[:20]:
            err_console.print(f"  [red]damaged:[/] {problem}")
        raise CliError(done.get("error") or "verification failed")
    scope = r.get("scope", "full")
    if scope == "full":
        err_console.print(f"[green]backup {backup_id} is intact[/]: {r.get('entries_checked')} "
                          f"entries match the manifest, sha256 {r.get('archive_sha256')}")
        return
    what = {"structure": f"structure of {r.get('entries_checked')} referenced blobs in "
                         f"{r.get('packs_referenced')} packs (no data read; add --read-data)",
            "read-data": f"{r.get('entries_checked')} blobs read back from "
                         f"{r.get('packs_read')} packs ({size(r.get('bytes_read'))})",
            "subset": f"{r.get('entries_checked')} blobs of {r.get('packs_read')} of "
                      f"{r.get('packs_referenced')} packs read back ({r.get('subset_percent')}%"
                      f" asked, seed {r.get('seed')})"}.get(scope, scope)
    err_console.print(f"[green]backup {backup_id} is intact[/]: {what}")


@app.command()
def drill(
    backup_id: Annotated[str, typer.Argument(metavar="BACKUP")],
    host: Annotated[str | None, typer.Option(help="Host to drill on.")] = None,
    as_json: Json = False,
) -> None:
    """Restore drill: restore BACKUP into a scratch volume, compare every file with the
    backup, measure the restore time, delete the scratch volume. Exits 1 on failure."""
    body = {k: v for k, v in {"backup_id": backup_id, "host": host}.items() if v is not None}
    with _client() as c:
        job = c.post("/drills", body)
        done = wait_for_job(c, job["id"], quiet=as_json)
    r = done.get("result") or {}
    if as_json:
        emit_json(done)
    elif done["state"] == "succeeded":
        err_console.print(
            f"[green]drill passed[/]: {r.get('files_restored')} files, "
            f"{size(r.get('bytes_restored'))} restored on {r.get('host')} in "
            f"{r.get('restore_seconds')} s ({size(int(r.get('throughput_bytes_per_s') or 0))}/s)"
            f"; {r.get('entries_checked')} entries match the backup")
    else:
        for problem in r.get("problems", [])[:20]:
            err_console.print(f"  [red]differs:[/] {problem}")
    if done["state"] == "failed":
        if as_json:
            raise typer.Exit(1)
        raise CliError(done.get("error") or "drill failed")


@app.command()
def rollback(
    job_id: Annotated[str, typer.Argument(metavar="RESTORE_JOB")],
    wait: Annotated[bool, typer.Option(help="Wait for the job (always, embedded).")] = False,
    as_json: Json = False,
) -> None:
    """Undo a completed `restore --mode replace`: put back its safety snapshot."""
    with _client() as c:
        job = c.post(f"/restores/{job_id}/rollback", {})
        _after_submit(c, job, wait, as_json)


@app.command()
def backups(
    volume: Annotated[str | None, typer.Option(help="Only this volume.")] = None,
    host: Annotated[str | None, typer.Option(help="Only this host.")] = None,
    target: Annotated[str | None, typer.Option(help="Only this target.")] = None,
    tag: Annotated[str | None, typer.Option(help="Only backups with this tag.")] = None,
    pinned: Annotated[bool | None, typer.Option(
        "--pinned/--unpinned", help="Only pinned (or unpinned) backups.",
        show_default=False)] = None,
    as_json: Json = False,
) -> None:
    """List backups."""
    with _client() as c:
        rows = c.get("/backups", volume=volume, host=host, target=target, tag=tag,
                     pinned=None if pinned is None else str(pinned).lower())
    if as_json:
        return emit_json(rows)
    table("Backups", ["id", "host", "volume", "target", "format", "files", "size", "stored",
                      "created", "verified", "tags"],
          [[b["id"], b["host"], b["volume"], b["target"], b["format"], b["file_count"],
            size(b["logical_bytes"]), size(b["stored_bytes"]), b["created_at"],
            f"{b['verify_status']} {b['verified_at']}" if b.get("verify_status") else "never",
            ("pinned: " if b.get("pinned") else "") + ", ".join(b.get("tags") or [])]
           for b in rows])


@app.command()
def jobs(
    limit: Annotated[int, typer.Option(help="How many.")] = 50,
    as_json: Json = False,
) -> None:
    """Job history, newest first."""
    with _client() as c:
        rows = c.get("/jobs", limit=limit)
    if as_json:
        return emit_json(rows)
    table("Jobs", ["id", "kind", "host", "volume", "state", "created", "error"],
          [[j["id"], j["kind"], j["host"], j["volume"], j["state"], j["created_at"],
            (j["error"] or "")[:80]] for j in rows])


@app.command()
def job(
    job_id: Annotated[str, typer.Argument(metavar="ID")],
    follow: Annotated[bool, typer.Option(help="Wait and show progress.")] = False,
    as_json: Json = False,
) -> None:
    """Show one job (with --follow: until it finishes)."""
    with _client() as c:
        data = wait_for_job(c, job_id, quiet=as_json) if follow else c.get(f"/jobs/{job_id}")
    if as_json:
        return emit_json(data)
    for k in ("id", "kind", "state", "host", "volume", "target", "backup_id", "created_at",
              "started_at", "finished_at", "error"):
        err_console.print(f"[bold]{k:>12}[/]: {data.get(k)}")
    if data.get("progress"):
        err_console.print(f"[bold]{'progress':>12}[/]: {data['progress']}")
    if data["state"] == "failed":
        raise typer.Exit(1)


@targets_app.command("list")
def targets_list(as_json: Json = False) -> None:
    """List targets (credentials are never shown)."""
    with _client() as c:
        rows = c.get("/targets")
    if as_json:
        return emit_json(rows)
    table("Targets", ["name", "url", "options", "credentials"],
          [[t["name"], t["url"], t["options"], "yes" if t["has_credentials"] else "no"]
           for t in rows])


@targets_app.command("add")
def targets_add(
    name: str,
    url: str,
    endpoint_url: Annotated[str | None, typer.Option(help="S3 endpoint (MinIO, Ceph, R2…).")
                            ] = None,
    region: Annotated[str | None, typer.Option(help="S3 region.")] = None,
    path_style: Annotated[bool, typer.Option(help="S3 path-style addressing.")] = False,
    access_key_id: Annotated[str | None, typer.Option(envvar="VOLKEEPER_S3_ACCESS_KEY_ID")
                             ] = None,
    secret_access_key: Annotated[str | None, typer.Option(
        envvar="VOLKEEPER_S3_SECRET_ACCESS_KEY", help="Prefer the environment variable.")
    ] = None,
    password_file: Annotated[str | None, typer.Option(
        help="Repository passphrase file on the worker hosts (absolute path).")] = None,
    replace: Annotated[bool, typer.Option(help="Replace an existing target.")] = False,
    as_json: Json = False,
) -> None:
    """Register a target: file:///path or s3://bucket/prefix."""
    options: dict[str, Any] = {"password_file": password_file} if password_file else {}
    if endpoint_url:
        options["endpoint_url"] = endpoint_url
    if region:
        options["region"] = region
    if path_style:
        options["path_style"] = True
    # S3 credentials (often from the environment) only go with S3 targets
    creds = {k: v for k, v in (("access_key_id", access_key_id),
                                ("secret_access_key", secret_access_key))
             if v and url.lower().startswith("s3://")}
    with _client() as c:
        t = c.post("/targets", {"name": name, "url": url, "options": options,
                                "credentials": creds, "replace": replace})
    if as_json:
        return emit_json(t)
    err_console.print(f"target {t['name']} → {t['url']} added")


@targets_app.command("remove")
def targets_remove(name: str) -> None:
    """Remove a target that holds no backups."""
    with _client() as c:
        c.delete(f"/targets/{name}")
    err_console.print(f"target {name} removed")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply database migrations (API and workers also do this on start)."""
    from common.db import Database
    from common.db.migrate import current_revision, upgrade

    db = Database(_settings().effective_database_url)
    upgrade(db)
    err_console.print(f"database at revision {current_revision(db)}")


repo_cmds.register(app, _client)


def _logging(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("botocore", "urllib3", "docker"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main() -> None:
    try:
        app()
    except CliError as e:
        err_console.print(f"[red]error:[/] {e.message}")
        if e.hint:
            err_console.print(f"[yellow]hint:[/] {e.hint}")
        sys.exit(e.exit_code)
    except VolkeeperError as e:
        err_console.print(f"[red]error:[/] {e.message}")
        if e.hint:
            err_console.print(f"[yellow]hint:[/] {e.hint}")
        sys.exit(1)


if __name__ == "__main__":
    main()
