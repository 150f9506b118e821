"""Targets (named storage locations) and the backup catalog."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from common.db.models import Backup, Target
from common.errors import Conflict, NotFound


def add_target(
    session: Session,
    name: str,
    url: str,
    options: dict[str, Any],
    secrets: dict[str, Any],
    *,
    replace: bool = False,
) -> Target:
    existing = session.get(Target, name)
    if existing is not None and not replace:
        raise Conflict(f"target {name!r} already exists",
                       "remove it first or choose another name")
    if existing is None:
        existing = Target(name=name)
        session.add(existing)
    existing.url = url
    existing.options = options
    existing.secrets = secrets
    session.flush()
    return existing


def get_target(session: Session, name: str) -> Target:
    target = session.get(Target, name)
    if target is None:
        raise NotFound("target", name, "list targets with `volkeeper targets list`")
    return target


def list_targets(session: Session) -> list[Target]:
    return list(session.scalars(select(Target).order_by(Target.name)))


def remove_target(session: Session, name: str) -> None:
    target = get_target(session, name)
    used = session.scalar(select(Backup.id).where(Backup.target == name).limit(1))
    if used is not None:
        raise Conflict(f"target {name!r} still holds backups known to volkeeper",
                       "delete those backups first")
    session.delete(target)


def ensure_target(session: Session, name: str, url: str) -> Target:
    """Create target ``name`` with ``url`` unless it exists (the embedded default)."""
    target = session.get(Target, name)
    if target is None:
        target = Target(name=name, url=url, options={}, secrets={})
        session.add(target)
        session.flush()
    return target


def add_backup(session: Session, **fields: Any) -> Backup:
    backup = Backup(**fields)
    session.add(backup)
    session.flush()
    return backup


def expired_safety_snapshots(session: Session, host: str, now: datetime) -> list[Backup]:
    return list(session.scalars(select(Backup).where(
        Backup.kind == "safety", Backup.host == host, Backup.expires_at < now)))


def get_backup(session: Session, backup_id: str) -> Backup:
    backup = session.get(Backup, backup_id)
    if backup is None:
        raise NotFound("backup", backup_id, "list backups with `volkeeper backups`")
    return backup


def list_backups(
    session: Session,
    *,
    host: str | None = None,
    volume: str | None = None,
    target: str | None = None,
    limit: int = 200,
    kind: str | None = "backup",
) -> list[Backup]:
    q = select(Backup).order_by(Backup.created_at.desc()).limit(limit)
    if kind:
        q = q.where(Backup.kind == kind)
    if host:
        q = q.where(Backup.host == host)
    if volume:
        q = q.where(Backup.volume == volume)
    if target:
        q = q.where(Backup.target == target)
    return list(session.scalars(q))
