"""Managing an opened repository's passphrases (key files).

Adding a passphrase needs the repository opened with a current one (the opened
``Repository`` carries the master key to wrap). Removing one runs under the exclusive
lock, so two removals cannot race each other into deleting the last two keys, and refuses
the last key and the key the caller opened the repository with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from common.errors import IntegrityError, InvalidInput, NotFound
from common.repository.core import ids, keys
from common.repository.core.locks import DEFAULT_STALE_AFTER, acquire_lock
from common.repository.core.repository import Repository


@dataclass(frozen=True)
class KeyInfo:
    """One key file, without its secret."""

    id: bytes
    created: str
    hostname: str
    in_use: bool

    def to_dict(self) -> dict[str, object]:
        """JSON form for the API/CLI."""
        return {"id": self.id.hex(), "created": self.created, "hostname": self.hostname,
                "in_use": self.in_use}


def _encrypted(repo: Repository) -> None:
    if not repo.config.encrypted or repo.key_file_id is None:
        raise InvalidInput(
            f"repository {repo.backend.display} is unencrypted and has no passphrases",
            "passphrases exist only for encrypted repositories",
        )


def list_keys(repo: Repository) -> list[KeyInfo]:
    """Every key file of the repository, marking the one this handle was opened with."""
    out = []
    for key_file_id in keys.list_key_files(repo.backend):
        try:
            doc = json.loads(repo.backend.get_bytes(ids.key_file_key(key_file_id)))
            created, host = str(doc.get("created", "?")), str(doc.get("hostname", "?"))
        except NotFound:
            continue
        except (ValueError, AttributeError):
            created, host = "?", "? (malformed key file)"
        out.append(KeyInfo(key_file_id, created, host, key_file_id == repo.key_file_id))
    return out


def add_passphrase(repo: Repository, passphrase: str, *,
                   kdf: keys.KdfParams = keys.DEFAULT_KDF) -> bytes:
    """Add a key file opening the repository with ``passphrase``; returns its id."""
    _encrypted(repo)
    key_file_id = keys.add_key(repo.backend, repo.key, passphrase, kdf)
    # read it back: a new passphrase that cannot open the repository is worse than none
    data = repo.backend.get_bytes(ids.key_file_key(key_file_id))
    if keys.unwrap_key(data, passphrase, key_file_id, repo.backend.display) != repo.key:
        raise IntegrityError(f"the new key file {key_file_id.hex()} does not open the "
                             "repository", "remove it and try again")
    return key_file_id


def remove_passphrase(repo: Repository, key_file_id: bytes, *, owner: str = "remove key",
                      stale_after: float = DEFAULT_STALE_AFTER) -> None:
    """Remove one key file under the exclusive lock. Conflict for the last key and for
    the key ``repo`` was opened with; NotFound for an unknown one."""
    _encrypted(repo)
    with acquire_lock(repo, exclusive=True, owner=owner, stale_after=stale_after) as lock:
        lock.check()
        keys.remove_key(repo.backend, key_file_id, in_use=repo.key_file_id)
