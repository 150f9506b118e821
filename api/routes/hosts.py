"""Hosts and their volume inventory."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import Admin, DbSession, Operator, State, Viewer
from api.schemas import HostOut, VolumeOut
from common.jobs import views
from common.jobs.host_removal import HostRemovedOut

router = APIRouter(tags=["hosts"])


@router.get("/hosts", response_model=list[HostOut])
def list_hosts(session: DbSession, state: State, _user: Viewer) -> list[HostOut]:
    return views.list_hosts(session, state.settings)


@router.post("/hosts/{host}/refresh", status_code=202)
def refresh_host(host: str, state: State, user: Operator) -> dict[str, str]:
    """Ask the host's worker to take a fresh volume inventory now."""
    state.service.refresh_host(host=host, requested_by=user.name)
    return {"status": "queued", "host": host}


@router.delete("/hosts/{host}", response_model=HostRemovedOut)
def remove_host(host: str, state: State, user: Admin,
                update_policies: bool = False) -> HostRemovedOut:
    """Forget a host whose worker is gone (admin): its row and volume inventory go, its
    backups stay in the catalog. 409 while it is online, has a queued or running job or
    is part of an unfinished migration, or while policies name it unless
    ``update_policies=true``: then it is taken out of their hosts (a policy naming only
    it is disabled), each change listed in ``policies_changed``. A host that comes back
    registers again."""
    return state.service.remove_host(host=host, update_policies=update_policies,
                                     requested_by=user.name)


@router.get("/volumes", response_model=list[VolumeOut])
def list_volumes(session: DbSession, _user: Viewer, host: str | None = None,
                 overdue: bool | None = None) -> list[VolumeOut]:
    """Every volume of the inventory (of ``host``) with its newest backup, policy, RPO
    and overdue flag; ``overdue=true`` only the overdue ones."""
    return views.list_volumes(session, host, overdue)


@router.get("/hosts/{host}/volumes/{name}", response_model=VolumeOut)
def get_volume(host: str, name: str, session: DbSession, _user: Viewer) -> VolumeOut:
    return views.get_volume(session, host, name)
