"""How a policy's backups are made consistent: its ``stop_containers``, ``excludes``,
``snapshot`` and ``dump`` — the fields of a backup request, checked the same way, stored
on the policy and carried into each backup job it queues (``params``).

Precedence (docs/consistency.md): a label on a container using the volume is the most
specific and wins, then a label on the volume, then the policy, then the default (no stop,
no snapshot, files not a dump). Excludes add up: the policy's patterns, the volume's
``volkeeper.exclude`` label and its ``.volkeeperignore`` all leave paths out. A job a
policy queued says so in its params (``policy``), which is how the worker knows labels
come first (``common.engine.backup``); a manual backup's own options still win there.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, field_validator

from common.jobs.inputs import SnapshotMode, dump_kind, exclude_patterns

#: the consistency fields of a policy, in the order they are shown
CONSISTENCY_FIELDS = ("stop_containers", "excludes", "snapshot", "dump")


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

    @field_validator("dump")
    @classmethod
    def _dump(cls, kind: str | None) -> str | None:
        return dump_kind(kind or None)

    @field_validator("excludes")
    @classmethod
    def _excludes(cls, patterns: list[str]) -> list[str]:
        return exclude_patterns(patterns)


def consistency_problem(stop_containers: bool, snapshot: str | None, dump: str | None
                        ) -> tuple[str, str] | None:
    """(field, why) when the fields cannot go together, as a backup request refuses them:
    a dump runs inside the running database, so it neither stops nor snapshots."""
    if dump and stop_containers:
        return ("dump", f"a {dump} dump backup does not stop the containers (the dump runs "
                "inside the running database): set stop_containers false or drop dump")
    if dump and snapshot not in (None, "off"):
        return ("dump", f"a {dump} dump backup does not read a snapshot: set snapshot off "
                "(or leave it out) or drop dump")
    return None


def stored(body: ConsistencyFields) -> dict[str, Any]:
    """The ``policies`` columns of the fields."""
    return {"stop_containers": body.stop_containers, "excludes": list(body.excludes),
            "snapshot": body.snapshot, "dump": body.dump}


def shown(p: Any) -> dict[str, Any]:
    """The fields of a stored policy (a row, or a row of its columns)."""
    return {"stop_containers": bool(p.stop_containers), "excludes": list(p.excludes or []),
            "snapshot": p.snapshot, "dump": p.dump}

