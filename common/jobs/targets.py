"""Adding and removing targets: validated, checked against the allowlists
(``common.storage.allowlist``), credentials sealed, every change audited. The API routes
and the embedded CLI both call this."""

from __future__ import annotations

from typing import Any

from common.audit import audited
from common.config import Settings
from common.db import Database, Target, catalog
from common.errors import InvalidInput
from common.secretbox import seal
from common.storage.allowlist import check_target_allowed
from common.storage.registry import validate_target_url

CREDENTIAL_KEYS = frozenset({"access_key_id", "secret_access_key", "session_token"})


def _shown(a: dict[str, Any]) -> str:
    return str(a["name"])


class TargetService:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings

    @audited("target.add", _shown)
    def add_target(self, *, name: str, url: str, options: dict[str, Any] | None = None,
                   credentials: dict[str, str] | None = None, replace: bool = False,
                   requested_by: str | None = None) -> Target:
        """Register (or with ``replace`` overwrite) a target. Raises InvalidInput for a bad
        URL, an unknown option or credential, or a location outside the allowlists."""
        options, credentials = dict(options or {}), dict(credentials or {})
        validate_target_url(url, options)
        check_target_allowed(url, options, self.settings)
        unknown = sorted(set(credentials) - CREDENTIAL_KEYS)
        if unknown:
            raise InvalidInput(f"unknown credential(s): {', '.join(unknown)}",
                               f"allowed: {', '.join(sorted(CREDENTIAL_KEYS))}")
        sealed = seal(credentials, self.settings)
        with self.db.session() as s:
            return catalog.add_target(s, name, url, options, sealed, replace=replace)

    @audited("target.remove", _shown)
    def remove_target(self, *, name: str, requested_by: str | None = None) -> None:
        with self.db.session() as s:
            catalog.remove_target(s, name)

