"""Table definitions. API request/response schemas live in ``api.schemas``, not here."""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    false,
    func,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex[:16]


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, datetime: UTCDateTime()}


class JobState(enum.StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    #: stopped on request (``volkeeper cancel``): nothing of it is recorded as good
    cancelled = "cancelled"

    @property
    def finished(self) -> bool:
        return self in FINISHED_STATES


#: the terminal states of a job (every list of them names this tuple)
FINISHED_STATES = (JobState.succeeded, JobState.failed, JobState.cancelled)


class Host(Base):
    __tablename__ = "hosts"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    docker_version: Mapped[str | None] = mapped_column(String(100))
    worker_version: Mapped[str | None] = mapped_column(String(100))
    info: Mapped[dict[str, Any]] = mapped_column(default=dict)
    registered_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    inventory_at: Mapped[datetime | None] = mapped_column()


class Volume(Base):
    __tablename__ = "volumes"

    host: Mapped[str] = mapped_column(
        String(200), ForeignKey("hosts.name", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    driver: Mapped[str] = mapped_column(String(100))
    mountpoint: Mapped[str | None] = mapped_column(Text)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    containers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[str | None] = mapped_column(String(64))
    seen_at: Mapped[datetime] = mapped_column(default=utcnow)


class Target(Base):
    __tablename__ = "targets"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    # Non-secret options (endpoint_url, region, path_style …) and secrets kept apart so the
    # API can return ``options`` as they are and never touch ``secrets``.
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    secrets: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(32))
    state: Mapped[JobState] = mapped_column(
        Enum(JobState, native_enum=False, length=16), default=JobState.queued
    )
    host: Mapped[str] = mapped_column(String(200))
    volume: Mapped[str] = mapped_column(String(255))
    target: Mapped[str | None] = mapped_column(String(100))
    backup_id: Mapped[str | None] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    progress: Mapped[dict[str, Any]] = mapped_column(default=dict)
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    requested_by: Mapped[str | None] = mapped_column(String(200))
    worker: Mapped[str | None] = mapped_column(String(200))
    # Set to "host/volume" while the job is queued or running, NULL afterwards: the unique
    # index makes "one active job per volume" atomic in SQLite and PostgreSQL alike.
    active_lock: Mapped[str | None] = mapped_column(String(500), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    heartbeat_at: Mapped[datetime | None] = mapped_column()
    # who asked a running job to stop (``volkeeper cancel``); its worker polls this with
    # its heartbeat and stops at the next safe point (the job then ends ``cancelled``)
    cancel_requested_by: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (Index("ix_jobs_state_created", "state", "created_at"),
                      Index("ix_jobs_created_at", "created_at"))


class Backup(Base):
    __tablename__ = "backups"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    job_id: Mapped[str | None] = mapped_column(String(32))
    host: Mapped[str] = mapped_column(String(200))
    volume: Mapped[str] = mapped_column(String(255))
    target: Mapped[str] = mapped_column(String(100))
    format: Mapped[str] = mapped_column(String(16))
    # one meaning per column whatever the format (common.formats): ``key`` the stored
    # object naming the backup (archive, or snapshot object), ``manifest_key`` the
    # archive's manifest ("" for snapshots), ``checksum`` the archive's checksum
    # (``blake3:<hex>``, a sha256 hex for older ones; "" for snapshots), ``snapshot_id``
    # the repository snapshot's id ("" for archives)
    key: Mapped[str] = mapped_column(Text)
    manifest_key: Mapped[str] = mapped_column(Text)
    stored_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    logical_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    file_count: Mapped[int] = mapped_column(BigInteger, default=0)
    checksum: Mapped[str] = mapped_column(String(128))
    snapshot_id: Mapped[str] = mapped_column(String(64), default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # outcome of the newest verification: "ok" | "damaged" (NULL: never verified)
    verified_at: Mapped[datetime | None] = mapped_column()
    verify_status: Mapped[str | None] = mapped_column(String(16))
    verify_job_id: Mapped[str | None] = mapped_column(String(32))
    # "backup", or "safety": the content a replace-restore overwrote, kept until expires_at
    kind: Mapped[str] = mapped_column(String(16), default="backup", server_default="backup")
    expires_at: Mapped[datetime | None] = mapped_column()
    # labels a user gives a backup; for ``repo`` backups also written into the snapshot
    tags: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")
    # a pinned backup is never forgotten (unpin it first)
    pinned: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # the backups one group job made (a Compose project's volumes, or a named set, in one
    # stop window) share it; NULL for a backup of its own (common.jobs.groups)
    group_id: Mapped[str | None] = mapped_column(String(32))
    # a dump backup: the database dumps it holds (kind, container, database or null, path;
    # ``common.jobs.dump_records``), kept by its copies on other targets; NULL: none
    dumps: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)

    __table_args__ = (Index("ix_backups_volume", "host", "volume", "created_at"),
                      Index("ix_backups_snapshot", "target", "snapshot_id"),
                      Index("ix_backups_group", "group_id"),
                      Index("ix_backups_created_at", "created_at"))


class NotifyState(Base):
    """The last known state of one watched subject (a volume's backups, verifications,
    drills, freshness …) and the state last told to people: a notification goes out only
    when they differ, so a restart or a repeated failure sends nothing new."""

    __tablename__ = "notify_state"

    #: "host/volume" (or "target/NAME" for target jobs)
    subject: Mapped[str] = mapped_column(String(500), primary_key=True)
    #: what is watched: a job kind ("backup", "verify", "drill" …) or "rpo" (overdue)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))  # "good" | "bad"
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    notified_state: Mapped[str | None] = mapped_column(String(16))
    notified_at: Mapped[datetime | None] = mapped_column()
    #: the event of the last change (what a deferred message says)
    event: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ApiToken(Base):
    """A named API token. Only the SHA-256 of its secret is kept (never the secret)."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    secret_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(200))
    last_used_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()


class AuditEntry(Base):
    """One state-changing request: who, what, on which object, the outcome. ``details``
    never holds a secret."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"),
                                    primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(server_default=func.now())
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100))
    object: Mapped[str] = mapped_column(String(500), default="")
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    outcome: Mapped[str] = mapped_column(String(500))

    __table_args__ = (Index("ix_audit_log_at", "at"), Index("ix_audit_log_actor", "actor", "at"))


