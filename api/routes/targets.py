"""Storage targets. Credentials go in, never come out."""

from __future__ import annotations

from fastapi import APIRouter, Response

from api.deps import CurrentUser, DbSession, State
from api.schemas import TargetIn, TargetOut
from common.db import Target, catalog
from common.errors import InvalidInput
from common.secretbox import seal
from common.storage.registry import validate_target_url

router = APIRouter(prefix="/targets", tags=["targets"])
CREDENTIAL_KEYS = {"access_key_id", "secret_access_key", "session_token"}


def target_out(t: Target, usage: tuple[int, int] = (0, 0)) -> TargetOut:
    return TargetOut(name=t.name, url=t.url, options=t.options or {},
                     has_credentials=bool(t.secrets), created_at=t.created_at,
                     backup_count=usage[0], stored_bytes=usage[1])


@router.get("", response_model=list[TargetOut])
def list_targets(session: DbSession, _user: CurrentUser) -> list[TargetOut]:
    """Targets, with how many backups the catalog knows on each and their stored bytes."""
    usage = catalog.target_usage(session)
    return [target_out(t, usage.get(t.name, (0, 0))) for t in catalog.list_targets(session)]


@router.post("", response_model=TargetOut, status_code=201)
def add_target(body: TargetIn, session: DbSession, state: State, _user: CurrentUser
               ) -> TargetOut:
    validate_target_url(body.url, body.options)
    unknown = sorted(set(body.credentials) - CREDENTIAL_KEYS)
    if unknown:
        raise InvalidInput(f"unknown credential(s): {', '.join(unknown)}",
                           f"allowed: {', '.join(sorted(CREDENTIAL_KEYS))}")
    secrets = seal(body.credentials, state.settings)
    t = catalog.add_target(session, body.name, body.url, body.options, secrets,
                           replace=body.replace)
    return target_out(t)


@router.get("/{name}", response_model=TargetOut)
def get_target(name: str, session: DbSession, _user: CurrentUser) -> TargetOut:
    return target_out(catalog.get_target(session, name),
                      catalog.target_usage(session).get(name, (0, 0)))


@router.delete("/{name}", status_code=204)
def remove_target(name: str, session: DbSession, _user: CurrentUser) -> Response:
    catalog.remove_target(session, name)
    return Response(status_code=204)
