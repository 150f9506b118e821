"""Repair: rewrite what is still readable of damaged packs, drop the damaged ones.

The model is restic's ``repair packs``: under the exclusive lock, every pack a damage mark
names (``core/damage.py``; with ``read_data`` every pack is read first and what is found
damaged is marked) is read; each of its blobs that still decodes (authenticated,
decompressed, re-hashed) and has no healthy copy elsewhere is appended, ciphertext
unchanged, to new packs. Then, in prune's crash-safe order:

1. new packs are committed;
2. new index files are written: one listing the salvaged blobs, and a replacement of each
   index file that names a damaged pack (its other entries; it ``supersedes`` the old);
3. only now the replaced index files are deleted, then the damaged packs, then the damage
   marks repair handled.

Killed anywhere, the repository checks as before or better: before (2) the new packs are
merely unindexed (prune reclaims them); during (2) old and new index files load side by
side and the marks still hide the damaged copies; after the index deletes the damaged
packs are unindexed; after the pack deletes the marks name packs that are gone (harmless;
the next repair removes them).

Blobs with no readable copy are *lost*: they leave the index (the next backup of a file
that still exists stores them again), and the report names them with the snapshots and
files that need them. ``forget_broken`` (restic's ``repair snapshots --forget``) then
rewrites those snapshots without the broken files (``repair_snapshots.py``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

from common.errors import IntegrityError, InvalidInput, NotFound, StorageError
from common.progress import NullTracker, ProgressTracker
from common.repository.check.pack_verify import verify_pack
from common.repository.core import ids
from common.repository.core.blob import EncodedBlob
from common.repository.core.damage import Damage, read_damage, remove_marks, write_damage
from common.repository.core.index import IndexEntry, IndexFile, encode_index, pack_entry
from common.repository.core.locks import DEFAULT_STALE_AFTER, acquire_lock
from common.repository.core.pack import read_pack_header
from common.repository.core.repository import Repository
from common.repository.maintenance.packer import PackSink
from common.repository.maintenance.prune import _load_index_files
from common.repository.maintenance.repair_snapshots import (
    BrokenSnapshot,
    find_broken,
    forget_broken,
)

#: Called with the name of each step just before it writes or deletes (tests inject
#: failures here to prove each crash point is safe).
FaultHook = Callable[[str], None]


@dataclass
class RepairReport:
    """What repair did (or, with ``dry_run``, would do)."""

    dry_run: bool = False
    packs_damaged: list[str] = field(default_factory=list)
    blobs_salvaged: int = 0
    blobs_lost: list[str] = field(default_factory=list)
    packs_written: int = 0
    packs_deleted: int = 0
    index_files_written: int = 0
    index_files_deleted: int = 0
    marks_removed: int = 0
    packs_reindexed: list[str] = field(default_factory=list)
    broken: list[BrokenSnapshot] = field(default_factory=list)
    snapshots_rewritten: dict[str, str] = field(default_factory=dict)
    actions: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        """JSON form for job records."""
        return {
            "dry_run": self.dry_run, "packs_damaged": self.packs_damaged,
            "blobs_salvaged": self.blobs_salvaged, "blobs_lost": self.blobs_lost,
            "packs_written": self.packs_written, "packs_deleted": self.packs_deleted,
            "index_files_written": self.index_files_written,
            "index_files_deleted": self.index_files_deleted,
            "marks_removed": self.marks_removed, "packs_reindexed": self.packs_reindexed,
            "broken_snapshots": [b.to_dict() for b in self.broken],
            "snapshots_rewritten": self.snapshots_rewritten, "actions": self.actions,
        }


def _no_fault(_: str) -> None:
    return None


def repair(
    repo: Repository,
    *,
    dry_run: bool = False,
    read_data: bool = False,
    forget_broken_snapshots: bool = False,
    owner: str = "repair",
    stale_after: float = DEFAULT_STALE_AFTER,
    progress: ProgressTracker | None = None,
    fault: FaultHook = _no_fault,
) -> RepairReport:
    """Repair the damaged packs of ``repo`` (see the module docstring)."""
    progress = progress or NullTracker()
    report = RepairReport(dry_run=dry_run)
    with acquire_lock(repo, exclusive=not dry_run, owner=owner, stale_after=stale_after) as lock:
        try:
            progress.set_phase("repair: reading index")
            files = _load_index_files(repo, "repair")
            by_pack: dict[bytes, dict[bytes, IndexEntry]] = {}
            for f in files.values():
                for e in f.entries:
                    by_pack.setdefault(e.pack_id, {}).setdefault(e.blob_id, e)
            damage, _ = read_damage(repo.backend, repo.cipher)
            reindexed = _reindex(repo, report, by_pack, damage, fault)
            if read_data:
                found = _read_all(repo, by_pack, progress).without(damage)
                if found and not dry_run:
                    fault("write damage mark")
                    mark = write_damage(repo.backend, repo.cipher, found, "repair --read-data")
                    found.marks = [mark] if mark else []
                damage.merge(found)
            bad = sorted(p for p in damage.affected_packs() if p in by_pack)
            report.packs_damaged = [p.hex() for p in bad]
            gone = set(bad)  # every pack repair deletes: no copy in them counts as healthy
            healthy = {b for p, es in by_pack.items() if p not in gone for b in es}
            salvage, lost = _salvageable(repo, bad, by_pack, healthy, progress)
            report.blobs_salvaged = len(salvage)
            # the healthy view (marks applied) names broken files; a dry run's re-indexed
            # packs are in it only in memory
            repo.load_index().index.add_all(reindexed)
            repo.index.flush()
            report.broken, needed = find_broken(repo, salvage)
            lost |= needed
            report.blobs_lost = sorted(b.hex() for b in lost)
            _describe(report, bad, salvage)
            if dry_run:
                return report
            lock.check()
            _rewrite(repo, report, bad, salvage, files, fault, progress)
            lock.check()
            if forget_broken_snapshots and report.broken:
                repo.load_index()
                report.snapshots_rewritten = forget_broken(repo, report.broken, lost, fault)
            fault("remove damage marks")
            report.marks_removed = remove_marks(repo.backend, damage.marks)
        finally:
            repo.forget_index()
    return report


def _reindex(repo: Repository, report: RepairReport,
             by_pack: dict[bytes, dict[bytes, IndexEntry]], damage: Damage,
             fault: FaultHook) -> list[IndexEntry]:
    """Index the stored packs no index file names (an index file was lost or deleted) from
    their sealed headers, like restic's index repair: only the blobs not indexed
    elsewhere, never a pack a damage mark names or whose header does not authenticate.
    Added to ``by_pack`` (and, unless a dry run, written as one new index file) so the rest
    of the repair sees them. Runs under the exclusive lock: no backup is writing packs."""
    indexed = {b for es in by_pack.values() for b in es}
    skip = damage.affected_packs()
    found: list[IndexEntry] = []
    for obj in repo.backend.list(ids.PACKS_PREFIX):
        try:
            pack_id = ids.id_from_key(obj.key)
        except InvalidInput:  # not a pack name: not ours
            continue
        if pack_id in by_pack or pack_id in skip:
            continue
        try:
            entries = read_pack_header(repo.backend, obj.key, repo.cipher)
        except (IntegrityError, NotFound):
            continue  # unreadable header (or a pack deleted while we listed): not used
        new = [e for e in entries if e.blob_id not in indexed]
        if not new:
            continue
        indexed.update(e.blob_id for e in new)
        by_pack[pack_id] = {e.blob_id: e for e in new}
        found.extend(new)
        report.packs_reindexed.append(pack_id.hex())
        report.actions.append(f"index pack {pack_id.hex()} ({len(new)} blob(s) no index "
                              "file lists)")
    if found and not report.dry_run:
        fault("write index")
        index_id = ids.random_id()
        repo.backend.put_bytes(ids.index_key(index_id),
                               encode_index(repo.cipher, index_id, IndexFile(found)))
        report.index_files_written += 1
    return found


def _read_all(repo: Repository, by_pack: dict[bytes, dict[bytes, IndexEntry]],
              progress: ProgressTracker) -> Damage:
    """Read every indexed pack whole and return what is damaged."""
    found = Damage()
    progress.set_phase("repair: reading packs", files_total=len(by_pack))
    for pack_id, entries in sorted(by_pack.items()):
        try:
            data = repo.backend.get_bytes(ids.pack_key(pack_id))
        except NotFound:
            found.packs.add(pack_id)
            continue
        expected = b"".join(pack_entry(e) for e in entries.values())
        verdict = verify_pack(repo.codec, repo.cipher, pack_id, data, expected)
        if verdict.error is not None:
            found.packs.add(pack_id)
        for blob_id in verdict.unlisted:
            found.add_blob(blob_id, pack_id)
        for blob_id, _ in verdict.damaged:
            found.add_blob(blob_id, pack_id)
        progress.add(len(data), 1)
    return found


def _salvageable(repo: Repository, bad: list[bytes],
                 by_pack: dict[bytes, dict[bytes, IndexEntry]], healthy: set[bytes],
                 progress: ProgressTracker) -> tuple[dict[bytes, EncodedBlob], set[bytes]]:
    """(blob id -> its still readable ciphertext, ids of blobs no copy of which reads) over
    the blobs of the damaged packs that have no healthy copy elsewhere."""
    salvage: dict[bytes, EncodedBlob] = {}
    unread: set[bytes] = set()
    progress.set_phase("repair: reading damaged packs", files_total=len(bad))
    for pack_id in bad:
        needed = [e for b, e in by_pack[pack_id].items() if b not in healthy]
        try:
            data = memoryview(repo.backend.get_bytes(ids.pack_key(pack_id)))
        except NotFound:
            data = memoryview(b"")
        except StorageError as exc:
            raise StorageError(
                f"repair stopped before changing anything: pack {pack_id.hex()} cannot be "
                f"read ({exc})", "check the target's storage is reachable, then run repair "
                "again") from None
        for e in needed:
            if e.blob_id in salvage:
                continue
            blob = data[e.offset : e.offset + e.length]
            try:
                if len(blob) != e.length:
                    raise IntegrityError("truncated", "")
                repo.codec.decode(e.blob_type, e.blob_id, blob, e.raw_length)
            except IntegrityError:
                unread.add(e.blob_id)
                continue
            salvage[e.blob_id] = EncodedBlob(e.blob_id, e.blob_type, bytes(blob),
                                             e.raw_length, e.compression)
        progress.add(len(data), 1)
    return salvage, unread - salvage.keys()


def _describe(report: RepairReport, bad: list[bytes], salvage: dict[bytes, EncodedBlob]) -> None:
    for pack_id in bad:
        report.actions.append(f"rewrite the readable blobs of pack {pack_id.hex()}, "
                              "then delete it")
    if salvage:
        report.actions.append(f"write {len(salvage)} readable blob(s) into new packs")
    for blob_hex in report.blobs_lost:
        report.actions.append(f"blob {blob_hex} is lost (no readable copy)")
    for b in report.broken:
        report.actions.append(f"snapshot {b.snapshot_id} needs lost data: "
                              f"{', '.join(b.paths[:10])}")


def _rewrite(repo: Repository, report: RepairReport, bad: list[bytes],
             salvage: dict[bytes, EncodedBlob], files: dict[bytes, IndexFile],
             fault: FaultHook, progress: ProgressTracker) -> None:
    """New packs, then index files, then deletes (see the module docstring)."""
    gone = set(bad)
    progress.set_phase("repair: writing packs")
    with PackSink(repo, write_index=False) as sink:
        for blob in salvage.values():
            sink.add(blob)
        fault("write packs")
        new_entries = sink.flush()
        report.packs_written = sink.packs_written
    progress.set_phase("repair: writing index")
    replaced = sorted(i for i, f in files.items() if any(e.pack_id in gone for e in f.entries))
    writes: list[IndexFile] = []
    if new_entries:
        writes.append(IndexFile(new_entries))
    for index_id in replaced:
        kept = [e for e in files[index_id].entries if e.pack_id not in gone]
        if kept:
            writes.append(IndexFile(kept, [index_id]))
    for f in writes:
        fault("write index")
        index_id = ids.random_id()
        repo.backend.put_bytes(ids.index_key(index_id), encode_index(repo.cipher, index_id, f))
        report.index_files_written += 1
    progress.set_phase("repair: deleting")
    for index_id in replaced:
        fault("delete index")
        repo.backend.delete(ids.index_key(index_id))
        report.index_files_deleted += 1
    for pack_id in bad:
        fault("delete pack")
        with contextlib.suppress(NotFound):
            repo.backend.delete(ids.pack_key(pack_id))
        report.packs_deleted += 1
