"""Hosts (Docker engines with a worker) and their volume inventory."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from common.db.models import Host, Volume, utcnow
from common.errors import NotFound


def register_host(
    session: Session,
    name: str,
    *,
    docker_version: str | None,
    worker_version: str | None,
    info: dict[str, Any] | None = None,
) -> Host:
    host = session.get(Host, name)
    if host is None:
        host = Host(name=name)
        session.add(host)
    host.docker_version = docker_version
    host.worker_version = worker_version
    host.info = info or {}
    host.last_seen_at = utcnow()
    session.flush()
    return host


def touch_host(session: Session, name: str) -> None:
    host = session.get(Host, name)
    if host is not None:
        host.last_seen_at = utcnow()


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
    return (now or utcnow()) - host.last_seen_at < offline_after


def replace_inventory(session: Session, host: str, volumes: list[dict[str, Any]]) -> None:
    """Replace the host's volume inventory with ``volumes`` (dicts of Volume columns)."""
    session.execute(delete(Volume).where(Volume.host == host))
    now = utcnow()
    for v in volumes:
        session.add(Volume(host=host, seen_at=now, **v))
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
