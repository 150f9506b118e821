"""How the native repository reads and writes a volume: through its mountpoint when the
worker sees it, else as a tar stream through Docker's archive API (docs/volume-access.md).

``path`` is what ``access.direct_path`` returned: the mountpoint, or None for the
docker-api path. Direct: ``archiver.backup_directory`` (incremental against ``parent``)
and ``restorer.restore_snapshot``. Docker API: ``tar_ingest.backup_tar_stream`` on
``archive_source`` (every file is read: the stream has no inode/ctime; dedup still stores
nothing twice) and ``tar_export.write_snapshot_tar`` piped into ``archive_sink``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from common.archive.excludes import NO_EXCLUDES, Excludes
from common.archive.reader import CheckedSink, ExtractPolicy
from common.config import Settings
from common.docker import DockerHost
from common.engine.access import tar_sink
from common.progress import ProgressTracker
from common.repository import Repository
from common.repository.backup.archiver import backup_directory
from common.repository.core.snapshot import Snapshot

if TYPE_CHECKING:
    from common.repository.restore.restorer import RestoreStats


def backup_content(docker: DockerHost, repo: Repository, path: Path | None, *, host: str,
                   volume: str, tags: Sequence[str], parent: Snapshot | None,
                   progress: ProgressTracker,
                   before_commit: Callable[[], None] | None = None,
                   excludes: Excludes = NO_EXCLUDES,
                   left_out: list[str] | None = None) -> Snapshot:
    """Back up the volume's content as a new snapshot of ``repo`` (``before_commit``:
    called right before the snapshot is written, e.g. to confirm the lock holds), without
    what ``excludes`` matches (those paths are appended to ``left_out``)."""
    if path is not None:
        return backup_directory(repo, path, host=host, volume=volume, tags=tags,
                                parent=parent, progress=progress, before_commit=before_commit,
                                excludes=excludes, left_out=left_out)
    from common.repository.backup.tar_ingest import backup_tar_stream

    with docker.archive_source(volume) as stream:
        return backup_tar_stream(repo, stream, host=host, volume=volume, tags=tags,
                                 parent=parent, progress=progress, before_commit=before_commit,
                                 excludes=excludes, left_out=left_out)


def restore_content(docker: DockerHost, repo: Repository, snap: Snapshot, path: Path | None,
                    *, volume: str, settings: Settings, paths: list[str] | None,
                    progress: ProgressTracker, devices: bool = False) -> RestoreStats:
    """Restore ``snap`` (only ``paths`` when given) into the existing, empty volume.
    Device nodes are refused (``Refused``) unless ``devices``."""
    # the restore side loads with the first restore (a backup does without it)
    from common.repository.restore.restorer import restore_snapshot
    from common.repository.restore.tar_export import write_snapshot_tar

    if path is not None:
        return restore_snapshot(repo, snap, path, paths=paths, progress=progress,
                                devices=devices)
    with tar_sink(docker, volume, settings) as sink:
        out = sink if devices else CheckedSink(sink, ExtractPolicy(allow_devices=False),
                                               f"snapshot {snap.id.hex()[:8]}")
        return write_snapshot_tar(repo, snap, out,  # type: ignore[arg-type]
                                  paths=paths, progress=progress)
