"""Hosts and their volume inventory."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter
from sqlalchemy import func, select

from api.deps import DbSession, Operator, State, Viewer
from api.schemas import ContainerOut, HostOut, VolumeOut
from common.db import Backup, hosts
from common.db.models import Volume
from common.jobs.names import TASK_INVENTORY

router = APIRouter(tags=["hosts"])


@router.get("/hosts", response_model=list[HostOut])
def list_hosts(session: DbSession, state: State, _user: Viewer) -> list[HostOut]:
    after = timedelta(seconds=state.settings.host_offline_after_seconds)
    counts: dict[str, int] = {
        h: n for h, n in session.execute(select(Volume.host, func.count()).group_by(Volume.host))}
    return [HostOut(name=h.name, online=hosts.is_online(h, after), docker_version=h.docker_version,
                    worker_version=h.worker_version, last_seen_at=h.last_seen_at,
                    inventory_at=h.inventory_at, volume_count=counts.get(h.name, 0))
            for h in hosts.list_hosts(session)]


@router.post("/hosts/{host}/refresh", status_code=202)
def refresh_host(host: str, session: DbSession, state: State, _user: Operator) -> dict[str, str]:
    """Ask the host's worker to take a fresh volume inventory now."""
    hosts.get_host(session, host)
    state.service.dispatcher.send(TASK_INVENTORY, host, {})
    return {"status": "queued", "host": host}


@router.get("/volumes", response_model=list[VolumeOut])
def list_volumes(session: DbSession, _user: Viewer, host: str | None = None
                 ) -> list[VolumeOut]:
    if host:
        hosts.get_host(session, host)
    last = {(h, v): t for h, v, t in session.execute(
        select(Backup.host, Backup.volume, func.max(Backup.created_at))
        .group_by(Backup.host, Backup.volume))}
    return [volume_out(v, last.get((v.host, v.name))) for v in hosts.list_volumes(session, host)]


@router.get("/hosts/{host}/volumes/{name}", response_model=VolumeOut)
def get_volume(host: str, name: str, session: DbSession, _user: Viewer) -> VolumeOut:
    hosts.get_host(session, host)
    return volume_out(hosts.get_volume(session, host, name), None)


def volume_out(v: Volume, last_backup_at: object) -> VolumeOut:
    items = (v.containers or {}).get("items", [])
    return VolumeOut(host=v.host, name=v.name, driver=v.driver, mountpoint=v.mountpoint,
                     size_bytes=v.size_bytes, labels=v.labels or {},
                     containers=[ContainerOut(**c) for c in items],
                     last_backup_at=last_backup_at,  # type: ignore[arg-type]
                     seen_at=v.seen_at)
