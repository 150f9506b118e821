"""Storage targets. Credentials go in, never come out."""

from __future__ import annotations

from fastapi import APIRouter, Response

from api.deps import Admin, DbSession, State, Viewer
from api.schemas import TargetIn, TargetOut
from common.jobs import targets, views

router = APIRouter(prefix="/targets", tags=["targets"])


@router.get("", response_model=list[TargetOut])
def list_targets(session: DbSession, _user: Viewer) -> list[TargetOut]:
    """Targets, with how many backups the catalog knows on each and their stored bytes."""
    return views.list_targets(session)


@router.post("", response_model=TargetOut, status_code=201)
def add_target(body: TargetIn, session: DbSession, state: State, user: Admin) -> TargetOut:
    """Register a target (admin; within the allowlists of ``common.storage.allowlist``)."""
    return targets.add_target(session, state.settings, body, actor=user.name)


@router.get("/{name}", response_model=TargetOut)
def get_target(name: str, session: DbSession, _user: Viewer) -> TargetOut:
    return views.get_target(session, name)


@router.delete("/{name}", status_code=204)
def remove_target(name: str, session: DbSession, user: Admin) -> Response:
    targets.remove_target(session, name, actor=user.name)
    return Response(status_code=204)
