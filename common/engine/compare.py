"""Compare a volume's current content with a backup, member by member: type, size, mode,
owner, mtime, link target, xattrs, sparseness and content. Archives are compared with
their manifest (the volume read back as a tar stream; content by sha256); repository
snapshots with their tree (``repo_verify.compare_tree``; content by chunk ids)."""

from __future__ import annotations

import io

from common.archive import VerifyReport, read_manifest, verify_archive
from common.config import Settings
from common.docker import DockerHost
from common.engine import repo_verify
from common.engine.access import direct_path, tar_source
from common.engine.records import StoredBackup
from common.errors import DockerError
from common.progress import ProgressTracker
from common.storage.base import Backend


def compare_volume(docker: DockerHost, backend: Backend, backup: StoredBackup, volume: str,
                   settings: Settings, tracker: ProgressTracker) -> VerifyReport:
    if backup.format == "repo":
        path = direct_path(docker, volume, settings)
        if path is None:
            raise DockerError(f"volume {volume!r} is not directly accessible, so it cannot be "
                              "compared with a repo snapshot",
                              "run the worker on the host as root (or bind-mount "
                              "/var/lib/docker/volumes)")
        return repo_verify.compare_backup(backend, backup, path, settings, tracker)
    tracker.set_phase("comparing", bytes_total=backup.logical_bytes)
    with backend.open_reader(backup.manifest_key) as raw, \
            io.TextIOWrapper(raw, encoding="utf-8") as text, \
            tar_source(docker, volume, settings) as stream:
        # entries only: the archive-level checksum belongs to the stored object, not to
        # this fresh tar of the volume
        return verify_archive(stream, "tar", read_manifest(text).entries(), tracker,
                              name=f"volume {volume}")
