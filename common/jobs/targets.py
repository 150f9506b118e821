"""Registering and removing storage targets. Credentials are sealed on the way in and
never come out (a target's view only says whether it has them); the location must be
within the allowlists (``common.storage.allowlist``); every attempt is audited."""

from __future__ import annotations

from sqlalchemy.orm import Session

from common.audit import record_beside
from common.auth import LOCAL_ACTOR
from common.config import Settings
from common.db import catalog
from common.errors import InvalidInput, VolkeeperError
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
        secrets = seal(body.credentials, settings)
        t = catalog.add_target(session, body.name, body.url, body.options, secrets,
                               replace=body.replace)
    except VolkeeperError as e:
        record_beside(session, actor, "target.add", body.name, details,
                      f"error: {e.code}: {e.message}")
        raise
    record_beside(session, actor, "target.add", body.name, details, "ok", same=True)
    return target_out(t)


def remove_target(session: Session, name: str, *, actor: str = LOCAL_ACTOR) -> None:
    """Remove a target that holds no backups."""
    try:
        catalog.remove_target(session, name)
    except VolkeeperError as e:
        record_beside(session, actor, "target.remove", name, {},
                      f"error: {e.code}: {e.message}")
        raise
    record_beside(session, actor, "target.remove", name, {}, "ok", same=True)
