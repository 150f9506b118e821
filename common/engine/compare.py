"""Compare a volume's current content with a backup's manifest, member by member (type,
size, mode, owner, link target, xattrs, sparseness, sha256 of content)."""

from __future__ import annotations

import io

from common.archive import VerifyReport, read_manifest, verify_archive
from common.config import Settings
from common.docker import DockerHost
from common.engine.access import tar_source
from common.engine.records import StoredBackup
from common.progress import ProgressTracker
from common.storage.base import Backend


def compare_volume(docker: DockerHost, backend: Backend, backup: StoredBackup, volume: str,
                   settings: Settings, tracker: ProgressTracker) -> VerifyReport:
    tracker.set_phase("comparing", bytes_total=backup.logical_bytes)
    with backend.open_reader(backup.manifest_key) as raw, \
            io.TextIOWrapper(raw, encoding="utf-8") as text, \
            tar_source(docker, volume, settings) as stream:
        # entries only: the archive-level checksum belongs to the stored object, not to
        # this fresh tar of the volume
        return verify_archive(stream, "tar", read_manifest(text).entries(), tracker,
                              name=f"volume {volume}")