class Policy(Base):
    """What is backed up (``selection``), when (``schedule`` in ``tz``), where (``targets``:
    the first gets the backup, the others a copy), how long it is kept (``retention``) and
    how fresh it must be (``rpo_seconds``; NULL: twice the schedule's interval). The rules
    themselves live in ``common.policies``."""

    __tablename__ = "policies"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    # {"volumes": [...], "hosts": [...], "selector": "KEY=VALUE" | null, "project": ... }
    selection: Mapped[dict[str, Any]] = mapped_column(default=dict)
    schedule: Mapped[str] = mapped_column(String(200))
    tz: Mapped[str] = mapped_column(String(64), default="UTC")
    jitter_seconds: Mapped[int] = mapped_column(Integer, default=0)
    targets: Mapped[list[str]] = mapped_column(JSON, default=list)
    format: Mapped[str | None] = mapped_column(String(16))
    # {"keep_last": 7, "keep_daily": 7, "keep_within": "2d", "keep_tag": [...], ...}
    retention: Mapped[dict[str, Any]] = mapped_column(default=dict)
    rpo_seconds: Mapped[int | None] = mapped_column(BigInteger)
    verify_subset_percent: Mapped[float | None] = mapped_column(Float)
    verify_schedule: Mapped[str | None] = mapped_column(String(200))
    drill_schedule: Mapped[str | None] = mapped_column(String(200))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # how its backups are made consistent (``common.jobs.policy_consistency``): stop the
    # containers, leave out paths (glob patterns), read a snapshot, or dump a database
    stop_containers: Mapped[bool] = mapped_column(Boolean, default=False)
    excludes: Mapped[list[str] | None] = mapped_column(JSON, default=list)
    snapshot: Mapped[str | None] = mapped_column(String(16))
    dump: Mapped[str | None] = mapped_column(String(20))
    # with a dump of one database at a time: those databases (migration 0015)
    dump_databases: Mapped[list[str] | None] = mapped_column(JSON, default=list)
    last_run_at: Mapped[datetime | None] = mapped_column()
    # the slots of the last scheduled verify and drill (claimed like ``last_run_at``)
    verify_last_run_at: Mapped[datetime | None] = mapped_column()
    drill_last_run_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Lease(Base):
    """A named lease (``scheduler``): one holder at a time until ``expires_at``; ``token``
    grows with every new holder, so work done under an old token can be refused
    (fencing)."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(200))
    token: Mapped[int] = mapped_column(BigInteger, default=0)
    expires_at: Mapped[datetime | None] = mapped_column()
