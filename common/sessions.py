"""Console sessions: a signed, expiring cookie that names a token without holding it.

The console trades an API token for a session once (``/login``). The cookie then carries
``<token name>|<expiry>|<binding>`` and an HMAC-SHA256 over it, where the binding is the
first 16 hex digits of the SHA-256 the database stores for that token. So:

- a stolen cookie is not an API token (scripts cannot send it as ``Bearer``) and ends at
  its expiry (``SESSION_SECONDS``);
- revoking the token ends its sessions at once (the name no longer resolves), and a new
  token under the same name does not revive them (its binding differs);
- any API replica checks a cookie any other one issued, with no session table: the HMAC
  key is derived (HKDF) from the installation's secret key (``VOLKEEPER_SECRET_KEY`` or the
  embedded ``secret.key``), else from the fleet's bootstrap ``VOLKEEPER_API_TOKEN`` — the
  same on every replica.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from common.auth import BOOTSTRAP_NAME, Principal, TokenService, hash_secret

SESSION_SECONDS = 12 * 3600
_BINDING = 16


def session_key(secret: str) -> bytes:
    """The cookie-signing key derived from a long-lived installation secret."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"volkeeper console sessions v1",
                info=b"cookie mac").derive(secret.encode())


class ConsoleSessions:
    """Issues and checks console session cookies for the tokens of ``tokens``."""

    def __init__(self, key: bytes, tokens: TokenService, ttl: int = SESSION_SECONDS) -> None:
        self.key, self.tokens, self.ttl = key, tokens, ttl

    def _mac(self, payload: bytes) -> str:
        return hmac.new(self.key, payload, hashlib.sha256).hexdigest()

    def issue(self, secret: str, now: float | None = None) -> tuple[Principal, str] | None:
        """(principal, cookie value) for a valid token secret; None for an unknown one."""
        principal = self.tokens.check(secret)
        if principal is None:
            return None
        expires = int((time.time() if now is None else now) + self.ttl)
        payload = f"{principal.name}|{expires}|{hash_secret(secret)[:_BINDING]}".encode()
        value = base64.urlsafe_b64encode(payload).decode().rstrip("=")
        return principal, f"{value}.{self._mac(payload)}"

    def check(self, cookie: str, now: float | None = None) -> Principal | None:
        """The principal of a valid, unexpired session of a live token; else None."""
        value, _, mac = cookie.partition(".")
        try:
            payload = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        except (binascii.Error, ValueError):
            return None
        if not mac or not hmac.compare_digest(mac, self._mac(payload)):
            return None
        try:
            name, expires, binding = payload.decode().split("|")
            if int(expires) < (time.time() if now is None else now):
                return None
        except ValueError:
            return None
        return self._live(name, binding)

    def _live(self, name: str, binding: str) -> Principal | None:
        if name == BOOTSTRAP_NAME:
            alive = any(hash_secret(b)[:_BINDING] == binding for b in self.tokens.bootstrap)
            return Principal(BOOTSTRAP_NAME, "admin") if alive else None
        return self.tokens.by_binding(name, binding)
