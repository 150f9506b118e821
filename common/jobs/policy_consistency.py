"""How a policy's backups are made consistent: its ``stop_containers``, ``excludes``,
``snapshot``, ``dump`` and ``dump_databases`` — the fields of a backup request, checked
the same way, stored on the policy and carried into each backup job it queues
(``params``).

Precedence (docs/consistency.md): a label on a container using the volume is the most
specific and wins, then a label on the volume, then the policy, then the default (no stop,
no snapshot, files not a dump). Excludes add up: the policy's patterns, the volume's
``volkeeper.exclude`` label and its ``.volkeeperignore`` all leave paths out. A job a
policy queued says so in its params (``policy``), which is how the worker knows labels
come first (``common.engine.backup``); a manual backup's own options still win there.
``dump_databases`` go with the policy's ``dump`` (a kind that dumps one database: postgres,
mysql, mariadb): a container's ``volkeeper.dump-database`` label wins over them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, field_validator

from common.jobs.inputs import SnapshotMode, dump_database_names, dump_kind, exclude_patterns

#: the consistency fields of a policy, in the order they are shown
CONSISTENCY_FIELDS = ("stop_containers", "excludes", "snapshot", "dump", "dump_databases")


class ConsistencyFields(BaseModel):
    """The consistency fields of ``PolicyBody`` (defaults: those of a plain backup)."""

    stop_containers: bool = Field(
        default=False, description="stop the running containers using each volume for its "
        "backup (always started again); a volkeeper.stop-during-backup label on a "
        "container or the volume overrides it")
    excludes: list[str] = Field(
        default_factory=list, max_length=100, examples=[["cache/**", "*.tmp"]],
        description="glob patterns of paths to leave out, added to the volume's "
        "volkeeper.exclude label and its .volkeeperignore")
    snapshot: SnapshotMode | None = Field(
        default=None, description="read a filesystem snapshot instead of stopping: auto, "
        "btrfs, zfs, lvm or off; the volume's volkeeper.snapshot label overrides it")
    dump: str | None = Field(
        default=None, max_length=20, description="back up a database dump instead of the "
        "files: postgres, mysql, mariadb, redis, sqlite or mongodb; a container's "
        "volkeeper.dump label overrides it")
    dump_databases: list[str] = Field(
        default_factory=list, max_length=100, examples=[["shop", "crm"]],
        description="with a postgres, mysql or mariadb dump: dump these databases, each "
        "alone (loadable into a database of another name), instead of every database in "
        "one stream; a container's volkeeper.dump-database label overrides them")

    @field_validator("dump_databases")
    @classmethod
    def _dump_databases(cls, names: list[str]) -> list[str]:
        return dump_database_names(names)

    @field_validator("dump")
    @classmethod
    def _dump(cls, kind: str | None) -> str | None:
        return dump_kind(kind or None)

    @field_validator("excludes")
    @classmethod
    def _excludes(cls, patterns: list[str]) -> list[str]:
        return exclude_patterns(patterns)


def consistency_problem(stop_containers: bool, snapshot: str | None, dump: str | None,
                        dump_databases: list[str] | None = None) -> tuple[str, str] | None:
    """(field, why) when the fields cannot go together, as a backup request refuses them:
    a dump runs inside the running database, so it neither stops nor snapshots; named
    databases need a dump kind that dumps one database alone."""
    if dump_databases:
        problem = databases_problem(dump)
        if problem:
            return ("dump_databases", problem)
    if dump and stop_containers:
        return ("dump", f"a {dump} dump backup does not stop the containers (the dump runs "
                "inside the running database): set stop_containers false or drop dump")
    if dump and snapshot not in (None, "off"):
        return ("dump", f"a {dump} dump backup does not read a snapshot: set snapshot off "
                "(or leave it out) or drop dump")
    return None


def databases_problem(dump: str | None) -> str | None:
    """Why ``dump_databases`` cannot go with the dump kind ``dump`` (None: they can)."""
    from common.hooks.dump_kinds import KINDS

    one = [k for k, v in KINDS.items() if v.dump_one is not None]
    kinds = f"{', '.join(one[:-1])} or {one[-1]}"
    if dump is None:
        return ("names databases to dump but the policy has no dump: set dump to "
                f"{kinds}, or drop dump_databases")
    if KINDS[dump].dump_one is None:
        return (f"a {dump} dump holds the whole server, it cannot dump one database "
                f"alone (only a {kinds} dump can): drop dump_databases")
    return None


def stored(body: ConsistencyFields) -> dict[str, Any]:
    """The ``policies`` columns of the fields."""
    return {"stop_containers": body.stop_containers, "excludes": list(body.excludes),
            "snapshot": body.snapshot, "dump": body.dump,
            "dump_databases": list(body.dump_databases)}


def shown(p: Any) -> dict[str, Any]:
    """The fields of a stored policy (a row, or a row of its columns)."""
    return {"stop_containers": bool(p.stop_containers), "excludes": list(p.excludes or []),
            "snapshot": p.snapshot, "dump": p.dump,
            "dump_databases": list(p.dump_databases or [])}

