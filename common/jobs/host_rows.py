"""The host side's rules on plain rows, without a database session (``common.db.rows``
rows or ORM objects alike): the worker version a host registers with, a volume's inventory
row, where a failed job may have left archive objects, and whether a one-shot command has
anything of killed jobs to clean up. ``host`` and ``leftovers`` run the steps; the
embedded read commands (``embedded_reads``) ask ``pending_cleanup`` whether they may skip
them."""

from __future__ import annotations

from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from common.db.kinds import GROUP_KIND
from common.db.rows import Rows, doc
from common.formats import is_archive
from common.label_secrets import redact_labels

if TYPE_CHECKING:
    from common.docker import VolumeInfo

VERSION = "0.1.0"  # = pyproject.toml's version (tests/unit/jobs/test_worker_version.py)
#: failed jobs this recent are looked at for leftovers (older ones were, by the worker of
#: their time)
LEFTOVERS_WITHIN = timedelta(days=2)
#: the kinds of job that store objects before cataloging them (``leftover_plan``)
LEFTOVER_KINDS = ("backup", GROUP_KIND, "restore", "copy")


def volume_row(v: VolumeInfo, old_size: int | None = None) -> dict[str, Any]:
    """An inventory row of a volume (its size as measured before, when not measured now),
    its labels' secrets redacted (``common.label_secrets``)."""
    return {
        "name": v.name,
        "driver": v.driver,
        "mountpoint": v.mountpoint,
        "size_bytes": v.size_bytes if v.size_bytes is not None else old_size,
        "labels": redact_labels(v.labels),  # no password of a label is stored
        "containers": {"items": [{"id": c.id, "name": c.name, "state": c.state,
                                  "labels": redact_labels(c.labels)}
                                 for c in v.containers]},
        "created_at": v.created_at,
    }


def leftover_plan(job: Any, source: Any | None) -> tuple[str, list[str], list[str]] | None:
    """Where a failed ``job`` may have left archive objects (``source``: the backup it
    read, if any): (target, prefixes whose keys naming the job are its, exact keys), or
    None (nothing to look for). A group backup's members are under each member's prefix."""
    where = f"{job.host}/{job.volume}/"
    archived = is_archive(job.params.get("format"))
    if job.kind == "backup" and archived and job.target:
        return job.target, [f"volkeeper/archives/{where}"], []
    if job.kind == GROUP_KIND and archived and job.target:
        return job.target, [f"volkeeper/archives/{job.host}/{v}/"
                            for v in job.params.get("volumes") or []], []
    if source is None or not is_archive(source.format):
        return None
    if job.kind == "restore" and job.params.get("mode") == "replace" and job.target:
        return job.target, [f"volkeeper/safety/{where}"], []
    if job.kind == "copy" and job.params.get("destination"):
        return str(job.params["destination"]), [], [source.key, source.manifest_key]
    return None


def pending_cleanup(db: Rows, host: str, now: datetime) -> str | None:
    """Why a command starting on ``host`` must run the host's clean-up steps (the
    stale-job sweep, ``fail_orphaned``, ``recover_interrupted``, ``remove_leftovers``), or
    None when none of them has anything to look at: no job is queued or running, no failed
    job keeps its volume locked, and no failed job of the last two days may have left
    objects it has not been cleared of. A superset of what the steps act on: they judge
    the rest (which process is dead) themselves."""
    rows = db.all(
        "SELECT id, kind, state, host, volume, target, backup_id, params, result, "
        "active_lock, finished_at FROM jobs WHERE state IN ('queued', 'running') "
        "OR (state = 'failed' AND host = :host AND (active_lock IS NOT NULL "
        "OR finished_at > :since))", host=host, since=now - LEFTOVERS_WITHIN)
    for r in rows:
        if r["state"] != "failed":
            return f"job {r['id']} is {r['state']}"
        if r["active_lock"] is not None:
            return f"failed job {r['id']} keeps its volume locked"
        if r["kind"] not in LEFTOVER_KINDS or "leftovers" in doc(r["result"]):
            continue
        job = SimpleNamespace(**(r | {"params": doc(r["params"])}))
        source = None
        if r["backup_id"]:
            found = db.all("SELECT format, key, manifest_key FROM backups WHERE id = :id",
                           id=r["backup_id"])
            source = SimpleNamespace(**found[0]) if found else None
        if leftover_plan(job, source) is not None:
            return f"failed job {r['id']} may have left objects"
    return None
