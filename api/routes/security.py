"""Named API tokens and the audit log (admin only). A token's secret is returned once, by
the request that creates it; afterwards only its SHA-256 is kept."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.deps import Admin, State, Viewer
from api.schemas import Input
from common.audit import list_entries

router = APIRouter(tags=["security"])
Role = Literal["viewer", "operator", "admin"]


class TokenIn(Input):
    name: str = Field(min_length=1, max_length=100, examples=["ci-backups"])
    role: Role = Field(description="viewer: read only; operator: also backups, new/empty "
                       "restores, verify, drills, tags, copies; admin: everything")


class TokenOut(BaseModel):
    name: str
    role: str
    created_at: datetime
    created_by: str | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(TokenOut):
    secret: str = Field(description="the token; shown this once, never stored")


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    object: str
    details: dict[str, Any]
    outcome: str


class WhoAmI(BaseModel):
    name: str
    role: str


@router.get("/whoami", response_model=WhoAmI)
def whoami(user: Viewer) -> WhoAmI:
    """The token's name and role."""
    return WhoAmI(name=user.name, role=user.role)


@router.get("/tokens", response_model=list[TokenOut])
def list_tokens(state: State, _user: Admin) -> list[TokenOut]:
    return [TokenOut(**t) for t in state.tokens.list()]


@router.post("/tokens", response_model=TokenCreated, status_code=201)
def create_token(body: TokenIn, state: State, user: Admin) -> TokenCreated:
    """A new named token with a role. Keep the ``secret``: it is not shown again."""
    view, secret = state.tokens.create(body.name, body.role, actor=user.name)
    return TokenCreated(**view, secret=secret)


@router.delete("/tokens/{name}", response_model=TokenOut)
def revoke_token(name: str, state: State, user: Admin) -> TokenOut:
    """Revoke a token: it stops working at once (the row stays, for the audit)."""
    return TokenOut(**state.tokens.revoke(name, actor=user.name))


@router.get("/audit", response_model=list[AuditOut])
def audit(state: State, _user: Admin, actor: str | None = None, action: str | None = None,
          since: datetime | None = None, limit: int = 200, offset: int = 0
          ) -> list[AuditOut]:
    """Every state-changing request, newest first. ``action`` matches a prefix
    (``target.`` → every target change); ``since`` an ISO time. ``limit`` rows (at most
    1000) after skipping ``offset``."""
    return [AuditOut(**e) for e in list_entries(state.db, actor=actor, action=action,
                                                 since=since, limit=limit, offset=offset)]
