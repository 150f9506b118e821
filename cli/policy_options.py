"""The options ``volkeeper policy create`` and ``update`` share, defined once: the
``policy_options`` decorator gives a command their signature (Typer reads it) and calls it
with ``(name, given, as_json)``, ``given`` every option by its parameter name. ``body`` and
``retention`` turn them into the API's fields."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Annotated, Any, get_type_hints

import typer

from cli.front import CliError
from cli.options import Json

Opt = typer.Option
Volumes = Annotated[list[str] | None, Opt("--volume", help="Volume name (repeatable).")]
Hosts = Annotated[list[str] | None, Opt("--host", help="Only volumes on this host "
                                         "(repeatable; alone: all of its volumes).")]
Selector = Annotated[str | None, Opt(help="LABEL=VALUE on the volume or a container using "
                                     "it, e.g. volkeeper.policy=nightly.")]
Project = Annotated[str | None, Opt(help="A Docker Compose project's volumes.")]
Schedule = Annotated[str | None, Opt(help="Cron expression ('0 2 * * *'), @hourly, @daily, "
                                     "@weekly, @monthly, or '@every 6h'.")]
Tz = Annotated[str | None, Opt("--tz", help="IANA time zone of the schedule (default UTC).")]
Jitter = Annotated[str | None, Opt(help="Delay each run by up to this long (e.g. 5m).")]
Target = Annotated[str | None, Opt(help="Target of the backups (default: "
                                        "VOLKEEPER_DEFAULT_TARGET, local).")]
CopyTo = Annotated[list[str] | None, Opt("--copy-to", help="Also copy each backup to this "
                                         "target (repeatable; replaces the policy's copy "
                                         "targets; --copy-to '' removes them).")]
Fmt = Annotated[str | None, Opt("--format", help="tar, tar.gz, tar.zst or repo.")]
Count = Annotated[int | None, Opt(show_default=False, help="Count (-1: unlimited).")]
Within = Annotated[str | None, Opt(help="Keep every backup this young (e.g. 30d).")]
KeepTag = Annotated[list[str] | None, Opt("--keep-tag", help="Keep backups with this tag "
                                          "(repeatable; --keep-tag '' removes the rule).")]
Rpo = Annotated[str | None, Opt(help="How old the newest good backup may be (e.g. 26h; "
                                "default: twice the schedule's interval).")]
Subset = Annotated[float | None, Opt(help="Percent (0-100] of a repository backup's data "
                                     "a scheduled verify reads back (e.g. 5).")]
Cadence = Annotated[str | None, Opt(help="When to verify / drill the newest good backup of "
                                    "each volume (same forms as --schedule, e.g. @weekly).")]
Enabled = Annotated[bool | None, Opt("--enabled/--disabled", show_default=False)]
Stop = Annotated[bool | None, Opt(
    "--stop-containers/--no-stop-containers", show_default=False,
    help="Stop the running containers using each volume for its backup (a "
    "volkeeper.stop-during-backup label on a container or the volume wins).")]
Exclude = Annotated[list[str] | None, Opt(
    "--exclude", help="Glob pattern of paths to leave out, e.g. 'cache/**' (repeatable; "
    "replaces the policy's list; --exclude '' empties it).")]
Snapshot = Annotated[str | None, Opt(help="Read a filesystem snapshot instead of stopping: "
                                     "auto, btrfs, zfs, lvm or off ('' unsets it).")]
Dump = Annotated[str | None, Opt(help="Back up a database dump instead of the files: "
                                 "postgres, mysql, mariadb, redis, sqlite or mongodb ('' "
                                 "unsets it).")]
DumpDatabase = Annotated[list[str] | None, Opt(
    "--dump-database", metavar="NAME",
    help="With a postgres, mysql or mariadb --dump: dump this database alone, loadable into "
    "a database of another name (repeatable, or NAME,NAME; replaces the policy's list; "
    "--dump-database '' empties it). A container's volkeeper.dump-database label wins.")]

KEEP = ("keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly",
        "keep_yearly", "keep_within", "keep_tag")


def _options(name: str, volume: Volumes = None, host: Hosts = None,
             selector: Selector = None, project: Project = None, schedule: Schedule = None,
             tz: Tz = None, jitter: Jitter = None, target: Target = None,
             copy_to: CopyTo = None, fmt: Fmt = None, keep_last: Count = None,
             keep_hourly: Count = None, keep_daily: Count = None, keep_weekly: Count = None,
             keep_monthly: Count = None, keep_yearly: Count = None, keep_within: Within = None,
             keep_tag: KeepTag = None, rpo: Rpo = None, verify_subset: Subset = None,
             verify_schedule: Cadence = None, drill_schedule: Cadence = None,
             enabled: Enabled = None, stop_containers: Stop = None,
             exclude: Exclude = None, snapshot: Snapshot = None, dump: Dump = None,
             dump_database: DumpDatabase = None, as_json: Json = False) -> None:
    """The signature of ``policy create`` and ``policy update`` (never called)."""


Command = Callable[[str, dict[str, Any], bool], None]


def policy_options(fn: Command) -> Callable[..., None]:
    """``fn(name, given, as_json)`` as a Typer command taking the shared options."""

    @functools.wraps(fn)
    def command(name: str, as_json: bool = False, **given: Any) -> None:
        fn(name, given, as_json)

    command.__signature__ = inspect.signature(_options, eval_str=True)  # type: ignore[attr-defined]
    command.__annotations__ = get_type_hints(_options, include_extras=True)
    return command


def body(given: dict[str, Any]) -> dict[str, Any]:
    """The policy fields given (none of the targets or retention)."""
    out: dict[str, Any] = {
        "volumes": given["volume"], "hosts": given["host"], "selector": given["selector"],
        "project": given["project"], "schedule": given["schedule"], "tz": given["tz"],
        "jitter_seconds": _jitter(given["jitter"]), "format": given["fmt"],
        "rpo": given["rpo"], "verify_subset": given["verify_subset"],
        "verify_schedule": given["verify_schedule"],
        "drill_schedule": given["drill_schedule"], "enabled": given["enabled"],
        "stop_containers": given["stop_containers"], "snapshot": given["snapshot"],
        "dump": given["dump"],
        "excludes": None if given["exclude"] is None else [p for p in given["exclude"] if p],
        "dump_databases": (None if given["dump_database"] is None
                           else [d for d in given["dump_database"] if d])}
    # '' unsets snapshot and dump (None is "not given")
    return {k: (v or None) if k in ("snapshot", "dump") else v for k, v in out.items()
            if v is not None}


def retention(given: dict[str, Any]) -> dict[str, Any]:
    """The retention rules given (``--keep-*``); ``--keep-tag ''`` gives ``keep_tag: []``
    (on update: the rule removed, as ``--keep-within ''`` and a count of 0 do)."""
    out = {k: given[k] for k in KEEP if given[k] not in (None, [])}
    if "keep_tag" in out:
        out["keep_tag"] = [t for t in out["keep_tag"] if t]
    return out


def copies(copy_to: list[str] | None) -> list[str]:
    """The copy targets given (``--copy-to ''`` gives none, as ``--exclude ''`` does)."""
    return [t for t in copy_to or [] if t]


def _jitter(text: str | None) -> int | None:
    if text is None:
        return None
    if text.isdigit():
        return int(text)
    from common.policies.schedule import parse_duration

    try:
        return int(parse_duration(text).total_seconds())
    except ValueError as e:
        raise CliError(f"--jitter: {e}") from None
