"""The web console: a static shell (``index.html``), one stylesheet and a few small ES
modules served from this package under ``/console/``; the modules read and change
everything through the REST API (``/api/v1``) with the session cookie. No build step, no
CDN, nothing fetched from elsewhere at run time: the files work as installed by pip.

Why ES modules rather than server-rendered templates: the pages are views of the same JSON
the API serves (and the CLI prints), the live parts (progress bars over the job event
stream, the restore wizard's steps) are client-side state anyway, and the API's role
checks stay the only ones — a module never decides what is allowed, it only hides what the
role (``GET /api/v1/whoami``) cannot do. Modules: ``app.js`` (shell, hash router, role),
``api.js`` (fetch/SSE), ``ui.js`` (elements, formats, tables, pages of rows, bars,
dialogs, the ``volkeeper:<page>`` performance marks), ``live.js`` (what pages share about
jobs: errors with hints, Cancel, live bars), ``overview.js``, ``volumes.js`` (list and one
volume with Back up now), ``backups.js``, ``jobs.js`` (list and one job), ``policies.js``
and ``policy-preview.js`` (list, form with the cron helper, retention preview),
``keys.js`` (API tokens, repository keys), ``pages.js`` (targets, hosts and their removal, audit),
``wizard.js`` and ``tree.js`` (the restore wizard and its browsable tree of a backup),
``evacuations.js`` (evacuations of a host: list, one with its migrations, the start form).

Login: ``/login#token=…`` (the link ``volkeeper serve`` prints; the fragment never
reaches a server) or a pasted token is traded for an HttpOnly, SameSite=Strict session
cookie — signed and expiring, naming the token without holding it (``common.sessions``);
unsafe requests carried by that cookie must come from the console's own origin
(``api.deps.authenticate``)."""

from __future__ import annotations

import functools
import hashlib
import os
import re
from importlib import resources
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from pydantic import BaseModel, Field

from api.deps import SESSION_COOKIE, State, authenticate, same_origin
from common.audit import record
from common.errors import Forbidden, Unauthorized, VolkeeperError
from common.sessions import SESSION_SECONDS

router = APIRouter(include_in_schema=False)
ASSET = re.compile(r"^[a-z][a-z0-9-]*\.(js|css)$")
MEDIA_TYPES = {"js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8"}
# the shell runs only this site's own scripts and styles and talks only to this site
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")


def _page(name: str) -> str:
    return resources.files("api.console").joinpath(name).read_text("utf-8")


@router.get("/", response_class=HTMLResponse)
def index(request: Request, state: State) -> Response:
    try:
        authenticate(request, state)
    except VolkeeperError:
        return RedirectResponse("/login", status_code=303)
    return HTMLResponse(_page("index.html"), headers={
        "Content-Security-Policy": CSP, "Cache-Control": "no-cache",
        "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"})


@functools.lru_cache(maxsize=64)
def _asset(name: str, _mtime: float) -> tuple[bytes, str]:
    """A console file's bytes and ETag (read again when the file changes)."""
    data = resources.files("api.console").joinpath(name).read_bytes()
    return data, '"' + hashlib.sha256(data).hexdigest()[:32] + '"'


@router.get("/console/{name}")
def asset(name: str, request: Request) -> Response:
    """The console's modules and stylesheet (no data in them: served without a login).
    Revalidated on every load (``no-cache``) with an ETag: an unchanged file is a 304."""
    match = ASSET.match(name)
    file = resources.files("api.console").joinpath(name)
    if match is None or not file.is_file():
        return JSONResponse({"error": {"code": "not_found",
                                       "message": f"no console file {name[:100]!r}"}}, 404)
    data, etag = _asset(name, _mtime(file))
    headers = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff", "ETag": etag}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(data, media_type=MEDIA_TYPES[match.group(1)], headers=headers)


def _mtime(file: Any) -> float:
    try:
        return os.stat(str(file)).st_mtime
    except (OSError, TypeError):
        return 0.0


@router.get("/login", response_class=HTMLResponse)
def login_page() -> str:
    return _page("login.html")


class LoginIn(BaseModel):
    token: str = Field(min_length=1, max_length=500)


@router.post("/login")
def login(body: LoginIn, request: Request, state: State) -> Response:
    """Trade a token for the session cookie (same-origin requests only)."""
    if not same_origin(request):
        raise Forbidden("a cross-site login was refused", "log in from the console's own page")
    issued = state.sessions.issue(body.token.strip())
    if issued is None:
        raise Unauthorized("unknown or revoked API token",
                           "use the login link `volkeeper serve` printed, or a token an admin "
                           "created (volkeeper tokens create)")
    principal, cookie = issued
    record(state.db, principal.name, "console.login", "", {}, "ok")
    resp = JSONResponse({"name": principal.name, "role": principal.role})
    resp.set_cookie(SESSION_COOKIE, cookie, max_age=SESSION_SECONDS,
                    httponly=True, samesite="strict", path="/",
                    secure=request.url.scheme == "https")
    return resp


@router.post("/logout")
def logout() -> Response:
    resp = RedirectResponse("/login", status_code=303)
    resp.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return resp
