"""Verify an archive backup: the stored object's checksum, full decompression, and a walk
of the tar compared member by member with the manifest (type, size, mode, owner, sha256 …).

Damage is reported, never raised: the outcome lists exactly which objects and which files
are affected. Only failures to *reach* the storage raise (they say nothing about the data).
"""

from __future__ import annotations

import io
from typing import Any

from common.archive import check_format, read_manifest, verify_archive
from common.config import Settings
from common.engine import repo
from common.engine.records import StoredBackup, VerifyOutcome
from common.errors import IntegrityError, NotFound
from common.progress import ProgressTracker
from common.storage.base import Backend


def verify_backup(backend: Backend, backup: StoredBackup, tracker: ProgressTracker,
                  settings: Settings) -> VerifyOutcome:
    """Verify one backup; damage is reported in the outcome, not raised."""
    if backup.format == "repo":
        return repo.verify(backend, backup, tracker, settings)
    out = VerifyOutcome(ok=True, backup_id=backup.id)

    def damaged(obj: str, problem: str) -> None:
        out.ok = False
        if obj not in out.damaged_objects:
            out.damaged_objects.append(obj)
        out.problems.append(problem)
        out.problem_count += 1

    tracker.set_phase("checking objects")
    try:
        size = backend.stat(backup.key).size
    except NotFound:
        damaged(backup.key, f"archive object {backup.key} is missing from the target")
        size = None
    try:
        manifest_text = backend.get_bytes(backup.manifest_key).decode("utf-8")
    except NotFound:
        damaged(backup.manifest_key, f"manifest {backup.manifest_key} is missing")
        manifest_text = None
    except UnicodeDecodeError:
        damaged(backup.manifest_key, f"manifest {backup.manifest_key} is not valid UTF-8")
        manifest_text = None
    if size is None:
        return out
    tracker.set_phase("verifying", bytes_total=size)
    entries: Any = []
    if manifest_text is not None:
        try:
            entries = read_manifest(io.StringIO(manifest_text))
        except (IntegrityError, ValueError) as e:
            damaged(backup.manifest_key, f"manifest unreadable: {e}")
    with backend.open_reader(backup.key) as reader:
        report = verify_archive(reader, check_format(backup.format), entries, tracker,
                                expected_sha256=backup.checksum, name=backup.key)
    out.entries_checked = report.entries_checked
    out.archive_sha256 = report.archive_sha256
    if not report.ok:
        obj = backup.key
        for p in report.problems:
            damaged(obj, p)
        out.problem_count += report.problem_count - len(report.problems)
    return out
