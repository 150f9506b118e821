"""Back up one volume: into a portable archive object plus its manifest, or as a snapshot
of the target's repository — the format's business (``formats``)."""

from __future__ import annotations

from common.config import Settings
from common.docker import DockerHost
from common.engine.formats import format_for
from common.engine.formats.archive import archive_key
from common.engine.records import BackupOutcome
from common.progress import ProgressTracker
from common.storage.base import Backend

__all__ = ["archive_key", "backup_volume"]


def backup_volume(
    docker: DockerHost,
    backend: Backend,
    *,
    host: str,
    volume: str,
    fmt: str,
    job_id: str,
    tracker: ProgressTracker,
    settings: Settings,
    area: str = "archives",
) -> BackupOutcome:
    """Stream ``volume`` of ``host`` into ``backend`` in format ``fmt``. Raises NotFound
    for a missing volume, StorageError for storage failures, DockerError/IntegrityError for
    read failures, InvalidInput for an unknown format."""
    return format_for(fmt).backup(docker, backend, host=host, volume=volume, job_id=job_id,
                                  tracker=tracker, settings=settings, area=area)
