"""Target credentials sealed at rest: what the database holds is never the secret itself.

A target's secrets (S3 keys …) are stored as ``{"$sealed": "v2", "token": …}``: a Fernet
token (AES-128-CBC + HMAC-SHA256, from ``cryptography``) over their JSON, keyed by
HKDF-SHA256 of ``VOLKEEPER_SECRET_KEY`` (fixed salt and info), which must be at least
``MIN_SECRET_KEY`` characters to seal. The API seals what it receives; workers unseal when
they open a target. Embedded mode without a configured key creates one in
``<home>/secret.key`` (mode 0600, 64 hex digits) on first use.

Older rows are still read, and sealed as v2 the next time the target is saved: plain JSON
(from before sealing) and ``v1`` tokens, keyed by one SHA-256 of the secret key (read with
any key length, so a deployment can read them before it moves to a longer key).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from common.config import Settings
from common.errors import InvalidInput

SEALED = "$sealed"
VERSION = "v2"
LEGACY = "v1"
KEY_FILE = "secret.key"
MIN_SECRET_KEY = 32
_NO_KEY = ("set VOLKEEPER_SECRET_KEY (a long random string, e.g. `openssl rand -hex 32`) "
           "to the same value on the API and every worker")
_HKDF_SALT = b"volkeeper secretbox salt v2"
_HKDF_INFO = b"volkeeper-target-secrets-v2"


def _fernet(secret: str, version: str = VERSION) -> Fernet:
    """The Fernet key of ``version`` derived from the secret key."""
    if version == LEGACY:
        digest = hashlib.sha256(b"volkeeper-target-secrets-v1\0" + secret.encode()).digest()
    else:
        digest = HKDF(algorithm=hashes.SHA256(), length=32, salt=_HKDF_SALT,
                      info=_HKDF_INFO).derive(secret.encode())
    return Fernet(base64.urlsafe_b64encode(digest))


def _embedded_key(home: Path) -> str:
    """The embedded key file's content, created (0600, race-safe) when missing."""
    path = home / KEY_FILE
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(os.urandom(32).hex() + "\n")
    return path.read_text().strip()


def installation_secret(settings: Settings) -> str | None:
    """The secret key of this installation: ``VOLKEEPER_SECRET_KEY``, or embedded mode's
    ``<home>/secret.key`` (created when missing); None in a fleet without one."""
    return _secret(settings)


def _secret(settings: Settings) -> str | None:
    if settings.secret_key is not None and settings.secret_key.get_secret_value():
        return settings.secret_key.get_secret_value()
    if settings.mode == "embedded":
        return _embedded_key(settings.home)
    return None


def seal(secrets: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The form of ``secrets`` to store. Raises InvalidInput when no key is configured or
    it is shorter than ``MIN_SECRET_KEY`` characters."""
    if not secrets:
        return {}
    secret = _secret(settings)
    if secret is None:
        raise InvalidInput("credentials cannot be stored: no secret key is configured",
                           _NO_KEY)
    if len(secret) < MIN_SECRET_KEY:
        raise InvalidInput(f"credentials cannot be stored: VOLKEEPER_SECRET_KEY has "
                           f"{len(secret)} characters, at least {MIN_SECRET_KEY} are required",
                           "generate one with `openssl rand -hex 32` and set it on the API "
                           "and every worker; then add the targets with credentials again")
    token = _fernet(secret).encrypt(json.dumps(secrets, sort_keys=True).encode())
    return {SEALED: VERSION, "token": token.decode()}


def unseal(stored: dict[str, Any], settings: Settings, target: str = "") -> dict[str, Any]:
    """The secrets from their stored form (plain JSON of older rows is returned as is)."""
    if SEALED not in stored:
        return dict(stored)
    where = f"the credentials of target {target!r}" if target else "the credentials"
    secret = _secret(settings)
    if secret is None:
        raise InvalidInput(f"{where} are sealed and this process has no secret key", _NO_KEY)
    version = stored.get(SEALED)
    if version not in (VERSION, LEGACY):
        raise InvalidInput(f"{where} are sealed in an unknown format {version!r}",
                           "upgrade volkeeper on this host")
    try:
        plain = _fernet(secret, str(version)).decrypt(str(stored.get("token", "")).encode())
    except InvalidToken:
        raise InvalidInput(
            f"{where} were sealed with a different VOLKEEPER_SECRET_KEY",
            "use the same VOLKEEPER_SECRET_KEY on the API and every worker, or add the "
            "target again with its credentials") from None
    secrets: dict[str, Any] = json.loads(plain)
    return secrets


#: the keyword argument carrying a task's sealed secrets in a broker message
TASK_SECRETS = "sealed_secrets"
_TASK_INFO = b"volkeeper-task-secrets-v1"


def _key(settings: Settings) -> Fernet | None:
    """The task messages' key: derived from the secret key with its own HKDF info, so a
    message token is never a valid stored-credentials token (or the other way round)."""
    secret = _secret(settings)
    if secret is None or len(secret) < MIN_SECRET_KEY:
        return None
    digest = HKDF(algorithm=hashes.SHA256(), length=32, salt=_HKDF_SALT,
                  info=_TASK_INFO).derive(secret.encode())
    return Fernet(base64.urlsafe_b64encode(digest))


def seal_task_secrets(secrets: dict[str, Any], job_id: str | None, settings: Settings
                      ) -> dict[str, Any]:
    """The task keyword arguments that carry ``secrets`` through the broker: one sealed
    token bound to the job (a token copied into another job's message is refused)."""
    fernet = _key(settings)
    if fernet is None:
        raise InvalidInput("a secret (e.g. a new repository passphrase) cannot be sent to "
                           "the worker: no secret key (of at least "
                           f"{MIN_SECRET_KEY} characters) is configured", _NO_KEY)
    body = json.dumps({"job_id": job_id, "secrets": secrets}, sort_keys=True).encode()
    return {TASK_SECRETS: fernet.encrypt(body).decode()}


def unseal_task_secrets(kwargs: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """A task's keyword arguments with its sealed secrets opened (the worker side)."""
    if TASK_SECRETS not in kwargs:
        return kwargs
    rest = {k: v for k, v in kwargs.items() if k != TASK_SECRETS}
    fernet = _key(settings)
    if fernet is None:
        raise InvalidInput("this task carries sealed secrets and this worker has no secret "
                           f"key (of at least {MIN_SECRET_KEY} characters)", _NO_KEY)
    try:
        opened = json.loads(fernet.decrypt(str(kwargs[TASK_SECRETS]).encode()))
    except InvalidToken:
        raise InvalidInput("the task's secrets were sealed with a different "
                           "VOLKEEPER_SECRET_KEY",
                           "use the same VOLKEEPER_SECRET_KEY on the API and every worker, "
                           "then submit the job again") from None
    if opened.get("job_id") != rest.get("job_id"):
        raise InvalidInput("the task's sealed secrets belong to another job",
                           "submit the job again")
    secrets: dict[str, Any] = opened["secrets"]
    return rest | secrets
