"""Registering and removing storage targets. Credentials are sealed on the way in and
never come out (a target's view only says whether it has them); the location must be
within the allowlists (``common.storage.allowlist``); every attempt is audited."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from common.audit import record_beside
from common.auth import LOCAL_ACTOR
from common.config import Settings
from common.db import catalog
from common.errors import Conflict, InvalidInput, VolkeeperError
from common.jobs.inputs import TargetIn
from common.jobs.views import TargetOut, target_out

CREDENTIAL_KEYS = {"access_key_id", "secret_access_key", "session_token"}


def add_target(session: Session, settings: Settings, body: TargetIn, *,
               actor: str = LOCAL_ACTOR) -> TargetOut:
    """Check the URL, options and allowlists, seal the credentials, record the target."""
    from common.secretbox import seal
    from common.storage.allowlist import check_target_allowed
    from common.storage.registry import validate_target_url

    details = {"url": body.url, "options": body.options, "replace": body.replace,
               "has_credentials": bool(body.credentials)}
    try:
        validate_target_url(body.url, body.options)
        check_target_allowed(body.url, body.options, settings)
        unknown = sorted(set(body.credentials) - CREDENTIAL_KEYS)
        if unknown:
            raise InvalidInput(f"unknown credential(s): {', '.join(unknown)}",
                               f"allowed: {', '.join(sorted(CREDENTIAL_KEYS))}")
        refuse_shared_storage(session, body.name, body.url, body.options)
        secrets = seal(body.credentials, settings)
        t = catalog.add_target(session, body.name, body.url, body.options, secrets,
                               replace=body.replace)
    except VolkeeperError as e:
        record_beside(session, actor, "target.add", body.name, details,
                      f"error: {e.code}: {e.message}")
        raise
    record_beside(session, actor, "target.add", body.name, details, "ok", same=True)
    # a replaced target keeps its backups: say so, as GET /targets/{name} does
    return target_out(t, catalog.target_usage(session).get(t.name, (0, 0)))


def refuse_shared_storage(session: Session, name: str, url: str,
                          options: dict[str, Any]) -> None:
    """Conflict when another target's objects could meet this one's (the same directory
    or bucket prefix, or one inside the other's ``volkeeper/``): forgetting, pruning or
    moving backups on one would delete the other's."""
    from common.storage.registry import redact, shares_storage, storage_location

    here = storage_location(url, options)
    for other in catalog.list_targets(session):
        if other.name != name and shares_storage(
                here, storage_location(other.url, other.options or {})):
            raise Conflict(
                f"target {other.name!r} already uses this storage ({redact(other.url)})",
                f"use target {other.name!r} itself, or give {name!r} a location of its own "
                "(another directory or prefix, not inside the other's volkeeper/): two "
                "targets on one location would forget or prune each other's backups")


def same_storage(session: Session, source: str, destination: str) -> bool:
    """Whether targets ``source`` and ``destination`` (both existing) share storage
    (rows written before ``add_target`` refused that)."""
    from common.storage.registry import shares_storage, storage_location

    a, b = catalog.get_target(session, source), catalog.get_target(session, destination)
    return shares_storage(storage_location(a.url, a.options or {}),
                          storage_location(b.url, b.options or {}))


def remove_target(session: Session, name: str, *, actor: str = LOCAL_ACTOR) -> None:
    """Remove a target that holds no backups."""
    try:
        catalog.remove_target(session, name)
    except VolkeeperError as e:
        record_beside(session, actor, "target.remove", name, {},
                      f"error: {e.code}: {e.message}")
        raise
    record_beside(session, actor, "target.remove", name, {}, "ok", same=True)
