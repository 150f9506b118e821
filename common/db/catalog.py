"""Targets (named storage locations) and the backup catalog."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from common.db.models import Backup, Job, JobState, Policy, Target
from common.db.paging import page_limit, page_offset
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
        try:  # two requests adding one name at once: the second is refused, not a 500
            with session.begin_nested():
                existing = Target(name=name, url=url, options=options, secrets=secrets)
                session.add(existing)
                session.flush()
        except sa_exc.IntegrityError:
            raise Conflict(f"target {name!r} already exists (added by another request "
                           "just now)", "remove it first or choose another name") from None
        return existing
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
    # a job writing to it would catalogue a backup on a target that is gone
    busy = [j for j in session.scalars(select(Job).where(
                Job.state.in_((JobState.queued, JobState.running))).order_by(Job.created_at))
            if name in (j.target, (j.params or {}).get("destination"),
                        (j.params or {}).get("via"))]
    if busy:
        raise Conflict(f"target {name!r} is in use by job {busy[0].id} ({busy[0].kind}, "
                       f"{busy[0].state})" + (f" and {len(busy) - 1} more" if busy[1:]
                                                else ""),
                       "wait for the job to finish (or cancel it), then remove the target")
    used = list(session.execute(select(Backup.id, Backup.kind).where(Backup.target == name)
                                .order_by(Backup.created_at).limit(6)))
    if used:
        # named: a replace's safety snapshot is not in `volkeeper backups`
        held = ", ".join(f"{bid} ({kind})" if kind != "backup" else str(bid)
                         for bid, kind in used[:5]) + (", …" if len(used) > 5 else "")
        raise Conflict(f"target {name!r} still holds backups known to volkeeper: {held}",
                       "forget them first (volkeeper forget ID); a safety snapshot also "
                       "expires on its own (VOLKEEPER_SAFETY_SNAPSHOT_HOURS)")
    # a policy naming it would back up or copy to nowhere (its runs only logged a warning)
    # and could no longer be changed, not even disabled (every change checks its targets)
    naming = [n for n, targets in session.execute(select(Policy.name, Policy.targets)
                                                  .order_by(Policy.name))
              if name in (targets or [])]
    if naming:
        raise Conflict(f"target {name!r} is named by "
                       f"{'policy' if len(naming) == 1 else 'policies'} "
                       f"{', '.join(map(repr, naming))}",
                       "take it out of those policies first (volkeeper policy update NAME "
                       "--target OTHER / --copy-to '', or volkeeper policy delete NAME)")
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
    """Catalog a backup: the columns of ``Backup`` (``key``, ``manifest_key``,
    ``checksum``, ``snapshot_id`` … with the meanings documented there)."""
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
    tag: str | None = None,
    pinned: bool | None = None,
    offset: int = 0,
    group: str | None = None,
) -> list[Backup]:
    """Newest first; ``offset`` rows skipped (the pages after the first)."""
    limit = page_limit(limit)
    offset = page_offset(offset)
    q = select(Backup).order_by(Backup.created_at.desc())
    if group:
        q = q.where(Backup.group_id == group)
    if kind:
        q = q.where(Backup.kind == kind)
    if host:
        q = q.where(Backup.host == host)
    if volume:
        q = q.where(Backup.volume == volume)
    if target:
        q = q.where(Backup.target == target)
    if pinned is not None:
        q = q.where(Backup.pinned == pinned)
    if tag is None:
        return list(session.scalars(q.offset(offset).limit(limit)))
    # tags are a JSON list: filtered here, portable across SQLite and PostgreSQL
    out: list[Backup] = []
    for b in session.scalars(q.execution_options(yield_per=500)):
        if tag in (b.tags or []):
            if offset:
                offset -= 1
                continue
            out.append(b)
            if len(out) >= limit:
                break
    return out


def label_backup(session: Session, backup_id: str, *, add: Sequence[str] = (),
                 remove: Sequence[str] = (), pinned: bool | None = None) -> Backup:
    """Add and remove tags and set the pin of a catalog row. The row is locked before it
    is read (an UPDATE first: PostgreSQL's row lock, SQLite's write lock), so two requests
    at once each add their tags; read first, the later write dropped the other's."""
    session.execute(update(Backup).where(Backup.id == backup_id)
                    .values(pinned=Backup.pinned))
    backup = session.get(Backup, backup_id, populate_existing=True) or get_backup(
        session, backup_id)
    backup.tags = sorted((set(backup.tags or []) | set(add)) - set(remove))
    if pinned is not None:
        backup.pinned = pinned
    session.flush()
    return backup


def record_verification(session: Session, backup_id: str, *, status: str, job_id: str,
                        at: datetime) -> None:
    """Keep the outcome of a verification on the backup (``ok``, ``ok (scope)``,
    ``damaged``) with the job that found it."""
    backup = get_backup(session, backup_id)
    backup.verified_at = at
    backup.verify_status = status
    backup.verify_job_id = job_id


def delete_backup(session: Session, backup_id: str) -> None:
    """Remove a catalog row (after its stored objects are gone)."""
    session.delete(get_backup(session, backup_id))


def find_stored_backup(session: Session, target: str, *, checksum: str = "",
                       snapshot_id: str = "", key: str = "") -> Backup | None:
    """The catalog row of ``target`` naming this repository snapshot, else (no
    ``snapshot_id``) this archive sha256 — stored under ``key`` when given: two backups of
    a volume that did not change in between are archives with the same sha256 but keys
    (times, jobs) of their own, and a copy keeps its source's key; None when there is none
    (or neither is given)."""
    if snapshot_id:
        where = Backup.snapshot_id == snapshot_id
    elif checksum:
        where = Backup.checksum == checksum
        if key:
            where = where & (Backup.key == key)
    else:
        return None
    return session.scalar(select(Backup).where(Backup.target == target, where).limit(1))


def snapshot_backup_ids(session: Session, target: str) -> dict[str, str]:
    """Snapshot id → backup id of the repository backups ``target`` holds."""
    q = select(Backup.snapshot_id, Backup.id).where(Backup.target == target,
                                                   Backup.snapshot_id != "")
    return {str(sid): str(bid) for sid, bid in session.execute(q)}


def holds_repository(session: Session, target: str) -> bool:
    """Whether the catalog lists a repository backup stored on ``target``."""
    q = select(Backup.id).where(Backup.target == target, Backup.snapshot_id != "").limit(1)
    return session.execute(q).first() is not None


def backed_up_volumes(session: Session) -> list[tuple[str, str, int, datetime]]:
    """(host, volume, backups, newest) of every volume with a regular backup, in one
    grouped query (volumes removed from their host since included)."""
    q = (select(Backup.host, Backup.volume, func.count(Backup.id), func.max(Backup.created_at))
         .where(Backup.kind == "backup").group_by(Backup.host, Backup.volume)
         .order_by(Backup.host, Backup.volume))
    return [(h, v, int(n), t) for h, v, n, t in session.execute(q)]


def target_usage(session: Session) -> dict[str, tuple[int, int]]:
    """Per target: how many backups the catalog knows and their stored bytes."""
    q = select(Backup.target, func.count(Backup.id), func.coalesce(func.sum(
        Backup.stored_bytes), 0)).group_by(Backup.target)
    return {t: (int(n), int(b)) for t, n, b in session.execute(q)}
