"""Where derived repository wrapping keys may outlive the process.

``common.repository.core.keys`` keeps scrypt results in memory; a front that runs one
short process per command (the embedded CLI) installs a persistent store here
(``common.jobs.keycache``) without importing the repository packages.
"""

from __future__ import annotations

from typing import Protocol


class DerivedKeyStore(Protocol):
    """``cache_key`` is a SHA-256 over passphrase, salt and cost: only a caller holding the
    passphrase can name an entry. Both methods must swallow their own I/O errors."""

    def get(self, cache_key: bytes) -> bytes | None: ...

    def put(self, cache_key: bytes, derived: bytes) -> None: ...


_store: DerivedKeyStore | None = None


def use_store(store: DerivedKeyStore | None) -> None:
    """Keep derived keys in ``store`` too (None: in this process only)."""
    global _store
    _store = store


def current_store() -> DerivedKeyStore | None:
    return _store
