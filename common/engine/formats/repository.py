"""The native repository (``repo``) behind the ``Format`` seam: a backup is one snapshot
of the target's repository (``common.engine.repo`` opens it, backs up and restores;
``repo_verify`` verifies and compares). Tags and pin are written into the snapshot too,
so the repository alone knows them; a forget removes the snapshot (a prune reclaims its
data); a copy moves the snapshot with its blobs, without re-chunking. Verify, forget and
copy load their parts of the repository (check, maintenance) when first called: a backup
does without them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any, BinaryIO

from common.archive import VerifyReport
from common.archive.excludes import NO_EXCLUDES, Excludes
from common.config import Settings
from common.docker import DockerHost
from common.engine import browse, repo
from common.engine.access import direct_path
from common.engine.formats import members
from common.engine.records import (
    BackupOutcome,
    Check,
    CopyOutcome,
    Restored,
    StoredBackup,
    VerifyOutcome,
)
from common.errors import (
    Conflict,
    DockerError,
    IntegrityError,
    InvalidInput,
    NotFound,
    StorageError,
    VolkeeperError,
)
from common.formats import REPO_FORMAT, Traits, traits_of
from common.hooks.dumps import DumpSet
from common.progress import ProgressTracker
from common.repository import ids
from common.repository.core.snapshot import save_snapshot
from common.storage.base import Backend

#: Tags volkeeper itself puts on snapshots (``job:<id>``, and ``safety`` on the safety
#: snapshots of replace-restores); kept when user tags change.
SYSTEM_TAG_PREFIXES = ("job:",)
SYSTEM_TAGS = frozenset({repo.SAFETY_TAG})


def is_system_tag(tag: str) -> bool:
    return tag.startswith(SYSTEM_TAG_PREFIXES) or tag in SYSTEM_TAGS


def user_tags(tags: Sequence[str]) -> list[str]:
    """The tags of a snapshot a user gave (without volkeeper's own tags)."""
    return sorted(t for t in set(tags) if not is_system_tag(t))


class RepositoryFormat:
    traits: Traits = traits_of(REPO_FORMAT)

    @property
    def name(self) -> str:
        return self.traits.name

    def backup(self, docker: DockerHost, backend: Backend, *, host: str, volume: str,
               job_id: str, tracker: ProgressTracker, settings: Settings,
               area: str = "archives", excludes: Excludes = NO_EXCLUDES,
               dumps: DumpSet | None = None) -> BackupOutcome:
        # ``area`` names where archives go; a snapshot is always in the repository
        return repo.backup_volume(docker, backend, host=host, volume=volume, job_id=job_id,
                                  tracker=tracker, settings=settings, excludes=excludes,
                                  dumps=dumps)

    def safety_snapshot(self, docker: DockerHost, backend: Backend, *, host: str,
                        volume: str, job_id: str, tracker: ProgressTracker,
                        settings: Settings) -> BackupOutcome:
        """A snapshot in the same (encrypted) repository, tagged ``safety``: incremental
        against the volume's latest regular snapshot, never the parent of a backup.

        Its data is read back before the volume is touched: deduplication shares blobs
        with the backup being restored, so damage that fails the restore would fail the
        roll-back too. A damaged safety snapshot is forgotten again and the replace
        refused (IntegrityError naming the damage) with the volume unchanged."""
        from common.engine import repo_verify

        tracker.set_phase("safety snapshot")
        out = repo.backup_volume(docker, backend, host=host, volume=volume, job_id=job_id,
                                 tracker=tracker, settings=settings, safety=True)
        stored = StoredBackup.safety(out, host=host, volume=volume)
        check = repo_verify.verify(backend, stored, tracker, settings, read_data=True)
        if check.ok:
            return out
        with contextlib.suppress(VolkeeperError):  # else a prune-time leftover, tagged safety
            self.forget(backend, stored, settings)
        raise IntegrityError(
            f"the safety snapshot of volume {volume!r} cannot be read back, so the replace "
            f"was not started and the volume is unchanged: {'; '.join(check.problems[:3])}",
            "the repository holds damaged data this volume's content shares; verify the "
            "backups of this target (volkeeper verify ID --read-data), forget the damaged "
            "ones, back the volume up again, then retry")

    def check_stored(self, backend: Backend, backup: StoredBackup, settings: Settings,
                     paths: Sequence[str] | None) -> list[Check]:
        """"Objects present" means the snapshot opens and authenticates (and every
        selected path is in it)."""
        try:
            repository, snap = repo.load_backup(backend, backup, settings)
        except (NotFound, StorageError, IntegrityError) as e:
            return [Check("snapshot present", False,
                          f"snapshot {backup.snapshot_id[:8]} cannot be loaded: {e}")]
        checks = [Check("snapshot present", True,
                        f"{backup.key} (snapshot of {snap.volume} on {snap.host})")]
        if not paths:
            return checks
        try:
            missing = repo.missing_paths(repository, snap, list(paths))
        except (NotFound, StorageError, IntegrityError) as e:
            checks.append(Check("selected paths", False,
                                f"cannot read the snapshot to check the paths: {e}"))
            return checks
        checks.append(Check("selected paths", False,
                            f"not in the backup: {', '.join(missing[:10])}") if missing else
                      Check("selected paths", True, f"{len(paths)} path(s) found in the "
                            "backup"))
        return checks

    def selected_totals(self, backend: Backend, backup: StoredBackup, settings: Settings,
                        paths: Sequence[str]) -> tuple[int, int]:
        """Walks the selected parts of the snapshot's trees (file nodes carry sizes)."""
        from common.repository.restore.trees import Trees

        repository, snap = repo.load_backup(backend, backup, settings)
        repository.load_index()
        selectors = [[x for x in p.strip().strip("/").split("/") if x not in ("", ".")]
                     for p in paths]
        files, nbytes, _ = Trees(repository, 0).scan(snap.tree, selectors, devices=True)
        return files, nbytes

    def read_files(self, backend: Backend, backup: StoredBackup, settings: Settings,
                   directory: str) -> Iterator[tuple[str, BinaryIO]]:
        return members.repo_files(backend, backup, settings, directory)

    def restore(self, docker: DockerHost, backend: Backend, backup: StoredBackup, *,
                volume: str, tracker: ProgressTracker, settings: Settings,
                paths: list[str] | None = None,
                then: Callable[..., None] | None = None) -> Restored:
        stats = repo.restore_into(docker, backend, backup, volume=volume, tracker=tracker,
                                  settings=settings, paths=paths, then=then)
        return Restored(bytes=stats.bytes, files=stats.files,
                        entries=stats.files + stats.dirs)

    def verify(self, backend: Backend, backup: StoredBackup, tracker: ProgressTracker,
               settings: Settings, *, read_data: bool = False,
               subset_percent: float | None = None, seed: int | None = None) -> VerifyOutcome:
        from common.engine import repo_verify

        return repo_verify.verify(backend, backup, tracker, settings, read_data=read_data,
                                  subset_percent=subset_percent, seed=seed)

    def compare(self, docker: DockerHost, backend: Backend, backup: StoredBackup,
                volume: str, settings: Settings, tracker: ProgressTracker) -> VerifyReport:
        path = direct_path(docker, volume, settings)
        if path is None:
            raise DockerError(f"volume {volume!r} is not directly accessible, so it cannot "
                              "be compared with a repo snapshot",
                              "run the worker on the host as root (or bind-mount "
                              "/var/lib/docker/volumes)")
        from common.engine import repo_verify

        return repo_verify.compare_backup(backend, backup, path, settings, tracker)

    def forget(self, backend: Backend, backup: StoredBackup,
               settings: Settings) -> dict[str, Any]:
        """A pinned snapshot is refused (Conflict): the repository's own pin wins."""
        from common.repository.maintenance.prune import forget_snapshots

        try:
            repository = repo.open_repo(backend, settings)
        except NotFound:  # no config: with no object of a repository at all (lost, or the
            # target not mounted) nothing is to delete and the catalog entry goes (a
            # repository found again still holds the snapshot: nothing was deleted)
            if next(iter(backend.list(ids.PREFIX)), None) is not None:
                raise
            return {"deleted_objects": [], "repository_missing": True}
        sid = repo.snapshot_id(backup)
        try:
            gone = forget_snapshots(repository, [sid],
                                    owner=f"forget of backup {backup.id or backup.key}",
                                    retry_for=repo.FORGET_LOCK_RETRY_SECONDS)
        except NotFound:
            gone = []  # already deleted (an earlier forget stopped before the catalog)
        except InvalidInput as e:  # pinned in the repository
            raise Conflict(f"backup {backup.id}: {e.message}",
                           f"unpin it first: volkeeper unpin {backup.id}") from None
        return {"deleted_objects": [ids.snapshot_key(s) for s in gone],
                "reclaimed_bytes_hint": "run a prune of the target to reclaim the data only "
                                        "this snapshot referenced (volkeeper prune TARGET)"}

    def copy(self, src: Backend, dst: Backend, backup: StoredBackup, *,
             src_settings: Settings, dst_settings: Settings,
             tracker: ProgressTracker) -> CopyOutcome:
        """The destination repository is created on first use, like a backup's."""
        from common.repository.maintenance.copy import CopyStats, copy_snapshot

        tracker.set_phase("opening repositories")
        src_repo, snap = repo.load_backup(src, backup, src_settings)
        dst_repo = repo.open_repo(dst, dst_settings, create=True, chunking_from=src_repo)
        stats = CopyStats()
        copied = copy_snapshot(src_repo, dst_repo, snap, progress=tracker, stats=stats,
                               owner=f"copy of backup {backup.id}")
        return CopyOutcome(key=ids.snapshot_key(copied.id), manifest_key="", checksum="",
                           snapshot_id=copied.id.hex(), stored_bytes=stats.bytes_stored,
                           tags=user_tags(copied.tags), pinned=copied.pinned,
                           blobs_stored=stats.blobs_stored, blobs_skipped=stats.blobs_skipped)

    def apply_labels(self, backend: Backend, backup: StoredBackup, settings: Settings, *,
                     tags: Sequence[str], pinned: bool) -> bool:
        """Make the snapshot carry ``tags`` (plus volkeeper's own ``job:`` tags) and
        ``pinned``; returns whether it had to be rewritten."""
        repository, snap = repo.load_backup(backend, backup, settings)
        system = {t for t in snap.tags if is_system_tag(t)}
        wanted = sorted(system | set(tags))
        if sorted(set(snap.tags)) == wanted and snap.pinned == pinned:
            return False
        snap.tags, snap.pinned = wanted, pinned
        save_snapshot(repository, snap)
        return True

    def list_dir(self, backend: Backend, backup: StoredBackup, settings: Settings,
                 path: str) -> dict[str, Any]:
        return browse.repo_listing(backend, backup, settings, path)
