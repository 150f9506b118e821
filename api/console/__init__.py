"""The web console: one server-rendered page that reads the REST API (no build step)."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def index() -> str:
    return resources.files("api.console").joinpath("index.html").read_text("utf-8")
