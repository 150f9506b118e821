"""Verify a backup.

Archives: the stored object's checksum, full decompression, and a walk of the tar compared
member by member with the manifest (type, size, mode, owner, mtime, sha256 …) — always the
whole archive: ``read_data`` changes nothing (the data is always read), and a ``subset``
is refused (an archive is one compressed stream; a sample of it proves nothing about the
rest). Repository snapshots: see ``repo_verify.verify`` (structure by default, all data
with ``read_data``, a random share of the snapshot's packs with ``subset_percent``).

Damage is reported, never raised: the outcome lists exactly which objects and which files
are affected. Only failures to *reach* the storage raise (they say nothing about the data).
"""

from __future__ import annotations

import io
from typing import Any

from common.archive import check_format, read_manifest, verify_archive
from common.config import Settings
from common.engine import repo_verify
from common.engine.records import StoredBackup, VerifyOutcome
from common.errors import IntegrityError, InvalidInput, NotFound
from common.progress import ProgressTracker
from common.storage.base import Backend

SUBSET_ARCHIVE = ("--subset applies to repository backups only: an archive is one "
                  "compressed stream and is always verified whole")
SUBSET_HINT = "verify without --subset (the whole archive is read)"


def verify_backup(backend: Backend, backup: StoredBackup, tracker: ProgressTracker,
                  settings: Settings, *, read_data: bool = False,
                  subset_percent: float | None = None,
                  seed: int | None = None) -> VerifyOutcome:
    """Verify one backup; damage is reported in the outcome, not raised."""
    if backup.format == "repo":
        return repo_verify.verify(backend, backup, tracker, settings, read_data=read_data,
                                  subset_percent=subset_percent, seed=seed)
    if subset_percent is not None:
        raise InvalidInput(SUBSET_ARCHIVE, SUBSET_HINT)
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
