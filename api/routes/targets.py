"""Storage targets. Credentials go in, never come out. Adding and removing is for admins,
within the allowlists of ``common.storage.allowlist``."""

from __future__ import annotations

from fastapi import APIRouter, Response

from api.deps import Admin, DbSession, State, Viewer
from api.schemas import TargetIn, TargetOut
from common.db import Target, catalog

router = APIRouter(prefix="/targets", tags=["targets"])


def target_out(t: Target, usage: tuple[int, int] = (0, 0)) -> TargetOut:
    return TargetOut(name=t.name, url=t.url, options=t.options or {},
                     has_credentials=bool(t.secrets), created_at=t.created_at,
                     backup_count=usage[0], stored_bytes=usage[1])


@router.get("", response_model=list[TargetOut])
def list_targets(session: DbSession, _user: Viewer) -> list[TargetOut]:
    """Targets, with how many backups the catalog knows on each and their stored bytes."""
    usage = catalog.target_usage(session)
    return [target_out(t, usage.get(t.name, (0, 0))) for t in catalog.list_targets(session)]


@router.post("", response_model=TargetOut, status_code=201)
def add_target(body: TargetIn, state: State, user: Admin) -> TargetOut:
    return target_out(state.targets.add_target(
        name=body.name, url=body.url, options=body.options, credentials=body.credentials,
        replace=body.replace, requested_by=user.name))


@router.get("/{name}", response_model=TargetOut)
def get_target(name: str, session: DbSession, _user: Viewer) -> TargetOut:
    return target_out(catalog.get_target(session, name),
                      catalog.target_usage(session).get(name, (0, 0)))


@router.delete("/{name}", status_code=204)
def remove_target(name: str, state: State, user: Admin) -> Response:
    state.targets.remove_target(name=name, requested_by=user.name)
    return Response(status_code=204)
