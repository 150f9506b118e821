"""Liveness and readiness. Without a token only ``status``; with one (any role) also the
mode and each check. Never a secret."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api.deps import State, authenticate
from common.errors import VolkeeperError

router = APIRouter(tags=["health"])


@router.get("/health")
def health(request: Request, state: State) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        with state.db.session() as s:
            s.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as e:  # noqa: BLE001
        checks["database"] = f"error: {type(e).__name__}"
    ok = all(v == "ok" for v in checks.values())
    body: dict[str, object] = {"status": "ok" if ok else "degraded"}
    try:
        authenticate(request, state)
    except VolkeeperError:
        pass
    else:
        body |= {"mode": state.settings.mode, "checks": checks}
    return JSONResponse(body, 200 if ok else 503)
