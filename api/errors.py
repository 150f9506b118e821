"""JSON error responses: ``{"error": {"code", "message", "hint", "fields"?}}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from common.errors import VolkeeperError
from common.jobs.inputs import invalid_request

log = logging.getLogger(__name__)


class FieldProblem(BaseModel):
    field: str
    problem: str


class ErrorDetail(BaseModel):
    code: str = Field(description="not_found, conflict, invalid_input, forbidden …")
    message: str
    hint: str | None = Field(default=None, description="what to do about it")
    fields: list[FieldProblem] | None = Field(
        default=None, description="422 for a request that fails its checks: each bad field")


class ErrorBody(BaseModel):
    """Every error answer: ``{"error": {"code", "message", "hint", "fields"}}``."""

    error: ErrorDetail


#: the error answers every route documents (FastAPI's own 422 schema, ``{"detail": …}``,
#: is not what this API sends)
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorBody, "description": "invalid request: error.fields names each field"},
    "4XX": {"model": ErrorBody, "description": "refused: error.message and error.hint say "
            "why and what to do"},
}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(VolkeeperError)
    async def _volkeeper(_req: Request, exc: VolkeeperError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        error: dict[str, Any] = exc.to_dict()
        fields = getattr(exc, "fields", None)  # a body a service checked (InvalidRequest)
        if fields:
            error["fields"] = fields
        return JSONResponse({"error": error}, exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_req: Request, exc: RequestValidationError) -> JSONResponse:
        err = invalid_request(list(exc.errors()))
        return JSONResponse({"error": err.to_dict() | {"fields": err.fields}}, 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(req: Request, exc: StarletteHTTPException) -> JSONResponse:
        # no route: say so, and where the routes are (was "http_error" without a hint)
        headers = dict(exc.headers or {})
        error = {"code": "http_error", "message": str(exc.detail),
                 "hint": "see the API's paths and methods at /api/docs"}
        if exc.status_code == 404:
            error |= {"code": "not_found", "message": f"no such path: {req.url.path[:200]}"}
        elif exc.status_code == 405:
            allowed = ", ".join(_methods(req)) or headers.get("allow", "")
            headers["allow"] = allowed
            error |= {"code": "method_not_allowed",
                      "message": f"{req.method} is not allowed on {req.url.path[:200]}",
                      "hint": f"allowed: {allowed}" if allowed else error["hint"]}
        return JSONResponse({"error": error}, exc.status_code, headers=headers or None)

    @app.exception_handler(OperationalError)
    async def _database(_req: Request, exc: OperationalError) -> JSONResponse:
        # the database is down or unreachable (or refused the connection): the caller can
        # only wait; not a bug of ours. Its text (addresses, SQL) stays in the log.
        log.warning("database unavailable: %s",
                    (str(exc.orig or exc).strip().splitlines() or [""])[0])
        return JSONResponse({"error": {
            "code": "unavailable", "message": "the database is unavailable",
            "hint": "retry shortly; if it persists, check that the database server runs "
                    "and VOLKEEPER_DATABASE_URL (GET /api/v1/health shows it)"}}, 503,
            headers={"Retry-After": "5"})

    @app.exception_handler(Exception)
    async def _internal(_req: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return JSONResponse({"error": {"code": "internal_error",
                                       "message": f"internal error ({type(exc).__name__})",
                                       "hint": "see the server log"}}, 500)


def _methods(req: Request) -> list[str]:
    """The methods the API documents at this path (Starlette's Allow header names the
    first matching route's only: ``POST`` for ``/backups``, which GET lists too)."""
    given = req.url.path.split("/")
    found: set[str] = set()
    for template, ops in req.app.openapi().get("paths", {}).items():
        parts = template.split("/")
        if len(parts) == len(given) and all(
                p == g or (p.startswith("{") and g) for p, g in zip(parts, given, strict=True)):
            found.update(m.upper() for m in ops)
    return sorted(found)
