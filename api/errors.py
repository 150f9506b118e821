"""JSON error responses: ``{"error": {"code", "message", "hint", "fields"?}}``."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from common.errors import VolkeeperError

log = logging.getLogger(__name__)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(VolkeeperError)
    async def _volkeeper(_req: Request, exc: VolkeeperError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        return JSONResponse({"error": exc.to_dict()}, exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_req: Request, exc: RequestValidationError) -> JSONResponse:
        fields = []
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
            fields.append({"field": ".".join(loc) or "body", "problem": err.get("msg", "")})
        names = ", ".join(f["field"] for f in fields)
        return JSONResponse({"error": {
            "code": "invalid_input",
            "message": f"invalid request: {names}",
            "hint": "; ".join(f"{f['field']}: {f['problem']}" for f in fields),
            "fields": fields}}, 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_req: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": {"code": "http_error", "message": str(exc.detail)}},
                            exc.status_code)

    @app.exception_handler(Exception)
    async def _internal(_req: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return JSONResponse({"error": {"code": "internal_error",
                                       "message": f"internal error ({type(exc).__name__})",
                                       "hint": "see the server log"}}, 500)
