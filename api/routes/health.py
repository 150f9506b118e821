"""Liveness and readiness (no authentication, no secrets)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api.deps import State

router = APIRouter(tags=["health"])


@router.get("/health")
def health(state: State) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        with state.db.session() as s:
            s.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as e:  # noqa: BLE001
        checks["database"] = f"error: {type(e).__name__}"
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse({"status": "ok" if ok else "degraded", "mode": state.settings.mode,
                         "checks": checks}, 200 if ok else 503)
