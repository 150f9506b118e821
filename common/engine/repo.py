"""The engine's use of the native repository (``--format repo``): backup and restore
(verification and tree comparison: ``repo_verify``).

A target holds at most one repository, under ``volkeeper/repo/`` next to the archives. The
first ``repo`` backup to a target creates it: encrypted with the passphrase (the target's
``password_file`` option, else ``VOLKEEPER_REPOSITORY_PASSWORD_FILE``, else
``VOLKEEPER_REPOSITORY_PASSWORD``), or unencrypted only when
``VOLKEEPER_REPOSITORY_UNENCRYPTED=true`` is set and no passphrase is. Embedded mode without
any of these generates a passphrase into ``<home>/repository.password`` (0600) when it first
creates a repository, and logs where it is (keep a copy: it is the only way in). Backups,
restores and verifies hold the repository's shared lock, so a prune never runs beside them.
A catalog row of a ``repo`` backup names one snapshot: ``key`` is the snapshot object's
storage key, ``snapshot_id`` the snapshot id, ``manifest_key`` and ``checksum`` are empty
(the snapshot's trees are its manifest). Each backup's parent is the newest regular
snapshot of the same (host, volume); its size is the backup's progress estimate (a first
backup scans the mountpoint beside the backup instead, see ``sizing``). A replace-restore
of a snapshot keeps the volume's previous content as a *safety snapshot* in the same
repository (tagged ``safety`` and ``job:<id>``, incremental against the volume's latest
regular snapshot, encrypted like every snapshot); safety snapshots are never a backup's
parent (their blobs still deduplicate), and their expiry forgets them.
Volumes are read and written through their mountpoint when the worker sees it (direct
access: unchanged files are not read again), else as a tar stream through Docker's archive
API (every file is read; dedup still stores nothing twice) — see ``repo_access``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from common.archive.excludes import NO_EXCLUDES, Excludes
from common.config import Settings
from common.docker import DockerHost
from common.engine.access import bound_dir, direct_path
from common.engine.expected import is_expected
from common.engine.records import BackupOutcome, StoredBackup
from common.engine.repo_access import backup_content, restore_content
from common.engine.sizing import scanning
from common.errors import Conflict, IntegrityError, InvalidInput, NotFound, StorageError
from common.formats import REPO_FORMAT
from common.hooks.dump_kinds import DIRECTORY as DUMPS_DIRECTORY
from common.hooks.dumps import DumpSet
from common.progress import ProgressTracker
from common.repository import Repository, ids, init_repository, open_repository
from common.repository.backup.stream_ingest import backup_streams
from common.repository.core.keys import WrongPassphrase, check_new_passphrase, new_kdf
from common.repository.core.locks import backup_lock
from common.repository.core.snapshot import Snapshot, list_snapshots, load_snapshot
from common.storage.base import Backend

if TYPE_CHECKING:
    from common.repository.restore.restorer import RestoreStats

FORMAT = REPO_FORMAT
#: The phase the repository's backup (``archiver``, ``tar_ingest``) counts its work in.
BACKUP_PHASE = "backup"
AUTO_KEY_FILE = "repository.password"
log = logging.getLogger(__name__)
_NO_PASSWORD = (
    "set VOLKEEPER_REPOSITORY_PASSWORD (or VOLKEEPER_REPOSITORY_UNENCRYPTED=true) on the "
    "workers")
_init_lock = threading.Lock()
#: The tag of the safety snapshots replace-restores take (never a backup's parent).
SAFETY_TAG = "safety"
#: How long a backup, restore or verify waits for a prune's exclusive lock to go away.
LOCK_RETRY_SECONDS = 10.0
#: How long a forget waits for the exclusive lock: a policy's retention forgets the old
#: backups of many volumes at once (a job each), and a forget holds the lock briefly.
FORGET_LOCK_RETRY_SECONDS = 60.0


def passphrase(settings: Settings) -> str | None:
    """The repository passphrase: the first line of ``repository_password_file`` when set
    (a target's ``password_file`` option), else ``repository_password`` (None when unset or
    empty). Raises InvalidInput naming the file when it cannot be read or is empty."""
    path = settings.repository_password_file
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise InvalidInput(
                f"cannot read the repository key file {str(path)!r}: "
                f"{getattr(e, 'strerror', None) or type(e).__name__}",
                "create it on this worker's host (readable by the worker, first line = "
                "the passphrase), or fix the target's password_file option") from None
        first = text.splitlines()[0] if text else ""
        if not first:
            raise InvalidInput(f"the repository key file {str(path)!r} is empty",
                               "write the passphrase on its first line")
        return first
    secret = settings.repository_password
    if secret is not None and secret.get_secret_value():
        return secret.get_secret_value()
    auto = auto_key_path(settings)
    if auto is not None and auto.exists():
        return passphrase(settings.model_copy(update={"repository_password_file": auto}))
    return None


def auto_key_path(settings: Settings) -> Path | None:
    """Embedded mode's generated passphrase file (``<home>/repository.password``); None in
    the fleet, where a passphrase must be configured."""
    return settings.home / AUTO_KEY_FILE if settings.mode == "embedded" else None


def _generate_auto_key(path: Path, where: str) -> str:
    """Create the embedded passphrase file (random, mode 0600) unless it exists; return the
    passphrase. Says loudly where it is: without it the repository cannot be read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(32)
    # written whole under a temporary name, then linked into place (fails when it exists):
    # a backup starting beside the first one never reads a created but still empty file
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(secret + "\n")
        f.flush()
        os.fsync(f.fileno())
    try:
        os.link(tmp, path)
    except FileExistsError:
        return path.read_text(encoding="utf-8").splitlines()[0]
    finally:
        tmp.unlink()
    log.warning("creating the repository in %s, encrypted with a generated passphrase kept in "
                "%s — keep a copy of it somewhere else: without it these backups cannot be "
                "restored (or set your own: VOLKEEPER_REPOSITORY_PASSWORD)", where, path)
    return secret


