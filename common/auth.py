"""Who is asking, and what they may do: principals, roles, the token file and named tokens.

A *principal* is a name and a role. Roles are ordered: ``viewer`` (read only) <
``operator`` (backups, new/empty restores, verify, drills, tags/pins, copies) < ``admin``
(everything: targets, keys, forget, prune, replace, unlock, tokens, the audit log).

Secrets: the *bootstrap* secret (``VOLKEEPER_API_TOKEN``, or embedded the file
``<home>/api.token``, created 0600 at first ``serve``) is the admin named ``admin``; named
tokens (``create_token``) live in ``api_tokens`` as the SHA-256 of their secret only, so
the secret is shown once, at creation. The embedded CLI, which runs in-process with the
keys of ``VOLKEEPER_HOME`` in hand, acts as ``LOCAL`` (``cli:local-user``, admin).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import re
import secrets
import stat
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from common.audit import LOCAL_ACTOR
from common.config import Settings
from common.db import ApiToken, Database
from common.db.models import utcnow
from common.errors import Conflict, Forbidden, InvalidInput, NotFound

log = logging.getLogger(__name__)

ROLES = ("viewer", "operator", "admin")
TOKEN_FILE = "api.token"
BOOTSTRAP_NAME = "admin"
TOKEN_PREFIX = "vk_"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$")
_TOUCH_EVERY = timedelta(seconds=60)


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: ``name`` (recorded as ``requested_by`` and audit actor)."""

    name: str
    role: str

    def allows(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)

    def require(self, role: str, what: str) -> None:
        """Raise Forbidden (naming the role needed) unless this principal has ``role``."""
        if not self.allows(role):
            raise Forbidden(f"{what} needs the {role} role; token {self.name!r} has the "
                            f"{self.role} role",
                            f"ask an admin for a token with the {role} role "
                            f"(volkeeper tokens create NAME --role {role})")


LOCAL = Principal(LOCAL_ACTOR, "admin")


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


# --- the embedded token file -------------------------------------------------------------


def token_file(settings: Settings) -> Path:
    """``<VOLKEEPER_HOME>/api.token``: the embedded API's admin secret (mode 0600)."""
    return settings.home / TOKEN_FILE


def read_token_file(settings: Settings) -> str | None:
    """The secret in the token file, or None when there is none (yet). The CLI reads it to
    talk to a loopback ``--server``."""
    try:
        return token_file(settings).read_text().strip() or None
    except FileNotFoundError:
        return None


