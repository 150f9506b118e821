"""Liveness and readiness (``common.health``). Without a token only ``status``; with one
(any role) also the mode, each check (database, Redis, scheduler) and each host's worker.
503 when the database or Redis is down; a worker that is down only degrades the status
(200). Never a secret."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.deps import State, authenticate
from common import health as health_check
from common.errors import VolkeeperError

router = APIRouter(tags=["health"])


@router.get("/health")
def health(request: Request, state: State) -> JSONResponse:
    report = health_check.check(state.db, state.settings)
    body: dict[str, object] = {"status": report["status"]}
    try:
        authenticate(request, state)
    except VolkeeperError:
        pass
    else:
        body |= {"mode": state.settings.mode, "checks": report["checks"],
                 "workers": report["workers"]}
    return JSONResponse(body, 503 if report["status"] == "down" else 200)