def open_repo(backend: Backend, settings: Settings, *, create: bool = False,
              chunking_from: Repository | None = None) -> Repository:
    """Open the target's repository; with ``create``, initialise it when there is none
    (sharing ``chunking_from``'s chunking, for the destination of a copy).
    Raises InvalidInput when neither a passphrase nor unencrypted mode is configured,
    WrongPassphrase when the passphrase opens no key file of the repository."""
    secret = passphrase(settings)
    auto = auto_key_path(settings)
    if secret is None and not settings.repository_unencrypted:
        if not create or auto is None:
            raise InvalidInput(f"no passphrase for the repository in {backend.display}",
                               _NO_PASSWORD)
        secret = _generate_auto_key(auto, backend.display)
    if (auto is not None and settings.repository_password_file is None
            and settings.repository_password is None and auto.exists()):
        settings = settings.model_copy(update={"repository_password_file": auto})
    try:
        return _open(backend, secret, settings)
    except NotFound:
        if not create:
            raise
        if is_expected(backend.display):
            raise StorageError(
                f"the repository in {backend.display} is missing, yet the catalog lists "
                "backups stored in it", "check that the target is mounted and reachable "
                "(a new repository is not created in its place); if it is lost for good, "
                "forget its backups (volkeeper forget ID) and back up again") from None
    with _init_lock:  # concurrent first backups in this process: one creates, others open
        try:
            return open_repository(backend, secret)
        except NotFound:
            pass
        if secret is not None:
            check_new_passphrase(secret)
        with contextlib.suppress(Conflict):  # another worker created it meanwhile
            init_repository(backend, secret, unencrypted=secret is None,
                            kdf=new_kdf(settings.repository_kdf_n),
                            chunking_from=chunking_from)
        # re-open: if another host initialised at the same instant, its config won and we
        # must use the key that config authenticates with, not the one we generated
        return _open(backend, secret, settings)


def _open(backend: Backend, secret: str | None, settings: Settings) -> Repository:
    """Open; a wrong passphrase from a key file says which file."""
    try:
        return open_repository(backend, secret)
    except WrongPassphrase as e:
        path = settings.repository_password_file
        if path is None:
            raise
        raise WrongPassphrase(f"{e.message} (passphrase read from the key file {str(path)!r})",
                              "put a passphrase of this repository into that file, or add "
                              "one: volkeeper key add TARGET") from None


def _volume_dir(docker: DockerHost, volume: str, settings: Settings) -> Path | None:
    """The volume's mountpoint, or None: go through the Docker API (``repo_access``)."""
    return direct_path(docker, volume, settings)


def backup_volume(docker: DockerHost, backend: Backend, *, host: str, volume: str,
                  job_id: str, tracker: ProgressTracker, settings: Settings,
                  safety: bool = False, excludes: Excludes = NO_EXCLUDES,
                  dumps: DumpSet | None = None) -> BackupOutcome:
    """Back up ``volume`` of ``host`` as a new snapshot in the target's repository.
    ``safety``: the safety snapshot of a replace-restore (tagged ``safety``; the repository
    must exist already — the backup being restored is in it). ``excludes``: paths left
    out."""
    info = docker.volume(volume)  # NotFound for a missing volume, before touching the target
    path = None if dumps else _volume_dir(docker, volume, settings)
    tracker.set_phase("opening repository")
    repo = open_repo(backend, settings, create=not safety)
    what = "safety snapshot" if safety else "backup"
    tags = [f"job:{job_id}"] + ([SAFETY_TAG] if safety else [])
    left_out: list[str] = []
    # the shared lock keeps prune/forget away while we write (many backups share it)
    with backup_lock(repo, f"{what} job {job_id} of {host}/{volume}",
                     retry_for=LOCK_RETRY_SECONDS) as lock:
        parent = regular_parent(repo, host, volume)
        if dumps:
            snap = backup_streams(repo, dumps.streams(), directory=DUMPS_DIRECTORY,
                                  host=host, volume=volume, tags=tags, parent=parent,
                                  progress=tracker, before_commit=lock.refresh)
        else:
            with _estimated_totals(tracker, parent, path, info.size_bytes):
                # refresh re-reads the lock: removed, or not refreshed in time, means lost
                snap = backup_content(docker, repo, path, host=host, volume=volume,
                                      tags=tags, parent=parent, progress=tracker,
                                      before_commit=lock.refresh, excludes=excludes,
                                      left_out=left_out)
    return BackupOutcome(
        key=ids.snapshot_key(snap.id), manifest_key="", format=FORMAT,
        stored_bytes=snap.stats.new_bytes, logical_bytes=snap.stats.bytes,
        file_count=snap.stats.files, checksum="", snapshot_id=snap.id.hex(),
        excludes=excludes.patterns, excluded_entries=len(left_out))


