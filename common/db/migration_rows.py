"""The ``migrations`` table: one row per volume migration (``common.jobs.migrations``).

A migration moves a volume from a source (host, volume) to a destination (host, volume,
driver and its options) through a repository target (``via``). Its ``steps`` map each
step's name to the child job that did it (a backup, a restore, a cut-over …), so the
coordinator that drives it can resume after a restart; ``phases`` is what users see
(validate, pre-copy, cut-over, verify, finish, rollback: state, times, bytes, job ids)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from common.db.models import Base, new_id, utcnow

#: a migration's states; the last four are final
MIGRATION_STATES = ("queued", "running", "succeeded", "rolled_back", "failed", "cancelled")
FINAL_STATES = frozenset(MIGRATION_STATES[2:])


class Migration(Base):
    __tablename__ = "migrations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    state: Mapped[str] = mapped_column(String(16), default="queued")
    requested_by: Mapped[str | None] = mapped_column(String(200))
    source_host: Mapped[str] = mapped_column(String(200))
    source_volume: Mapped[str] = mapped_column(String(255))
    dest_host: Mapped[str] = mapped_column(String(200))
    dest_volume: Mapped[str] = mapped_column(String(255))
    driver: Mapped[str] = mapped_column(String(100), default="local")
    driver_opts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    via: Mapped[str] = mapped_column(String(100))
    cutover: Mapped[str] = mapped_column(String(16), default="stop")
    remove_source: Mapped[bool] = mapped_column(Boolean, default=False)
    #: step name → child job id (the coordinator's memory)
    steps: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: [{name, state, started_at, finished_at, bytes, jobs, detail}]
    phases: Mapped[list[Any]] = mapped_column(JSON, default=list)
    downtime_seconds: Mapped[float | None] = mapped_column(Float)
    verify_outcome: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    #: what the steps found and left: backups, stopped containers, checks, safety snapshot
    report: Mapped[dict[str, Any]] = mapped_column(default=dict)
    cancel_requested_by: Mapped[str | None] = mapped_column(String(200))
    rollback_requested_by: Mapped[str | None] = mapped_column(String(200))
    #: the evacuation (``volkeeper evacuate``) this migration is part of
    batch: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (Index("ix_migrations_state", "state"),
                      Index("ix_migrations_created_at", "created_at"),
                      Index("ix_migrations_batch", "batch"))
