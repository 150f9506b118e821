"""Jobs on a target's native repository: prune, stats, snapshots, keys, unlock; and the
move of a target's backups (any format) to another target. Each returns the queued job;
its result holds the report. A body whose fields all have defaults may be left out."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import Admin, Operator, State, require_role
from api.routes.jobs import job_out
from api.schemas import (
    JobOut,
    KeyAddIn,
    PruneIn,
    RepairIn,
    SnapshotsIn,
    TargetJobIn,
    TargetMigrateIn,
)
from common.jobs import target_requests

router = APIRouter(prefix="/targets/{name}", tags=["repository"])


@router.post("/prune", response_model=JobOut, status_code=202)
def prune(name: str, state: State, user: Admin, body: PruneIn | None = None) -> JobOut:
    """Reclaim the space of data no snapshot references any more. Takes the repository's
    exclusive lock: refused (the job fails, naming the lock) while a backup writes."""
    return job_out(target_requests.queue(state.service, "prune", name, body or PruneIn(),
                                         user.name), state)


@router.post("/migrate", response_model=JobOut, status_code=202)
def migrate(name: str, body: TargetMigrateIn, state: State, user: Admin) -> JobOut:
    """Move the backups of this target (``volumes``: only theirs) to ``destination``:
    each copied (repository snapshots without re-chunking, archives object by object),
    catalogued as a new backup, read back whole, and with ``delete_source`` forgotten here
    afterwards. Resumable: copies the destination holds already are not made again. The
    job's result is the summary (one item per backup)."""
    return job_out(target_requests.queue(state.service, "migrate", name, body, user.name),
                   state)


@router.post("/repair", response_model=JobOut, status_code=202)
def repair(name: str, state: State, user: Admin, body: RepairIn | None = None) -> JobOut:
    """Rewrite the readable blobs of the packs checks found damaged (``read_data``: every
    pack is read first), then delete those packs; ``result.report`` names lost blobs and
    the snapshots and files needing them (``forget_broken``: rewritten without them).
    Takes the repository's exclusive lock."""
    return job_out(target_requests.queue(state.service, "repair", name, body or RepairIn(),
                                         user.name), state)


@router.post("/stats", response_model=JobOut, status_code=202)
def stats(name: str, state: State, user: Operator, body: TargetJobIn | None = None) -> JobOut:
    """Logical and stored size, deduplication and compression ratios (``result.stats``)."""
    return job_out(target_requests.queue(state.service, "stats", name, body or TargetJobIn(),
                                         user.name), state)


@router.post("/snapshots", response_model=JobOut, status_code=202)
def snapshots(name: str, state: State, user: Operator,
              body: SnapshotsIn | None = None) -> JobOut:
    """Every snapshot the repository holds (host, volume, time, tags, pin) and the backup
    id the catalog knows it by (null: unknown to this database). With ``adopt`` the
    unknown ones become backups in the catalog (restorable again after losing the
    database); adopting needs the admin role."""
    body = body or SnapshotsIn()
    if body.adopt:
        require_role(user, "admin", "adopting snapshots into the catalog", state)
    return job_out(target_requests.queue(state.service, "snapshots", name, body, user.name),
                   state)


@router.post("/unlock", response_model=JobOut, status_code=202)
def unlock(name: str, state: State, user: Admin, body: TargetJobIn | None = None) -> JobOut:
    """Remove stale repository locks (left by workers that died)."""
    return job_out(target_requests.queue(state.service, "unlock", name, body or TargetJobIn(),
                                         user.name), state)


@router.post("/keys/list", response_model=JobOut, status_code=202)
def list_keys(name: str, state: State, user: Operator,
              body: TargetJobIn | None = None) -> JobOut:
    """The repository's key files (``result.keys``)."""
    return job_out(target_requests.queue(state.service, "keys/list", name,
                                         body or TargetJobIn(), user.name),
                   state)


@router.post("/keys", response_model=JobOut, status_code=202)
def add_key(name: str, body: KeyAddIn, state: State, user: Admin) -> JobOut:
    """Add a passphrase (a new key file for the same master key)."""
    return job_out(target_requests.queue(state.service, "keys", name, body, user.name), state)


@router.delete("/keys/{key_id}", response_model=JobOut, status_code=202)
def remove_key(name: str, key_id: str, state: State, user: Admin,
               host: str | None = None) -> JobOut:
    """Remove a key file (never the last one, nor the one the workers use)."""
    return job_out(target_requests.remove_key(state.service, name, key_id, host, user.name),
                   state)
