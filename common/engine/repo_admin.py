"""Operations on a target's whole repository: prune, stats, the snapshot listing (what the
repository alone knows — for recovery when the database is lost), keys and stale locks.
Each returns a plain dict for the job's result."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from common.config import Settings
from common.engine import repo as repo_engine
from common.engine.stored import user_tags
from common.errors import Conflict, NotFound
from common.progress import ProgressTracker
from common.repository.core.keys import check_new_passphrase, list_key_files, new_kdf
from common.repository.core.locks import list_locks, remove_stale_locks
from common.repository.core.snapshot import list_snapshots
from common.repository.maintenance.keyring import add_passphrase, list_keys, remove_passphrase
from common.repository.maintenance.prune import prune
from common.repository.maintenance.repair import repair
from common.repository.maintenance.stats import repository_stats
from common.storage.base import Backend

#: catalog lookup: snapshot id (hex) → backup id, or None when the catalog does not know it
CatalogLookup = Callable[[str], "str | None"]


def prune_target(backend: Backend, settings: Settings, *, dry_run: bool,
                 tracker: ProgressTracker, owner: str = "prune") -> dict[str, Any]:
    """Reclaim what no snapshot references. Takes the repository's exclusive lock, so it
    is refused (Conflict) while a backup or another prune holds a lock."""
    repo = repo_engine.open_repo(backend, settings)
    tracker.set_phase("pruning (dry run)" if dry_run else "pruning")
    try:
        report = prune(repo, dry_run=dry_run, progress=tracker, owner=owner)
    except Conflict as e:
        raise Conflict(f"prune of {backend.display} refused: {e.message}",
                       e.hint or "wait for the running backups to finish and prune again; "
                       "locks of dead workers expire, or remove them: volkeeper unlock TARGET"
                       ) from None
    return {"dry_run": dry_run, "report": report.to_dict()}


def repair_target(backend: Backend, settings: Settings, *, dry_run: bool, read_data: bool,
                  forget_broken: bool, tracker: ProgressTracker, owner: str = "repair"
                  ) -> dict[str, Any]:
    """Rewrite the readable blobs of the packs checks found damaged (every pack with
    ``read_data``), then delete those packs; name what is lost and the snapshots needing
    it (``forget_broken``: rewrite them without it). Takes the exclusive lock."""
    repo = repo_engine.open_repo(backend, settings)
    tracker.set_phase("repairing (dry run)" if dry_run else "repairing")
    try:
        report = repair(repo, dry_run=dry_run, read_data=read_data,
                        forget_broken_snapshots=forget_broken, progress=tracker, owner=owner)
    except Conflict as e:
        raise Conflict(f"repair of {backend.display} refused: {e.message}",
                       e.hint or "wait for the running backups to finish and repair again; "
                       "locks of dead workers expire, or remove them: volkeeper unlock TARGET"
                       ) from None
    return {"dry_run": dry_run, "report": report.to_dict()}


def stats(backend: Backend, settings: Settings) -> dict[str, Any]:
    """Logical and stored size, deduplication and compression ratios."""
    repo = repo_engine.open_repo(backend, settings)
    return {"stats": repository_stats(repo).to_dict()}


def snapshots(backend: Backend, settings: Settings, lookup: CatalogLookup) -> dict[str, Any]:
    """Every snapshot in the repository with whether the catalog knows it."""
    repo = repo_engine.open_repo(backend, settings)
    out = []
    for s in list_snapshots(repo):
        sid = s.id.hex()
        out.append({"id": sid, "host": s.host, "volume": s.volume, "time": s.time,
                    "tags": user_tags(s.tags), "pinned": s.pinned,
                    # a replace-restore's safety snapshot, never a regular backup
                    "kind": "safety" if repo_engine.SAFETY_TAG in s.tags else "backup",
                    "parent": s.parent.hex() if s.parent else None,
                    "files": s.stats.files, "bytes": s.stats.bytes,
                    "stored_bytes": s.stats.new_bytes, "excludes": list(s.excludes),
                    "backup_id": lookup(sid),
                    # a repair's rewrite: the catalog may still name the snapshot it replaced
                    "original": s.original.hex() if s.original else None})
    return {"snapshots": out, "unknown_to_catalog": sum(1 for x in out if not x["backup_id"])}


def keys(backend: Backend, settings: Settings) -> dict[str, Any]:
    """The key files (id, when and on which machine created) and which one this worker's
    passphrase opens (``in_use``)."""
    repo = repo_engine.open_repo(backend, settings)
    return {"keys": [k.to_dict() for k in list_keys(repo)]}


def new_key(backend: Backend, settings: Settings, new_passphrase: str) -> dict[str, Any]:
    """Add a key file opening the repository with ``new_passphrase``."""
    check_new_passphrase(new_passphrase)
    kdf = new_kdf(settings.repository_kdf_n)
    repo = repo_engine.open_repo(backend, settings)
    kid = add_passphrase(repo, new_passphrase, kdf=kdf)
    return {"added": kid.hex()}


def drop_key(backend: Backend, settings: Settings, key_id: str,
             owner: str = "remove key") -> dict[str, Any]:
    """Remove a key file by (a unique prefix of) its id. Refuses the last key, and the key
    the workers use right now (they would lose access)."""
    repo = repo_engine.open_repo(backend, settings)
    matches = [k for k in list_key_files(backend) if k.hex().startswith(key_id.lower())]
    if len(key_id) < 4 or len(matches) != 1:
        raise NotFound("key", key_id, "give at least 4 hex digits of one key's id "
                       "(volkeeper key list TARGET)")
    try:
        remove_passphrase(repo, matches[0], owner=owner)
    except Conflict as e:
        if matches[0] != repo.key_file_id:
            raise
        raise Conflict(e.message, "configure another passphrase for the workers first "
                       "(VOLKEEPER_REPOSITORY_PASSWORD or the target's password_file), then "
                       "remove this one") from None
    return {"removed": matches[0].hex()}


def unlock(backend: Backend, settings: Settings) -> dict[str, Any]:
    """Remove stale locks and the locks of processes on this machine that are gone (killed
    workers or commands); live locks stay and are listed."""
    repo = repo_engine.open_repo(backend, settings)
    removed = remove_stale_locks(repo, dead_holders=True)
    return {"removed": removed, "remaining": [lk.to_dict() for lk in list_locks(repo)]}
