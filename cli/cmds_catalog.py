"""Read and catalog commands: hosts, volumes, backups, jobs, job, targets."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cli.front import CliError, connect, connect_reads
from cli.options import Json
from cli.render import (
    clip,
    emit_json,
    err,
    fit,
    local_time,
    optional,
    out,
    size,
    table,
    too_wide,
    when,
)

hosts_app = typer.Typer(help="Docker hosts: without a subcommand, list them.")


@hosts_app.callback(invoke_without_command=True)
def hosts(ctx: typer.Context, as_json: Json = False) -> None:
    """List Docker hosts and whether their worker is online (`remove NAME`: forget one)."""
    if ctx.invoked_subcommand is not None:
        return
    with connect() as c:
        rows = c.hosts()
    if as_json:
        return emit_json(rows)
    table("Hosts", ["host", "status", "docker", "volumes", "last seen"],
          [[h["name"], "online" if h["online"] else "[red]OFFLINE[/]", h["docker_version"],
            h["volume_count"], when(h["last_seen_at"])] for h in rows], flexible=("host",))


@hosts_app.command("remove")
def hosts_remove(
    name: str,
    update_policies: Annotated[bool, typer.Option(
        "--update-policies", help="Also take it out of the policies naming it (one naming "
        "only it is disabled, its selection kept); without it they refuse the removal."
    )] = False,
    as_json: Json = False,
) -> None:
    """Forget host NAME whose worker is gone (admin): its volume inventory goes, its
    backups stay in the catalog. Refused while it is online, has an unfinished job or
    migration, is named by policies (see --update-policies) or (embedded) is this
    machine; a host that comes back registers again."""
    with connect(docker=False) as c:
        r = c.remove_host(name, update_policies)
    if as_json:
        return emit_json(r)
    err().print(f"host {r['name']} removed ({r['volumes']} volume(s) forgotten; "
                f"{r['backups_kept']} backup(s) kept: volkeeper backups --host {r['name']})",
                highlight=False)
    for p in r.get("policies_changed") or []:
        if p["change"] == "disabled":
            said = "disabled (it named only this host; its selection is kept)"
        else:
            said = f"host taken out (hosts now: {', '.join(p['hosts'])})"
        err().print(f"policy {p['name']}: {said}", highlight=False)
    if r["policies"]:
        err().print(f"disabled policies still naming it: {', '.join(r['policies'])}",
                    highlight=False)


def volumes(
    host: Annotated[str | None, typer.Option(help="Only this host.")] = None,
    as_json: Json = False,
) -> None:
    """List volumes on every host: driver, size, containers, last backup, and the policy
    backing each up (overdue: its newest good backup is older than the policy's RPO)."""
    with connect_reads(inventory=True, volume_sizes=True) as c:
        rows = c.volumes(host)
    if as_json:
        return emit_json(rows)
    by_host = optional(rows, "host")
    policies = any(v.get("policy") for v in rows)
    table("Volumes", ["host"] * by_host + ["volume", "driver", "size", "containers",
                                            "last backup"] + ["policy"] * policies,
          [[v["host"]] * by_host + [v["name"], v["driver"], size(v["size_bytes"]),
                                    ", ".join(x["name"] for x in v["containers"]),
                                    when(v["last_backup_at"])] + [_policy(v)] * policies
           for v in rows],
          flexible=("host", "volume", "containers", "policy"))


def _policy(v: dict[str, Any]) -> str:
    """``nightly``, ``nightly OVERDUE``, ``a (also b)`` for a volume's policy."""
    if not v.get("policy"):
        return ""
    text = v["policy"]
    others = [p for p in v.get("policy_conflict") or [] if p != v["policy"]]
    if others:
        text += f" [yellow](also {', '.join(others)})[/]"
    return text + (" [red]OVERDUE[/]" if v.get("overdue") else "")


def backups(
    backup_id: Annotated[str | None, typer.Argument(
        metavar="BACKUP", help="Show this backup in full instead of the list.")] = None,
    volume: Annotated[str | None, typer.Option(help="Only this volume.")] = None,
    host: Annotated[str | None, typer.Option(help="Only this host.")] = None,
    target: Annotated[str | None, typer.Option(help="Only this target.")] = None,
    tag: Annotated[str | None, typer.Option(help="Only backups with this tag.")] = None,
    pinned: Annotated[bool | None, typer.Option(
        "--pinned/--unpinned", help="Only pinned (or unpinned) backups.",
        show_default=False)] = None,
    group: Annotated[str | None, typer.Option(
        help="Only the backups of this group (GROUP_ID of a group backup).")] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first.", min=1)] = 200,
    as_json: Json = False,
) -> None:
    """List backups, newest first; with BACKUP, show that one in full."""
    if backup_id is not None:
        if any(v is not None for v in (volume, host, target, tag, pinned, group)):
            raise CliError("BACKUP shows one backup: leave out the list's filters",
                           f"volkeeper backups {backup_id}")
        with connect_reads() as c:
            one = c.backup_info(backup_id)
        return emit_json(one) if as_json else _show_backup(one)
    with connect_reads() as c:
        rows = c.backups(volume=volume, host=host, target=target, tag=tag, pinned=pinned,
                         group=group, limit=limit)
    if as_json:
        return emit_json(rows)
    if len(rows) >= limit:
        err().print(f"the newest {len(rows)} backups: --limit N shows more",
                    highlight=False)
    by_host, by_target = optional(rows, "host"), optional(rows, "target")
    # not with --group: every row has that id (and the table needs the room at 80 columns)
    by_group = group is None and any(b.get("group_id") for b in rows)
    by_volume = volume is None  # --volume: in the title instead
    columns = (["id"] + ["host"] * by_host + ["volume"] * by_volume + ["target"] * by_target
               + ["format", "size", "stored", "created", "verified", "tags"]
               + ["group"] * by_group)

    def cells(short: bool) -> list[list[Any]]:
        return [[b["id"]] + [b["host"]] * by_host + [b["volume"]] * by_volume
                + [b["target"]] * by_target
                + [b["format"], size(b["logical_bytes"]), size(b["stored_bytes"]),
                   when(b["created_at"]), _verified(b, short),
                   ("pinned " if b.get("pinned") else "") + ",".join(b.get("tags") or [])]
                + [b.get("group_id") or ""] * by_group for b in rows]

    # narrow terminals (80 columns): the verified status without its age, then without
    # the columns `backups ID` and --json show best (format, stored size, group id, tags)
    cols, data = columns, cells(False)
    if too_wide(cols, data):
        cols, data = fit(columns, cells(True), ("format", "stored", "group", "tags"))
    table("Backups" + (f" of {volume}" if volume else ""), cols, data,
          flexible=("host", "volume", "target", "verified", "tags"))


def _verified(b: dict[str, Any], short: bool = False) -> str:
    status = b.get("verify_status")
    if not status:
        return "never"
    colour = "red" if status == "damaged" else "green"
    return f"[{colour}]{status}[/]" + ("" if short else f" {when(b['verified_at'])}")


def _show_backup(b: dict[str, Any]) -> None:
    """One backup in words (``volkeeper backups ID``): what the 80-column list leaves out
    too (format, stored size, checksum or snapshot, group, tags, dumps)."""
    from rich.markup import escape

    files = f"{b['file_count']:,} file" + ("" if b["file_count"] == 1 else "s")
    lines = [("id", b["id"]), ("volume", f"{b['volume']} on host {b['host']}"),
             ("target", b["target"]), ("format", b["format"]),
             ("created", local_time(b["created_at"])),
             ("size", f"{size(b['logical_bytes'])} in {files}, "
                      f"{size(b['stored_bytes'])} stored")]
    if b.get("kind") == "safety":
        lines.append(("kind", "safety snapshot of a replace-restore, expires "
                      + local_time(b.get("expires_at"))))
    lines.append(("verified", _verified(b) + (f" (job {b.get('verify_job_id') or '-'})"
                                              if b.get("verify_status") else "")))
    tags = (["pinned"] if b.get("pinned") else []) + list(b.get("tags") or [])
    lines += [("tags", ", ".join(tags) or "-")] + \
        [("group", b["group_id"])] * bool(b.get("group_id"))
    if b.get("snapshot_id"):
        lines.append(("snapshot", b["snapshot_id"]))
    if b.get("checksum"):
        lines.append(("checksum", b["checksum"]))
    lines += [("key", b["key"])] + [("manifest", b["manifest_key"])] * bool(b["manifest_key"])
    for d in b.get("dumps") or []:
        lines.append(("dump", ", ".join(f"{k}={v}" for k, v in d.items() if v not in (None, ""))))
    lines.append(("job", b.get("job_id") or "-"))
    for k, v in lines:
        out().print(f"[bold]{k:>10}[/]: " + (v if k == "verified" else escape(str(v))),
                    highlight=False, soft_wrap=True)


def jobs(
    limit: Annotated[int, typer.Option(help="How many.")] = 50,
    kind: Annotated[str | None, typer.Option(
        help="Only jobs of this kind (backup, restore, drill, …); quick helper jobs "
        "(browse) are listed only this way.")] = None,
    as_json: Json = False,
) -> None:
    """Job history, newest first."""
    with connect_reads() as c:
        rows = c.jobs(limit, kind)
    if as_json:
        return emit_json(rows)
    from rich.markup import escape

    by_host = optional(rows, "host")
    table("Jobs", ["id", "kind"] + ["host"] * by_host + ["volume", "state", "created",
                                                        "error"],
          [[j["id"], j["kind"]] + [j["host"]] * by_host
           + [j["volume"] or j["target"] or "", _state(j["state"]), when(j["created_at"]),
              escape(clip(j["error"] or "", 60))] for j in rows],
          flexible=("host", "volume"), one_line=("error",))


def _state(state: str) -> str:
    return {"failed": "[red]failed[/]", "succeeded": "[green]ok[/]",
            "cancelled": "[yellow]cancelled[/]"}.get(state, state)


def job(
    job_id: Annotated[str, typer.Argument(metavar="ID")],
    follow: Annotated[bool, typer.Option(help="Wait and show progress.")] = False,
    release: Annotated[bool, typer.Option(
        "--release", help="Operator override for a stuck lock: fail the job and release "
        "its volume's lock now (a worker still running it stops at its next heartbeat).")
    ] = False,
    reason: Annotated[str | None, typer.Option(help="Why (kept on the job; --release).")
                      ] = None,
    as_json: Json = False,
) -> None:
    """Show one job (with --follow: until it finishes; --release: release its lock)."""
    from cli.render import progress_line, wait_for_job

    with connect(docker=False) as c:
        if release:
            data = c.release_job(job_id, reason)
        else:
            data = wait_for_job(c, job_id, quiet=as_json) if follow else c.job(job_id)
    if as_json:
        emit_json(data)
    else:
        from rich.markup import escape  # not at start-up: rich costs ~1.6 MiB per command

        for k in ("id", "kind", "state", "host", "volume", "target", "backup_id", "error"):
            if data.get(k) is not None:
                out().print(f"[bold]{k:>10}[/]: {escape(str(data[k]))}", highlight=False)
        for k in ("created_at", "started_at", "finished_at"):
            if data.get(k):
                out().print(f"[bold]{k.removesuffix('_at'):>10}[/]: {local_time(data[k])}",
                            highlight=False)
        if data.get("progress"):
            out().print(f"[bold]{'progress':>10}[/]: {escape(progress_line(data))}",
                        highlight=False, soft_wrap=True)
        if items := _result_items(data.get("result")):
            out().print(f"[bold]{'result':>10}[/]: "
                        + escape(", ".join(f"{k}={v}" for k, v in items)), highlight=False)
        for warning in (data.get("result") or {}).get("hook_warnings") or []:
            if warning not in (data.get("error") or ""):  # (a failing pre hook is the error)
                out().print(f"[bold]{'warning':>10}[/]: {escape(warning)}", highlight=False,
                            soft_wrap=True)
    if data["state"] in ("failed", "cancelled") and not release:
        raise typer.Exit(1)


def _result_items(result: Any) -> list[tuple[str, str]]:
    """The result's plain values worth a line each (ids, counts, keys), in its order;
    lists and records are in ``--json``."""
    if not isinstance(result, dict):
        return []
    return [(k, str(v)) for k, v in result.items()
            if isinstance(v, str | int | float) and not isinstance(v, bool) and v != ""]


def cancel(
    job_id: Annotated[str, typer.Argument(metavar="JOB_ID")],
    wait: Annotated[bool, typer.Option(
        "--wait", help="Wait until a running job has stopped.")] = False,
    as_json: Json = False,
) -> None:
    """Cancel a queued or running job. A queued job is cancelled at once; a running one
    stops at its next safe point (within seconds): nothing half-written is recorded as
    good, a half restore is undone, stopped containers start again. Exits 1 when the job
    has already finished."""
    from cli.render import wait_for_job

    with connect(docker=False) as c:
        data = c.cancel_job(job_id)
        if wait and data["state"] == "running":
            data = wait_for_job(c, job_id, quiet=True)
    if as_json:
        emit_json(data)
    elif data["state"] == "cancelled":
        out().print(f"job {job_id} ({data['kind']}) cancelled", highlight=False)
    elif data["state"] == "running":
        out().print(f"job {job_id} ({data['kind']}) is asked to stop; follow it with: "
                    f"volkeeper job {job_id} --follow", highlight=False)
    else:
        out().print(f"job {job_id} ({data['kind']}) ended {data['state']} before it "
                    "stopped", highlight=False)


targets_app = typer.Typer(help="Storage targets (local directories, S3 buckets).",
                          no_args_is_help=True)


@targets_app.command("list")
def targets_list(as_json: Json = False) -> None:
    """List targets (credentials are never shown)."""
    with connect(docker=False) as c:
        rows = c.targets()
    if as_json:
        return emit_json(rows)
    table("Targets", ["name", "url", "backups", "stored", "credentials"],
          [[t["name"], t["url"], t["backup_count"], size(t["stored_bytes"]),
            "yes" if t["has_credentials"] else "no"] for t in rows],
          flexible=("name", "url"))


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
    with connect(docker=False) as c:
        t = c.add_target({"name": name, "url": url, "options": options,
                          "credentials": creds, "replace": replace})
    if as_json:
        return emit_json(t)
    out().print(f"target {t['name']} → {t['url']} added", highlight=False)


@targets_app.command("remove")
def targets_remove(name: str, as_json: Json = False) -> None:
    """Remove a target that holds no backups and that no policy names."""
    with connect(docker=False) as c:
        c.remove_target(name)
    if as_json:  # (the API answers 204: nothing more to say)
        return emit_json({"name": name, "removed": True})
    err().print(f"target {name} removed", highlight=False)
