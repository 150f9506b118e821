"""The ``Format`` protocol: everything the engine's use-cases do with a stored backup that
depends on its kind. ``archive.ArchiveFormat`` (tar, tar.gz, tar.zst) and
``repository.RepositoryFormat`` (the native repository) implement it; the use-cases
(backup, restore, validate, verify, compare, replace, drill, stored) choose one once, with
``format_for(name)`` or ``format_of(backup)``, and never look at the format's name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from common.archive import VerifyReport
from common.archive.excludes import NO_EXCLUDES, Excludes
from common.config import Settings
from common.docker import DockerHost
from common.engine.records import (
    BackupOutcome,
    Check,
    CopyOutcome,
    Restored,
    StoredBackup,
    VerifyOutcome,
)
from common.formats import Traits
from common.progress import ProgressTracker
from common.storage.base import Backend

if TYPE_CHECKING:
    from common.hooks.dumps import DumpSet


class Format(Protocol):
    """One kind of backup. Methods that take a ``StoredBackup`` are called only with
    backups of this format. Progress: each method sets its phases and their totals on
    ``tracker``, in the units its ``add`` calls count."""

    traits: Traits

    @property
    def name(self) -> str: ...

    def backup(self, docker: DockerHost, backend: Backend, *, host: str, volume: str,
               job_id: str, tracker: ProgressTracker, settings: Settings,
               area: str = "archives", excludes: Excludes = NO_EXCLUDES,
               dumps: DumpSet | None = None) -> BackupOutcome:
        """Back up ``volume`` of ``host`` into ``backend``, without the paths ``excludes``
        matches — or, with ``dumps``, the database dumps they stream instead of the
        volume's files (``common.hooks.dumps``). Raises NotFound for a missing volume;
        nothing is left in storage when it fails."""
        ...

    def safety_snapshot(self, docker: DockerHost, backend: Backend, *, host: str,
                        volume: str, job_id: str, tracker: ProgressTracker,
                        settings: Settings) -> BackupOutcome:
        """Keep a volume's current content before a replace-restore of a backup of this
        format overwrites it (rolled back with ``restore`` of the safety snapshot)."""
        ...

    def check_stored(self, backend: Backend, backup: StoredBackup, settings: Settings,
                     paths: Sequence[str] | None) -> list[Check]:
        """A restore's quick checks of the stored side: the backup's objects are there
        (and every selected path is in it). Failures are checks, not exceptions."""
        ...

    def selected_totals(self, backend: Backend, backup: StoredBackup, settings: Settings,
                        paths: Sequence[str]) -> tuple[int, int]:
        """The regular files below ``paths`` and their bytes (what a restore of those
        paths writes), as the backup's totals count the whole backup. Raises
        VolkeeperError when the stored side cannot be read."""
        ...

    def read_files(self, backend: Backend, backup: StoredBackup, settings: Settings,
                   directory: str) -> Iterator[tuple[str, BinaryIO]]:
        """(name, readable) of each regular file directly in ``directory`` of the backup,
        in order, without restoring it (``members``); each stream is readable until the
        next is asked for. None when the directory is absent."""
        ...

    def restore(self, docker: DockerHost, backend: Backend, backup: StoredBackup, *,
                volume: str, tracker: ProgressTracker, settings: Settings,
                paths: list[str] | None = None,
                then: Callable[..., None] | None = None) -> Restored:
        """Write the backup (only ``paths`` when given) into the existing, empty volume.
        Raises IntegrityError for damaged data, Refused for what policy does not accept.
        ``then``: the repository's restore calls it right after the content is written
        (``repo.restore_into``); other formats never do."""
        ...

    def verify(self, backend: Backend, backup: StoredBackup, tracker: ProgressTracker,
               settings: Settings, *, read_data: bool = False,
               subset_percent: float | None = None, seed: int | None = None) -> VerifyOutcome:
        """Check the stored backup; damage is reported in the outcome, not raised."""
        ...

    def compare(self, docker: DockerHost, backend: Backend, backup: StoredBackup,
                volume: str, settings: Settings, tracker: ProgressTracker) -> VerifyReport:
        """Compare the volume's content with the backup, entry by entry (drills and
        replace-restores, after the restore)."""
        ...

    def forget(self, backend: Backend, backup: StoredBackup,
               settings: Settings) -> dict[str, Any]:
        """Delete the backup's stored objects (already gone is not an error)."""
        ...

    def copy(self, src: Backend, dst: Backend, backup: StoredBackup, *,
             src_settings: Settings, dst_settings: Settings,
             tracker: ProgressTracker) -> CopyOutcome:
        """Copy the backup to another target; nothing is left at ``dst`` on failure."""
        ...

    def apply_labels(self, backend: Backend, backup: StoredBackup, settings: Settings, *,
                     tags: Sequence[str], pinned: bool) -> bool:
        """Write tags and pin into the stored backup where the format keeps them
        (``traits.labels_in_storage``); returns whether anything was rewritten."""
        ...

    def list_dir(self, backend: Backend, backup: StoredBackup, settings: Settings,
                 path: str) -> dict[str, Any]:
        """One directory level of the backup (``common.engine.browse``): ``{path,
        entries: [{name, type, size, mtime}], more}``; NotFound for a missing path."""
        ...
