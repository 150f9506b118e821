"""The embedded key cache: derived repository wrapping keys kept between one-shot commands.

Opening an encrypted repository derives a wrapping key from the passphrase with scrypt,
deliberately slow (~0.5 s and up to 256 MiB). A long-running process pays that once; each
``volkeeper`` command of the embedded CLI is a new process and would pay it every time.
With ``VOLKEEPER_KEY_CACHE_TTL`` > 0 (embedded mode only) the derived key of a key file is
kept in ``<home>/keys.cache`` (mode 0600) for that many seconds:

- an entry is named by HMAC-SHA256 (installation secret, SHA-256 of passphrase, salt and
  cost): a command finds it only when given the same passphrase, so the cache never opens a
  repository for someone without it; a removed key file or a changed passphrase simply
  misses;
- its value is sealed with AES-256-GCM under a key derived (HKDF) from the installation's
  secret key (``<home>/secret.key``): the file alone reveals nothing; someone who can read
  both (root, or a copy of the whole home) gets the repository's wrapping keys, as with a
  password file — keep the home private, or set the TTL to 0.

Errors reading or writing the cache are ignored: it is an optimisation, never a failure.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import time
from pathlib import Path

from common import derived_keys
from common.config import Settings

log = logging.getLogger(__name__)

FILE = "keys.cache"
MAX_ENTRIES = 32


def _subkey(secret: str, info: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"volkeeper key cache v1",
                info=info).derive(secret.encode())


class FileKeyCache:
    """A ``derived_keys.DerivedKeyStore`` in one small JSON file: ``{name: [expires, sealed]}``."""

    def __init__(self, path: Path, secret: str, ttl: float) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self.path, self.ttl = path, ttl
        self._name_key = _subkey(secret, b"entry names")
        self._seal = AESGCM(_subkey(secret, b"entry values"))

    def _name(self, cache_key: bytes) -> str:
        return hmac.new(self._name_key, cache_key, hashlib.sha256).hexdigest()

    def _load(self) -> dict[str, list[object]]:
        try:
            doc = json.loads(self.path.read_bytes())
        except (OSError, ValueError):
            return {}
        return doc if isinstance(doc, dict) else {}

    def get(self, cache_key: bytes) -> bytes | None:
        name = self._name(cache_key)
        entry = self._load().get(name)
        try:
            if not isinstance(entry, list) or len(entry) != 2:
                return None
            expires, sealed = _num(entry[0]), bytes.fromhex(str(entry[1]))
            if expires < time.time():
                return None
            return self._seal.decrypt(sealed[:12], sealed[12:], name.encode())
        except Exception:  # noqa: BLE001 - a missing, stale or damaged entry is a miss
            return None

    def put(self, cache_key: bytes, derived: bytes) -> None:
        name, now = self._name(cache_key), time.time()
        nonce = os.urandom(12)
        sealed = nonce + self._seal.encrypt(nonce, derived, name.encode())
        entries = {k: v for k, v in self._load().items()
                   if isinstance(v, list) and v and _num(v[0]) > now}
        entries[name] = [now + self.ttl, sealed.hex()]
        keep = sorted(entries.items(), key=lambda kv: _num(kv[1][0]))[-MAX_ENTRIES:]
        tmp = self.path.with_name(f".{FILE}.{os.getpid()}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(dict(keep), f)
            os.replace(tmp, self.path)
        except OSError as e:
            log.debug("key cache %s not written: %s", self.path, e)
            tmp.unlink(missing_ok=True)


def _num(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0


class _Lazy:
    """The file cache, built (secret read, keys derived) only when a repository is opened:
    commands that never open one pay nothing."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._cache: FileKeyCache | None = None
        self._failed = False

    def _real(self) -> FileKeyCache | None:
        if self._cache is None and not self._failed:
            from common.secretbox import installation_secret

            try:
                secret = installation_secret(self.settings)
            except OSError as e:
                log.debug("no key cache: %s", e)
                secret = None
            if secret:
                self._cache = FileKeyCache(self.settings.home / FILE, secret,
                                           self.settings.key_cache_ttl)
            else:
                self._failed = True
        return self._cache

    def get(self, cache_key: bytes) -> bytes | None:
        real = self._real()
        return real.get(cache_key) if real is not None else None

    def put(self, cache_key: bytes, derived: bytes) -> None:
        real = self._real()
        if real is not None:
            real.put(cache_key, derived)


def install(settings: Settings) -> None:
    """Use the embedded key cache in this process when configured (embedded mode, TTL > 0)."""
    enabled = settings.mode == "embedded" and settings.key_cache_ttl > 0
    derived_keys.use_store(_Lazy(settings) if enabled else None)
