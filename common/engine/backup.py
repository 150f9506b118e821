"""Back up one volume into a portable archive object plus its manifest.

Write ordering: the archive streams into an upload that becomes visible only at commit, and
commit happens only after GNU tar (or dockerd) reported success and the volume still exists;
the manifest is uploaded after the archive; if that fails the archive is deleted again. So a
listing never shows a half backup, and a failed backup leaves nothing behind.
"""

from __future__ import annotations

import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from common.archive import EXTENSIONS, ManifestWriter, check_format, manifest_key, write_archive
from common.config import Settings
from common.docker import DockerHost
from common.engine import repo
from common.engine.access import direct_path, tar_source
from common.engine.records import BackupOutcome
from common.progress import ProgressTracker
from common.storage.base import Backend


def archive_key(host: str, volume: str, created: datetime, job_id: str, fmt: str,
                area: str = "archives") -> str:
    """``volkeeper/<area>/<host>/<volume>/<UTC time>-<job><ext>``; area ``archives`` for
    backups, ``safety`` for the snapshots a replace-restore takes first."""
    stamp = created.strftime("%Y%m%dT%H%M%SZ")
    ext = EXTENSIONS[check_format(fmt)]
    return f"volkeeper/{area}/{host}/{volume}/{stamp}-{job_id}{ext}"


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
    """Stream ``volume`` of ``host`` into ``backend``. Raises NotFound for a missing volume,
    StorageError for storage failures, DockerError/IntegrityError for read failures.
    Format ``repo`` writes a snapshot into the target's repository instead."""
    if fmt == "repo":
        return repo.backup_volume(docker, backend, host=host, volume=volume, job_id=job_id,
                                  tracker=tracker, settings=settings)
    info = docker.volume(volume)
    created = datetime.now(UTC)
    key = archive_key(host, volume, created, job_id, fmt, area)
    mkey = manifest_key(key)
    tracker.set_phase("scanning")
    path = direct_path(docker, volume, settings)
    total = estimate_size(path) if path is not None else info.size_bytes
    header = {"volume": volume, "host": host, "created_at": created.isoformat(),
              "format": fmt, "archive_key": key, "driver": info.driver, "job_id": job_id}
    with tempfile.TemporaryFile("w+", encoding="utf-8") as spool:
        manifest = ManifestWriter(spool, header)
        tracker.set_phase("backing up", bytes_total=total)
        writer = backend.open_writer(key)
        try:
            with tar_source(docker, volume, settings) as stream:
                stats = write_archive(stream, writer, check_format(fmt), tracker,
                                      manifest=manifest, level=settings.zstd_level, name=key)
            docker.volume(volume)  # vanished while we read it → NotFound, nothing committed
            stored = writer.commit()
        except BaseException:
            writer.abort()
            raise
        tracker.set_phase("writing manifest")
        try:
            spool.seek(0)
            with backend.open_writer(mkey) as mw:
                while chunk := spool.read(1 << 20):
                    mw.write(chunk.encode("utf-8"))
                mw.commit()
        except BaseException:
            backend.delete(key)
            raise
    return BackupOutcome(
        key=key, manifest_key=mkey, format=fmt, stored_bytes=stored.size,
        logical_bytes=stats.file_bytes, file_count=stats.files,
        checksum=stats.archive_sha256)


def estimate_size(path: Path, budget_seconds: float = 2.0) -> int | None:
    """Sum of file sizes under ``path`` for progress/ETA; None if it takes too long."""
    deadline = time.monotonic() + budget_seconds
    total = 0
    stack = [str(path)]
    while stack:
        if time.monotonic() > deadline:
            return None
        try:
            with os.scandir(stack.pop()) as it:
                for e in it:
                    if e.is_dir(follow_symlinks=False):
                        stack.append(e.path)
                    elif e.is_file(follow_symlinks=False):
                        total += e.stat(follow_symlinks=False).st_size
        except OSError:
            continue
    return total
