"""Dependencies as named ``Annotated`` types, so route signatures read like a spec."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from common.config import Settings
from common.db import Database
from common.errors import Unauthorized
from common.jobs.operations import OperationsService
from common.progress import ProgressBus


@dataclass
class AppState:
    settings: Settings
    db: Database
    bus: ProgressBus
    service: OperationsService


def _state(request: Request) -> AppState:
    state: AppState = request.app.state.volkeeper
    return state


def _session(state: Annotated[AppState, Depends(_state)]) -> Iterator[Session]:
    with state.db.session() as s:
        yield s


def _user(request: Request, state: Annotated[AppState, Depends(_state)]) -> str:
    token = state.settings.api_token
    if token is None:
        return "local"
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), token.get_secret_value().encode()):
        raise Unauthorized("missing or wrong API token",
                           "send 'Authorization: Bearer <VOLKEEPER_API_TOKEN>'")
    return "token"


State = Annotated[AppState, Depends(_state)]
DbSession = Annotated[Session, Depends(_session)]
CurrentUser = Annotated[str, Depends(_user)]
