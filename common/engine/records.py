"""Plain records the engine's use-cases pass around: a stored backup as the catalog knows
it, and what a backup or a verification produced. Kept apart from the use-cases so that
every engine module (archives and the native repository alike) can import them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from common.units import size


@dataclass(frozen=True)
class StoredBackup:
    """A backup as the catalog knows it. The columns keep one meaning whatever the format
    (see ``common.formats``): ``checksum`` is an archive object's checksum
    (``blake3:<hex>``, or a sha256 hex for older ones: ``common.archive.checksum``; "" for
    snapshots), ``snapshot_id`` a repository snapshot's id ("" for archives)."""

    id: str
    key: str
    manifest_key: str
    format: str
    checksum: str
    logical_bytes: int
    file_count: int
    volume: str
    host: str
    snapshot_id: str = ""
    #: "backup", or "safety": a replace-restore's safety snapshot (the volume's own
    #: previous content, so its restore accepts device nodes)
    kind: str = "backup"

    @classmethod
    def from_row(cls, row: Any) -> StoredBackup:
        return cls(id=row.id, key=row.key, manifest_key=row.manifest_key, format=row.format,
                   checksum=row.checksum, logical_bytes=row.logical_bytes,
                   file_count=row.file_count, volume=row.volume, host=row.host,
                   snapshot_id=row.snapshot_id or "", kind=row.kind or "backup")

    @classmethod
    def safety(cls, out: BackupOutcome, *, host: str, volume: str) -> StoredBackup:
        """The safety snapshot a replace-restore just stored (not catalogued yet: no id)."""
        return cls(id="", key=out.key, manifest_key=out.manifest_key, format=out.format,
                   checksum=out.checksum, logical_bytes=out.logical_bytes,
                   file_count=out.file_count, volume=volume, host=host,
                   snapshot_id=out.snapshot_id, kind="safety")


@dataclass(frozen=True)
class BackupOutcome:
    """What a backup stored: the fields of its catalog row (same meanings as there)."""

    key: str
    manifest_key: str
    format: str
    stored_bytes: int
    logical_bytes: int
    file_count: int
    checksum: str
    snapshot_id: str = ""
    #: the exclude patterns the backup applied, and how many paths they left out (an
    #: excluded directory counts once)
    excludes: tuple[str, ...] = ()
    excluded_entries: int = 0

    def as_result(self) -> dict[str, Any]:
        out = asdict(self)
        out["excludes"] = list(self.excludes)
        return out


@dataclass
class CopyOutcome:
    """What a copy stored on the destination (the fields of its catalog row)."""

    key: str
    manifest_key: str
    checksum: str
    stored_bytes: int
    snapshot_id: str = ""
    tags: list[str] = field(default_factory=list)
    pinned: bool = False
    blobs_stored: int = 0
    blobs_skipped: int = 0

    def as_result(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Restored:
    """What a restore wrote into a volume."""

    bytes: int
    files: int
    entries: int


@dataclass
class Check:
    """One check of a restore's validation."""

    name: str
    ok: bool
    detail: str


def space_check(free: int, where: str, need: int | None) -> Check:
    """A migration's free-space check: ``free`` bytes at ``where`` on the destination
    against the ``need`` of the source (None: not known, so only reported)."""
    if need is not None and free < need:
        return Check("free space", False, f"{size(free)} free at {where}, the volume needs "
                     f"{size(need)} — free space there or migrate elsewhere")
    return Check("free space", True, f"{size(free)} free at {where}"
                 + (f", {size(need)} needed" if need is not None else ""))


@dataclass
class VerifyOutcome:
    ok: bool
    backup_id: str
    entries_checked: int = 0
    archive_sha256: str | None = None
    #: what was checked: "full" (archives: checksum, decompression, every member against
    #: the manifest), "structure", "read-data" or "subset" (repository snapshots)
    scope: str = "full"
    #: repository snapshots: packs the snapshot references, packs whose data was read,
    #: bytes read, and for ``subset`` the share asked for (percent) and the random seed
    packs_referenced: int = 0
    packs_read: int = 0
    bytes_read: int = 0
    subset_percent: float | None = None
    seed: int | None = None
    damaged_objects: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0

    def as_result(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        what = ", ".join(self.damaged_objects) or "archive"
        first = "; ".join(self.problems[:3])
        more = f" (+{self.problem_count - 3} more)" if self.problem_count > 3 else ""
        return f"backup {self.backup_id} is damaged ({what}): {first}{more}"
