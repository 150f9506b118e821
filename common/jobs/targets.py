"""Registering and removing storage targets. Credentials are sealed on the way in and
never come out (a target's view only says whether it has them)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from common.config import Settings
from common.db import catalog
from common.errors import InvalidInput
from common.jobs.inputs import TargetIn
from common.jobs.views import TargetOut, target_out

CREDENTIAL_KEYS = {"access_key_id", "secret_access_key", "session_token"}


def add_target(session: Session, settings: Settings, body: TargetIn) -> TargetOut:
    """Check the URL and options, seal the credentials, record the target."""
    from common.secretbox import seal
    from common.storage.registry import validate_target_url

    validate_target_url(body.url, body.options)
    unknown = sorted(set(body.credentials) - CREDENTIAL_KEYS)
    if unknown:
        raise InvalidInput(f"unknown credential(s): {', '.join(unknown)}",
                           f"allowed: {', '.join(sorted(CREDENTIAL_KEYS))}")
    secrets = seal(body.credentials, settings)
    t = catalog.add_target(session, body.name, body.url, body.options, secrets,
                           replace=body.replace)
    return target_out(t)


def remove_target(session: Session, name: str) -> None:
    """Remove a target that holds no backups."""
    catalog.remove_target(session, name)
