"""Operations on a target's whole repository: prune, stats, the snapshot listing (what the
repository alone knows — for recovery when the database is lost), keys and stale locks.
Each returns a plain dict for the job's result."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from typing import Any

from common.config import Settings
from common.engine import repo as repo_engine
from common.engine.stored import user_tags
from common.errors import Conflict, InvalidInput, NotFound
from common.progress import ProgressTracker
from common.repository import ids
from common.repository.keys import KdfParams, add_key, find_key, list_key_files, remove_key
from common.repository.locks import list_locks, remove_stale_locks
from common.repository.prune import prune
from common.repository.snapshot import list_snapshots
from common.repository.stats import repository_stats
from common.storage.base import Backend

#: catalog lookup: snapshot id (hex) → backup id, or None when the catalog does not know it
CatalogLookup = Callable[[str], "str | None"]


def _plain(value: Any) -> Any:
    """A JSON-able form of the library's report objects."""
    if is_dataclass(value) and not isinstance(value, type):
        return _plain(asdict(value))
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_plain(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    return value


def prune_target(backend: Backend, settings: Settings, *, dry_run: bool,
                 tracker: ProgressTracker) -> dict[str, Any]:
    """Reclaim what no snapshot references. Takes the repository's exclusive lock, so it
    is refused (Conflict) while a backup or another prune holds a lock."""
    repo = repo_engine.open_repo(backend, settings)
    tracker.set_phase("pruning (dry run)" if dry_run else "pruning")
    try:
        report = prune(repo, dry_run=dry_run, progress=tracker)
    except Conflict as e:
        raise Conflict(f"prune of {backend.display} refused: {e.message}",
                       e.hint or "wait for the running backups to finish and prune again; "
                       "locks of dead workers expire, or remove them: volkeeper unlock TARGET"
                       ) from None
    return {"dry_run": dry_run, "report": _plain(report)}


def stats(backend: Backend, settings: Settings) -> dict[str, Any]:
    """Logical and stored size, deduplication and compression ratios."""
    repo = repo_engine.open_repo(backend, settings)
    return {"stats": _plain(repository_stats(repo))}


def snapshots(backend: Backend, settings: Settings, lookup: CatalogLookup) -> dict[str, Any]:
    """Every snapshot in the repository with whether the catalog knows it."""
    repo = repo_engine.open_repo(backend, settings)
    out = []
    for s in list_snapshots(repo):
        sid = s.id.hex()
        out.append({"id": sid, "host": s.host, "volume": s.volume, "time": s.time,
                    "tags": user_tags(s.tags), "pinned": s.pinned,
                    "parent": s.parent.hex() if s.parent else None,
                    "files": s.stats.files, "bytes": s.stats.bytes,
                    "backup_id": lookup(sid)})
    return {"snapshots": out, "unknown_to_catalog": sum(1 for x in out if not x["backup_id"])}


def list_keys(backend: Backend, settings: Settings) -> dict[str, Any]:
    """The key files (id, when and on which machine created) and which one this worker's
    passphrase opens."""
    repo_engine.open_repo(backend, settings)  # the caller must hold a key
    current = _current_key(backend, settings)
    keys = []
    for kid in list_key_files(backend):
        meta: dict[str, Any] = {}
        with contextlib.suppress(ValueError, NotFound):
            meta = json.loads(backend.get_bytes(ids.key_file_key(kid)))
        keys.append({"id": kid.hex(), "created": meta.get("created"),
                     "hostname": meta.get("hostname"), "current": kid == current})
    return {"keys": keys}


def new_key(backend: Backend, settings: Settings, new_passphrase: str) -> dict[str, Any]:
    """Add a key file opening the repository with ``new_passphrase``."""
    if not new_passphrase:
        raise InvalidInput("the new passphrase is empty", "give a non-empty passphrase")
    repo = repo_engine.open_repo(backend, settings)
    if not repo.config.encrypted:
        raise InvalidInput(f"the repository in {backend.display} is not encrypted",
                           "an unencrypted repository has no keys")
    kid = add_key(backend, repo.key, new_passphrase,
                  KdfParams(n=settings.repository_kdf_n).validate())
    return {"added": kid.hex()}


def drop_key(backend: Backend, settings: Settings, key_id: str) -> dict[str, Any]:
    """Remove a key file by (a unique prefix of) its id. Refuses the last key, and the key
    the workers use right now (they would lose access)."""
    repo_engine.open_repo(backend, settings)
    matches = [k for k in list_key_files(backend) if k.hex().startswith(key_id.lower())]
    if len(key_id) < 4 or len(matches) != 1:
        raise NotFound("key", key_id, "give at least 4 hex digits of one key's id "
                       "(volkeeper key list TARGET)")
    if matches[0] == _current_key(backend, settings):
        raise Conflict(f"key {matches[0].hex()} is the one this worker opens the repository "
                       "with",
                       "configure another passphrase for the workers first "
                       "(VOLKEEPER_REPOSITORY_PASSWORD or the target's password_file)")
    remove_key(backend, matches[0])
    return {"removed": matches[0].hex()}


def _current_key(backend: Backend, settings: Settings) -> bytes | None:
    secret = repo_engine.passphrase(settings)
    return find_key(backend, secret)[0] if secret else None


def unlock(backend: Backend, settings: Settings) -> dict[str, Any]:
    """Remove stale locks (of workers that died); live locks stay and are listed."""
    repo = repo_engine.open_repo(backend, settings)
    removed = remove_stale_locks(repo)
    return {"removed": removed, "remaining": _plain(list_locks(repo))}
