"""Dependencies as named ``Annotated`` types, so route signatures read like a spec.

``Viewer``, ``Operator`` and ``Admin`` authenticate the request (a bearer token, or the
console's session cookie) and require that role (``common.auth``); a refusal is 401 (no or
an unknown token, with a hint naming where the token is) or 403 (naming the role needed,
and recorded in the audit log)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from common.audit import record
from common.auth import LOCAL, Principal, TokenService, token_file
from common.config import Settings
from common.db import Database
from common.errors import Forbidden, Unauthorized, VolkeeperError
from common.jobs.operations import OperationsService
from common.progress import ProgressBus
from common.sessions import ConsoleSessions

SESSION_COOKIE = "volkeeper_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass
class AppState:
    settings: Settings
    db: Database
    bus: ProgressBus
    service: OperationsService
    tokens: TokenService
    sessions: ConsoleSessions
    #: an in-process app (tests, benchmarks; never on a socket): requests without
    #: credentials act as the local user, who holds VOLKEEPER_HOME's keys anyway
    in_process: bool = False


def _state(request: Request) -> AppState:
    state: AppState = request.app.state.volkeeper
    return state


def _session(state: Annotated[AppState, Depends(_state)]) -> Iterator[Session]:
    with state.db.session() as s:
        yield s


def no_token_hint(settings: Settings) -> str:
    if settings.mode == "embedded":
        return (f"send 'Authorization: Bearer <token>' with the token in {token_file(settings)} "
                "(readable by its owner only; the volkeeper CLI reads it for you), or open "
                "the console login link `volkeeper serve` printed")
    return ("send 'Authorization: Bearer <token>': VOLKEEPER_API_TOKEN or a token an admin "
            "created with `volkeeper tokens create`")


def same_origin(request: Request) -> bool:
    """Whether a cookie-borne unsafe request comes from this site's own pages (its Origin,
    else Referer, names the Host it was sent to): the console's CSRF check."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source or source == "null":
        return False
    parts = urlsplit(source)
    return parts.netloc.lower() == request.headers.get("host", "").lower()


def authenticate(request: Request, state: AppState) -> Principal:
    """Who sent the request. Raises Unauthorized (with a hint) or Forbidden (a cookie
    without a same-origin Origin on an unsafe method)."""
    header = request.headers.get("authorization", "")
    cookie = request.cookies.get(SESSION_COOKIE)
    if not header and not cookie and state.in_process:
        return LOCAL
    hint = no_token_hint(state.settings)
    if header:
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise Unauthorized("the Authorization header is not 'Bearer <token>'", hint)
        principal = state.tokens.check(given.strip())
        if principal is None:
            raise Unauthorized("unknown or revoked API token", hint)
        return principal
    if cookie:
        principal = state.sessions.check(cookie)
        if principal is None:
            raise Unauthorized("the console session ended (it expired, or its token was "
                               "revoked or replaced)", "log in again at /login")
        if request.method not in SAFE_METHODS and not same_origin(request):
            raise Forbidden("a cross-site request with the console's session cookie was "
                            "refused", "send changes from the console itself, or use "
                            "'Authorization: Bearer <token>' from scripts")
        return principal
    raise Unauthorized("this request needs an API token", hint)


def _need(role: str) -> Callable[..., Principal]:
    def dependency(request: Request, state: Annotated[AppState, Depends(_state)]
                   ) -> Principal:
        principal = authenticate(request, state)
        if not principal.allows(role):
            action = f"{request.method} {request.url.path}"
            record(state.db, principal.name, "denied", action, {"needs": role}, "denied")
            principal.require(role, action)
        return principal

    return dependency


def require_role(principal: Principal, role: str, what: str, state: AppState) -> None:
    """Inside a route: ``what`` (e.g. a replace-restore) needs ``role``; refusals are
    audited like the route-level ones."""
    try:
        principal.require(role, what)
    except VolkeeperError:
        record(state.db, principal.name, "denied", what, {"needs": role}, "denied")
        raise


State = Annotated[AppState, Depends(_state)]
# committed before the response is sent: a client that got 201 sees the change at once
DbSession = Annotated[Session, Depends(_session, scope="function")]
Viewer = Annotated[Principal, Depends(_need("viewer"))]
Operator = Annotated[Principal, Depends(_need("operator"))]
Admin = Annotated[Principal, Depends(_need("admin"))]