def ensure_token_file(settings: Settings) -> str:
    """The token file's secret, creating the file first when missing: written 0600 to a
    temporary name and linked into place (never a half-written or world-readable file; of
    two racing processes one wins and both use its secret). A file readable by others is
    made 0600 again, with a warning (never showing the secret)."""
    path = token_file(settings)
    settings.home.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        tmp = path.with_name(f".{TOKEN_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(new_secret() + "\n")
                f.flush()
                os.fsync(f.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("%s was readable by others (mode %o); made it 0600", path, mode)
        path.chmod(0o600)
    secret = read_token_file(settings)
    if secret is None:
        raise InvalidInput(f"the token file {path} is empty",
                           "delete it and start `volkeeper serve` again to create a new one")
    return secret


def bootstrap_secrets(settings: Settings, *, token_file_too: bool) -> list[str]:
    """The secrets that authenticate as the admin named ``admin``."""
    out = []
    if settings.api_token is not None and settings.api_token.get_secret_value():
        out.append(settings.api_token.get_secret_value())
    if token_file_too:
        out.append(ensure_token_file(settings))
    return out


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def client_token(settings: Settings, server: str, given: str | None) -> str | None:
    """The token the CLI sends to ``--server``: the one given (``--token`` /
    ``VOLKEEPER_API_TOKEN``), else — for a loopback server — the embedded token file of
    this VOLKEEPER_HOME (None when it is not there or not readable by this user)."""
    if given:
        return given
    from urllib.parse import urlsplit

    if (urlsplit(server).hostname or "").lower() not in LOOPBACK_HOSTS:
        return None
    try:
        return read_token_file(settings)
    except PermissionError:
        return None


def login_url(base_url: str, secret: str) -> str:
    """The console's login link: the secret rides in the fragment, which browsers never
    send to a server (so it stays out of access logs); the page trades it for a cookie."""
    return f"{base_url.rstrip('/')}/login#token={secret}"


# --- named tokens ------------------------------------------------------------------------


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r}", f"use one of {', '.join(ROLES)}")


def token_view(t: ApiToken) -> dict[str, Any]:
    """A token row without its hash."""
    return {"name": t.name, "role": t.role, "created_at": t.created_at,
            "created_by": t.created_by, "last_used_at": t.last_used_at,
            "revoked_at": t.revoked_at}


class TokenService:
    """Named tokens: create (the secret is returned once), list, revoke, check."""

    def __init__(self, db: Database, bootstrap: list[str] | None = None) -> None:
        self.db = db
        self.bootstrap = bootstrap or []

    def create(self, name: str, role: str, *, actor: str = LOCAL_ACTOR
               ) -> tuple[dict[str, Any], str]:
        """A new token; returns its view and its secret (shown this once, never stored)."""
        from common.audit import record

        _check_role(role)
        if not _NAME.match(name) or name in (BOOTSTRAP_NAME, LOCAL_ACTOR):
            raise InvalidInput(f"invalid token name {name!r}",
                               "use 1-100 letters, digits, '_', '.', '@', '-' (not 'admin')")
        secret = new_secret()
        with self.db.session() as s:
            if s.scalar(select(ApiToken).where(ApiToken.name == name)) is not None:
                raise Conflict(f"a token named {name!r} exists",
                               f"pick another name, or revoke it first: volkeeper tokens "
                               f"revoke {name}")
            row = ApiToken(name=name, role=role, secret_sha256=hash_secret(secret),
                           created_by=actor)
            s.add(row)
            s.flush()
            view = token_view(row)
        record(self.db, actor, "token.create", name, {"role": role}, "ok")
        return view, secret

    def list(self) -> list[dict[str, Any]]:
        with self.db.session() as s:
            return [token_view(t) for t in s.scalars(select(ApiToken).order_by(ApiToken.name))]

    def revoke(self, name: str, *, actor: str = LOCAL_ACTOR) -> dict[str, Any]:
        from common.audit import record

        with self.db.session() as s:
            row = s.scalar(select(ApiToken).where(ApiToken.name == name))
            if row is None:
                raise NotFound("token", name, "see the tokens: volkeeper tokens list")
            if row.revoked_at is None:
                row.revoked_at = utcnow()
            view = token_view(row)
        record(self.db, actor, "token.revoke", name, {}, "ok")
        return view

    def by_binding(self, name: str, binding: str) -> Principal | None:
        """The live (unrevoked) token ``name`` if its stored hash starts with ``binding``
        (a console session's check, ``common.sessions``); else None."""
        with self.db.session() as s:
            row = s.scalar(select(ApiToken).where(ApiToken.name == name))
            if row is None or row.revoked_at is not None or not binding or \
                    not hmac.compare_digest(row.secret_sha256[:len(binding)], binding):
                return None
            return Principal(row.name, row.role)

    def check(self, secret: str) -> Principal | None:
        """The principal a secret authenticates, or None (unknown or revoked)."""
        if not secret:
            return None
        for boot in self.bootstrap:
            if hmac.compare_digest(secret.encode(), boot.encode()):
                return Principal(BOOTSTRAP_NAME, "admin")
        digest = hash_secret(secret)
        with self.db.session() as s:
            row = s.scalar(select(ApiToken).where(ApiToken.secret_sha256 == digest))
            if row is None or row.revoked_at is not None:
                return None
            now = utcnow()
            if row.last_used_at is None or now - row.last_used_at > _TOUCH_EVERY:
                row.last_used_at = now
            return Principal(row.name, row.role)
