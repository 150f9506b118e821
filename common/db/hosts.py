"""Hosts (Docker engines with a worker) and their volume inventory."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, object_session

from common.db.clock import db_now
from common.db.clock import now as db_time
from common.db.models import Host, Volume, utcnow
from common.errors import NotFound


def register_host(
    session: Session,
    name: str,
    *,
    docker_version: str | None,
    worker_version: str | None,
    info: dict[str, Any] | None = None,
    worker: str | None = None,
) -> Host:
    """Record the host as online (database time). ``worker`` names the registering
    process (``host@machine:pid``); ``info["worker_since"]`` is when that process first
    registered — a later registration by another process says the earlier one is gone
    (``common.jobs.owners``)."""
    now = db_time(session)
    host = session.get(Host, name)
    if host is None:
        host = Host(name=name, registered_at=now)
        session.add(host)
    old = dict(host.info or {})
    host.docker_version = docker_version
    host.worker_version = worker_version
    host.info = dict(info or {})
    if worker is not None:
        same = old.get("worker") == worker
        host.info |= {"worker": worker,
                      "worker_since": old["worker_since"] if same and "worker_since" in old
                      else now.isoformat()}
    host.last_seen_at = now
    session.flush()
    return host


def touch_host(session: Session, name: str) -> None:
    """Keep the host online (``last_seen_at`` = database time)."""
    session.execute(update(Host).where(Host.name == name).values(last_seen_at=db_now())
                    .execution_options(synchronize_session=False))


def get_host(session: Session, name: str) -> Host:
    host = session.get(Host, name)
    if host is None:
        raise NotFound(
            "host", name, "list known hosts with `volkeeper hosts`; a host appears once its "
            f"worker runs (`volkeeper worker --host {name}`)")
    return host


def list_hosts(session: Session) -> list[Host]:
    return list(session.scalars(select(Host).order_by(Host.name)))


def is_online(host: Host, offline_after: timedelta, now: datetime | None = None) -> bool:
    """Whether the host was seen within ``offline_after`` — judged by the database's
    clock (read through the host's session) unless ``now`` is given."""
    if now is None:
        session = object_session(host)
        now = db_time(session) if session is not None else utcnow()
    return now - host.last_seen_at < offline_after


def _with_defaults(given: dict[str, Any]) -> dict[str, Any]:
    """An inventory row (``common.jobs.host_rows.volume_row``): what the optional columns
    hold when ``given`` leaves them out (fresh dicts: rows never share one)."""
    return {"mountpoint": None, "size_bytes": None, "labels": {}, "containers": {},
            "created_at": None, **given}


def replace_inventory(session: Session, host: str, volumes: list[dict[str, Any]]) -> None:
    """Replace the host's volume inventory with ``volumes`` (dicts of Volume columns; a
    column left out gets its default), all seen now. The stored rows are updated in place,
    writing only what changed (a host's inventory mostly does not: each one-shot command
    takes one)."""
    now = db_time(session)
    stored = {r.name: r for r in session.scalars(select(Volume).where(Volume.host == host))}
    for v in map(_with_defaults, volumes):
        row = stored.pop(v["name"], None)
        if row is None:
            session.add(Volume(host=host, seen_at=now, **v))
            continue
        for column, value in v.items():
            if getattr(row, column) != value:
                setattr(row, column, value)
    for gone in stored.values():
        session.delete(gone)
    session.execute(update(Volume).where(Volume.host == host).values(seen_at=now))
    h = session.get(Host, host)
    if h is not None:
        h.inventory_at = now
        h.last_seen_at = now


def list_volumes(session: Session, host: str | None = None) -> list[Volume]:
    q = select(Volume).order_by(Volume.host, Volume.name)
    if host:
        q = q.where(Volume.host == host)
    return list(session.scalars(q))


def get_volume(session: Session, host: str, name: str) -> Volume:
    vol = session.get(Volume, (host, name))
    if vol is None:
        raise NotFound(
            "volume", name, f"no volume of that name on host {host!r} in the last inventory; "
            "list volumes with `volkeeper volumes`")
    return vol
