"""Migrations: move a volume to another host, name or driver — validated (or only
checked: ``dry_run``), pre-copied while it runs, cut over, verified, reversible."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse, Response

from api.deps import Admin, Operator, State, Viewer, require_role
from common.jobs import migration_flow, migration_views
from common.jobs.migration_inputs import MigrationIn
from common.jobs.migrations import MigrationService

router = APIRouter(prefix="/migrations", tags=["migrations"])


def _service(state: State) -> MigrationService:
    return MigrationService(state.service, wake=migration_flow.wake)


@router.post("", status_code=202)
def start_migration(body: MigrationIn, state: State, user: Operator,
                    response: Response) -> dict[str, Any]:
    """Validate and start a migration (202 with the migration); with ``dry_run`` only the
    checks (200, ``{dry_run, ok, checks, plan}``). ``remove_source`` needs the admin
    role. A failed check refuses the migration (422 naming each)."""
    if body.remove_source:
        require_role(user, "admin", "a migration that removes its source", state)
    if body.dry_run:
        response.status_code = 200
    return _service(state).submit(request=body.model_dump(), requested_by=user.name)


@router.get("")
def list_migrations(state: State, _user: Viewer, limit: int = 50,
                    only: Annotated[str | None, Query(alias="state")] = None
                    ) -> list[dict[str, Any]]:
    """Migrations, newest first (``?state=running`` only those in that state)."""
    return _service(state).list(limit=limit, state=only)


@router.get("/{migration_id}")
def get_migration(migration_id: str, state: State, _user: Viewer) -> dict[str, Any]:
    """One migration: its phases (with their jobs, times and bytes), downtime, verify
    outcome, state and reason."""
    return _service(state).get(migration_id)


@router.get("/{migration_id}/report", response_model=None)
def migration_report(migration_id: str, state: State, _user: Viewer,
                     format: Literal["json", "md"] = "json") -> Response | dict[str, Any]:
    """The migration's report: JSON, or a readable Markdown page (``?format=md``)."""
    view = _service(state).get(migration_id)
    if format == "md":
        return PlainTextResponse(migration_views.markdown(view), media_type="text/markdown")
    return view


@router.post("/{migration_id}/cancel", status_code=202)
def cancel_migration(migration_id: str, state: State, user: Operator) -> dict[str, Any]:
    """Cancel a running migration: its current step stops and it rolls back."""
    return _service(state).cancel(migration_id=migration_id, requested_by=user.name)


@router.post("/{migration_id}/rollback", status_code=202)
def rollback_migration(migration_id: str, state: State, user: Admin) -> dict[str, Any]:
    """Undo a succeeded migration: the destination removed, the source restored if it was
    removed, the containers stopped for the cut-over started again."""
    return _service(state).rollback(migration_id=migration_id, requested_by=user.name)
