"""Restore drills: prove a backup restores, and measure how long it takes.

A drill restores the backup into a scratch volume on the chosen host (through the normal
restore path, validation included), reads the restored volume back as a tar stream and
compares every member — type, size, mode, owner, symlink target, xattrs, sparseness and
the sha256 of its content — with the backup's manifest. The scratch volume is always
removed. The measured restore time is the volume's real recovery time on that host.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from common.config import Settings
from common.docker import DockerHost
from common.engine.compare import compare_volume
from common.engine.records import StoredBackup
from common.engine.restore import restore_backup
from common.errors import NotFound
from common.progress import ProgressTracker
from common.storage.base import Backend


@dataclass
class DrillOutcome:
    passed: bool
    backup_id: str
    host: str
    scratch_volume: str
    restore_seconds: float
    compare_seconds: float
    bytes_restored: int
    files_restored: int
    throughput_bytes_per_s: float
    entries_checked: int = 0
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0

    def as_result(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        first = "; ".join(self.problems[:3])
        more = f" (+{self.problem_count - 3} more)" if self.problem_count > 3 else ""
        return (f"restore drill of backup {self.backup_id} on {self.host} failed: the restored "
                f"volume differs from the backup: {first}{more}")


def run_drill(docker: DockerHost, backend: Backend, backup: StoredBackup, *, host: str,
              scratch: str, tracker: ProgressTracker, settings: Settings) -> DrillOutcome:
    started = time.monotonic()
    try:
        restored = restore_backup(docker, backend, backup, volume=scratch, tracker=tracker,
                                  settings=settings, host=host)
        restore_seconds = time.monotonic() - started
        compare_started = time.monotonic()
        report = compare_volume(docker, backend, backup, scratch, settings, tracker)
        compare_seconds = time.monotonic() - compare_started
    finally:
        with contextlib.suppress(NotFound):
            docker.remove_volume(scratch)
    return DrillOutcome(
        passed=report.ok, backup_id=backup.id, host=host, scratch_volume=scratch,
        restore_seconds=round(restore_seconds, 3), compare_seconds=round(compare_seconds, 3),
        bytes_restored=restored.bytes_restored, files_restored=restored.files_restored,
        throughput_bytes_per_s=round(restored.bytes_restored / max(restore_seconds, 1e-6), 1),
        entries_checked=report.entries_checked, problems=report.problems,
        problem_count=report.problem_count)
