"""The web console: one server-rendered page that reads the REST API (no build step),
behind a login. ``/login#token=…`` (the link ``volkeeper serve`` prints; the fragment never
reaches a server) or a pasted token is traded for an HttpOnly, SameSite=Strict session
cookie — signed and expiring, naming the token without holding it (``common.sessions``);
unsafe requests carried by that cookie must come from the console's own origin
(``api.deps.authenticate``)."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from pydantic import BaseModel, Field

from api.deps import SESSION_COOKIE, State, authenticate, same_origin
from common.audit import record
from common.errors import Forbidden, Unauthorized, VolkeeperError
from common.sessions import SESSION_SECONDS

router = APIRouter(include_in_schema=False)


def _page(name: str) -> str:
    return resources.files("api.console").joinpath(name).read_text("utf-8")


@router.get("/", response_class=HTMLResponse)
def index(request: Request, state: State) -> Response:
    try:
        authenticate(request, state)
    except VolkeeperError:
        return RedirectResponse("/login", status_code=303)
    return HTMLResponse(_page("index.html"))


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