def regular_parent(repo: Repository, host: str, volume: str) -> Snapshot | None:
    """The newest snapshot of ``volume`` on ``host`` that is not a safety snapshot: the
    parent of its next backup (or safety snapshot)."""
    snaps = [s for s in list_snapshots(repo, host=host, volume=volume)
             if SAFETY_TAG not in s.tags]
    return snaps[-1] if snaps else None


@contextlib.contextmanager
def _estimated_totals(tracker: ProgressTracker, parent: Snapshot | None, path: Path | None,
                      measured: int | None) -> Iterator[None]:
    """Give the backup phase estimated totals (content bytes and files) while the block
    runs: the parent snapshot's, so an incremental backup scans nothing more; else a scan
    of the mountpoint beside the backup; else Docker's measure of the volume, if any."""
    if parent is not None:
        tracker.expect(BACKUP_PHASE, parent.stats.bytes, parent.stats.files)
    elif path is None and measured is not None:
        tracker.expect(BACKUP_PHASE, measured)
    if parent is not None or path is None:
        yield
        return
    with scanning(path, lambda size: tracker.expect(BACKUP_PHASE, size.bytes, size.files)):
        yield


def snapshot_id(backup: StoredBackup) -> bytes:
    """The snapshot id a catalog row of format ``repo`` names."""
    try:
        return ids.parse_id(backup.snapshot_id)
    except InvalidInput:
        raise IntegrityError(f"backup {backup.id} does not name a valid snapshot id",
                             "back the volume up again") from None


def load_backup(backend: Backend, backup: StoredBackup,
                settings: Settings) -> tuple[Repository, Snapshot]:
    """Open the repository and load (authenticate) the backup's snapshot."""
    repo = open_repo(backend, settings)
    return repo, load_snapshot(repo, snapshot_id(backup))


def missing_paths(repo: Repository, snap: Snapshot, paths: list[str]) -> list[str]:
    """The volume-relative ``paths`` that are not in the snapshot."""
    repo.load_index()
    missing = []
    for p in paths:
        tree_id: bytes | None = snap.tree
        parts = [x for x in p.strip("/").split("/") if x]
        for i, part in enumerate(parts):
            node = repo.read_tree(tree_id).by_name().get(part) if tree_id else None
            if node is None:
                missing.append(p)
                break
            tree_id = node.subtree if i < len(parts) - 1 else None
    return missing


def restore_into(docker: DockerHost, backend: Backend, backup: StoredBackup, *, volume: str,
                 tracker: ProgressTracker, settings: Settings,
                 paths: list[str] | None = None,
                 then: Callable[[Repository, Snapshot, Path], None] | None = None
                 ) -> RestoreStats:
    """Restore the backup's snapshot (only ``paths`` when given) into the existing, empty
    ``volume``. Raises IntegrityError naming the files it could not restore, and Refused
    for device nodes unless ``VOLKEEPER_RESTORE_DEVICE_NODES`` is set or the backup is a
    safety snapshot (the volume's own previous content). ``then(repo, snapshot, path)``
    runs right after a restore that wrote the volume's directory directly (not through
    the Docker API), still under its lock, with the repository's index loaded (a
    migration's pre-copy records what it wrote: ``migration_steps.PrecopyRecord``)."""
    path = _volume_dir(docker, volume, settings)
    if path is None and settings.volume_access != "docker-api":
        # a bind volume's directory: full fidelity (holes, xattrs, ns times), which the
        # archive API loses, and a migration's pre-copy records what it wrote (``then``)
        path = bound_dir(docker, volume)
    repo, snap = load_backup(backend, backup, settings)
    what = f"backup {backup.id}" if backup.id else f"safety snapshot {backup.snapshot_id[:8]}"
    with backup_lock(repo, f"restore of {what}", retry_for=LOCK_RETRY_SECONDS):
        stats = restore_content(docker, repo, snap, path, volume=volume, settings=settings,
                                paths=paths, progress=tracker,
                                devices=settings.restore_device_nodes
                                or backup.kind == "safety")
        if then is not None and path is not None:
            then(repo, snap, path)
        return stats

