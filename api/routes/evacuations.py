"""Evacuations: every volume of a host migrated to another host, a few at a time, with
one report for the whole move."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse, Response
from pydantic import Field

from api.deps import Operator, State, Viewer
from common.jobs import evacuations, migration_flow
from common.jobs.evacuations import EvacuationService
from common.jobs.inputs import Input
from common.jobs.migrations import MigrationService

router = APIRouter(prefix="/evacuations", tags=["migrations"])


class EvacuationIn(Input):
    host: str = Field(min_length=1, max_length=200, description="the host to empty")
    to_host: str = Field(min_length=1, max_length=200)
    concurrency: int = Field(default=2, ge=1, le=32,
                             description="how many volumes move at once")
    via: str | None = Field(default=None, max_length=100)
    cutover: Literal["stop", "none"] = "stop"
    dry_run: bool = False
    recreate_containers: bool = Field(
        default=False, description="recreate the containers stopped for each volume's "
        "cut-over on to_host (their images must be there; one that also mounts another "
        "volume or a host path is left stopped on host)")


def _service(state: State) -> EvacuationService:
    return EvacuationService(MigrationService(state.service, wake=migration_flow.wake),
                             wake=migration_flow.wake)


@router.post("", status_code=202)
def start_evacuation(body: EvacuationIn, state: State, user: Operator,
                     response: Response) -> dict[str, Any]:
    """Validate a migration of every volume of ``host`` and queue them (202; or, with
    ``dry_run``, only return each one's checks: 200)."""
    if body.dry_run:
        response.status_code = 200
    return _service(state).evacuate(**body.model_dump(), requested_by=user.name)


@router.get("")
def list_evacuations(state: State, _user: Viewer, limit: int = 50) -> list[dict[str, Any]]:
    """Evacuations, newest first: each one's hosts, state, counts per state, bytes,
    longest downtime and number of volumes (GET /evacuations/{id} has its migrations)."""
    return _service(state).list(limit=limit)


@router.get("/{evacuation_id}", response_model=None)
def get_evacuation(evacuation_id: str, state: State, _user: Viewer,
                   format: Literal["json", "md"] = "json") -> Response | dict[str, Any]:
    """The evacuation's report: each volume's migration and the totals (``?format=md``:
    Markdown)."""
    view = _service(state).get(evacuation_id)
    if format == "md":
        return PlainTextResponse(evacuations.markdown(view), media_type="text/markdown")
    return view
