"""What every front shows: the output models of hosts, volumes, targets, backups and jobs,
built from the catalog by the functions below. The API returns them as JSON. The views of
hosts' volumes, backups and jobs are built as plain dicts by ``common.jobs.reads`` (one
implementation, also what the embedded read commands print without loading SQLAlchemy or
pydantic) and validated into these models here, so ``--json`` is identical with and
without ``--server``."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from common.config import Settings
from common.db import Backup, Job, JobState, Target, catalog, hosts, jobs
from common.db.kinds import BACKUP_KINDS, known_kind
from common.db.models import Volume
from common.db.rows import SessionRows
from common.errors import VolkeeperError
from common.jobs import reads
from common.progress import ProgressBus


class OutModel(BaseModel):
    """Base of the output models: each builds its validator at its first use
    (``defer_build``), so a command that shows a job does not build every view (~1 ms
    each at a command's start)."""

    model_config = ConfigDict(defer_build=True)


class ContainerOut(OutModel):
    id: str
    name: str
    state: str


class HostOut(OutModel):
    name: str
    online: bool
    docker_version: str | None
    worker_version: str | None
    last_seen_at: datetime
    inventory_at: datetime | None
    volume_count: int


class VolumeOut(OutModel):
    host: str
    name: str
    driver: str
    mountpoint: str | None
    size_bytes: int | None
    labels: dict[str, Any]
    containers: list[ContainerOut]
    last_backup_at: datetime | None = Field(default=None, description="newest regular "
                                            "backup (safety snapshots do not count)")
    seen_at: datetime
    policy: str | None = Field(default=None, description="the policy backing it up")
    policy_conflict: list[str] = Field(default_factory=list, description="every policy "
                                       "matching it, when more than one (the first owns it)")
    rpo_seconds: int | None = Field(default=None, description="its policy's RPO")
    last_good_backup_at: datetime | None = Field(default=None, description="newest backup "
                                                 "that is not a safety snapshot nor damaged")
    overdue: bool | None = Field(default=None, description="newest good backup older than "
                                 "the RPO (null: no policy)")


class BackedUpVolumeOut(OutModel):
    host: str
    volume: str
    backups: int = Field(description="regular backups (safety snapshots not counted)")
    newest_at: datetime


class TreeEntryOut(OutModel):
    name: str
    type: str = Field(description="dir, file, symlink, hardlink, fifo, char, block, socket")
    size: int
    mtime: float | None = Field(description="seconds since the epoch")


class TreeOut(OutModel):
    backup_id: str
    path: str = Field(description="the directory listed, inside the volume (\"\": its root)")
    entries: list[TreeEntryOut]
    more: int = Field(description="entries not listed (past the first 2,000)")


class TargetOut(OutModel):
    name: str
    url: str
    options: dict[str, Any]
    has_credentials: bool
    created_at: datetime
    backup_count: int = Field(default=0, description="backups the catalog knows there")
    stored_bytes: int = Field(default=0, description="their stored bytes (catalog sum; "
                              "repository backups count what each added)")


class CheckOut(OutModel):
    name: str
    ok: bool
    detail: str


class ValidationOut(OutModel):
    job_id: str
    ok: bool
    plan: str
    backup_id: str
    host: str
    volume: str
    volume_state: str = Field(description="missing | empty | not-empty")
    mode: str = "new"
    stopping: list[str] = []
    restore_bytes: int
    free_bytes: int | None
    containers: list[ContainerOut]
    checks: list[CheckOut]


class DumpHeldOut(OutModel):
    kind: str
    container: str
    database: str | None = Field(default=None, description="the one database of the dump "
                                 "(loads into another name with --database); null: every "
                                 "database of the server in one dump")
    path: str = Field(description="the dump's file in the backup")


class BackupOut(OutModel):
    id: str
    job_id: str | None
    host: str
    volume: str
    target: str
    format: str
    key: str = Field(description="the stored object naming the backup: the archive, or the "
                     "repository snapshot's object")
    manifest_key: str = Field(description="archives: their manifest object (empty for repo "
                              "backups)")
    stored_bytes: int
    logical_bytes: int
    file_count: int
    checksum: str = Field(description="archives: the checksum of the archive object, "
                          "`blake3:<hex>` (b3sum), or a sha256 hex for older backups "
                          "(empty for repo backups)")
    created_at: datetime
    verified_at: datetime | None = None
    verify_status: str | None = Field(default=None, description="ok | ok (structure) | "
                                         "ok (subset) | damaged | null: the last "
                                         "verification's outcome; 'ok' means all data "
                                         "was read back")
    verify_job_id: str | None = None
    kind: str = Field(default="backup", description="backup | safety")
    expires_at: datetime | None = None
    tags: list[str] = []
    pinned: bool = Field(default=False, description="a pinned backup is never forgotten")
    snapshot_id: str | None = Field(default=None, description="repo backups: the id of "
                                    "their snapshot in the target's repository")
    group_id: str | None = Field(default=None, description="the group job's backups (a "
                                 "Compose project's volumes or a named set, one stop "
                                 "window) share it; restore them together with "
                                 "POST /api/v1/groups/{group_id}/restore")
    dumps: list[DumpHeldOut] = Field(default=[], description="a dump backup: the database "
                                     "dumps it holds, as its backup job recorded them "
                                     "(a copy on another target holds the same)")

    @field_validator("dumps", mode="before")
    @classmethod
    def _none_held(cls, dumps: Any) -> Any:
        return dumps or []  # a catalog row without dumps holds NULL


class JobOut(OutModel):
    id: str
    kind: str
    state: str
    host: str
    volume: str
    target: str | None
    backup_id: str | None
    params: dict[str, Any]
    progress: dict[str, Any]
    result: dict[str, Any]
    error: str | None
    requested_by: str | None
    worker: str | None
    cancel_requested_by: str | None = Field(
        default=None, description="who asked this job to stop (it ends `cancelled`)")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class LabelOut(OutModel):
    backup: BackupOut
    job: JobOut | None = None


# --- builders: one row → its view ----------------------------------------------------


def job_out(job: Job, bus: ProgressBus | None) -> JobOut:
    """A job with its live progress merged in while it runs."""
    return JobOut.model_validate(reads.job_view(reads.columns(job), bus))


def backup_out(b: Backup) -> BackupOut:
    return BackupOut.model_validate(reads.backup_view(reads.columns(b)))


def target_out(t: Target, usage: tuple[int, int] = (0, 0)) -> TargetOut:
    return TargetOut(name=t.name, url=t.url, options=t.options or {},
                     has_credentials=bool(t.secrets), created_at=t.created_at,
                     backup_count=usage[0], stored_bytes=usage[1])


def validation_out(job: Job) -> ValidationOut:
    """The checks of a finished ``validate`` job (a dry run that could not run is an
    error, not a failed check)."""
    if job.state != JobState.succeeded:
        raise VolkeeperError(f"the validation could not run: {job.error}",
                             f"see volkeeper job {job.id}")
    return ValidationOut(job_id=job.id, **job.result)


# --- reads: what the list and show commands return -----------------------------------


def list_hosts(session: Session, settings: Settings) -> list[HostOut]:
    after = timedelta(seconds=settings.host_offline_after_seconds)
    counts: dict[str, int] = {
        h: n for h, n in session.execute(select(Volume.host, func.count()).group_by(Volume.host))}
    return [HostOut(name=h.name, online=hosts.is_online(h, after), docker_version=h.docker_version,
                    worker_version=h.worker_version, last_seen_at=h.last_seen_at,
                    inventory_at=h.inventory_at, volume_count=counts.get(h.name, 0))
            for h in hosts.list_hosts(session)]


def list_volumes(session: Session, host: str | None = None,
                 overdue: bool | None = None) -> list[VolumeOut]:
    """Volumes with their newest backup, policy, RPO and overdue flag (``overdue``: only
    those whose flag is that; a volume without a policy is never overdue)."""
    return [VolumeOut.model_validate(v)
            for v in reads.list_volumes(SessionRows(session), host, overdue)]


def get_volume(session: Session, host: str, name: str) -> VolumeOut:
    return VolumeOut.model_validate(reads.list_volumes(SessionRows(session), host,
                                                       name=name)[0])


def list_backups(session: Session, *, host: str | None = None, volume: str | None = None,
                 target: str | None = None, kind: str = "backup", tag: str | None = None,
                 pinned: bool | None = None, limit: int = 200, offset: int = 0,
                 group: str | None = None) -> list[BackupOut]:
    """Newest first. ``kind``: backup, safety, or all; ``group``: one group's backups."""
    known_kind(kind, BACKUP_KINDS, "backup kind")
    return [BackupOut.model_validate(b) for b in reads.list_backups(
        SessionRows(session), host=host, volume=volume, target=target, limit=limit,
        kind=None if kind == "all" else kind, tag=tag, pinned=pinned, offset=offset,
        group=group)]


def backed_up_volumes(session: Session) -> list[BackedUpVolumeOut]:
    """Every volume with a backup (also those removed from their host since)."""
    return [BackedUpVolumeOut(host=h, volume=v, backups=n, newest_at=t)
            for h, v, n, t in catalog.backed_up_volumes(session)]


def get_backup(session: Session, backup_id: str) -> BackupOut:
    return backup_out(catalog.get_backup(session, backup_id))


def list_jobs(session: Session, bus: ProgressBus | None, *, host: str | None = None,
              volume: str | None = None, state: JobState | None = None,
              kind: str | None = None, limit: int = 100, offset: int = 0) -> list[JobOut]:
    return [JobOut.model_validate(j) for j in reads.list_jobs(
        SessionRows(session), bus, host=host, volume=volume, state=state, kind=kind,
        limit=limit, offset=offset)]


def get_job(session: Session, bus: ProgressBus | None, job_id: str) -> JobOut:
    return job_out(jobs.get_job(session, job_id), bus)


def list_targets(session: Session) -> list[TargetOut]:
    """Targets, with how many backups the catalog knows on each and their stored bytes."""
    usage = catalog.target_usage(session)
    return [target_out(t, usage.get(t.name, (0, 0))) for t in catalog.list_targets(session)]


def get_target(session: Session, name: str) -> TargetOut:
    return target_out(catalog.get_target(session, name),
                      catalog.target_usage(session).get(name, (0, 0)))


def dump(data: Any) -> Any:
    """JSON-able form of a view (or a list of them), as the API serialises it."""
    if isinstance(data, list):
        return [dump(x) for x in data]
    if isinstance(data, BaseModel):
        return data.model_dump(mode="json")
    return data
