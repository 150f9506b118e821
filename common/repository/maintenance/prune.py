"""Forget (delete snapshot objects) and prune (reclaim the space nothing references).

Both take the exclusive repository lock, so they refuse to run beside a live backup
(which holds a shared lock for its whole run) and a backup refuses to start beside them.

Prune, in order (``docs/repository-format.md`` §14):

1. Read every index file and list every pack. An unreadable index file stops prune
   (IntegrityError): the packs it describes could hold live blobs.
2. Walk every snapshot's trees and collect the blob ids they reference. A snapshot or
   tree that cannot be read, or a referenced blob that is in no stored pack, stops prune
   — deleting anything then could destroy data the damaged object still needs.
3. Plan: each referenced blob keeps one copy (in the pack with the most live bytes);
   packs without a kept blob are deleted; packs whose unused share exceeds
   ``max_repack_ratio`` are repacked; packs no index names (left by killed backups) are
   deleted once older than ``unindexed_grace``.
4. Repack: copy the kept blobs of those packs — ciphertext unchanged, after verifying it
   decodes — into new packs, and commit them.
5. Write new index files covering every blob of the kept and new packs (each naming the
   old index files it supersedes), **before** deleting anything.
6. Delete the old index files, then the unneeded packs.

Killed at any instant, every index file that exists names only packs that exist, and
every snapshot's blobs are indexed: the repository stays readable; the next prune
finishes the job.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from common.errors import IntegrityError, InvalidInput, NotFound, StorageError
from common.progress import NullTracker, ProgressTracker
from common.repository.core import ids
from common.repository.core.blob import EncodedBlob
from common.repository.core.index import IndexEntry, IndexFile, decode_index, encode_index
from common.repository.core.locks import DEFAULT_STALE_AFTER, RepositoryLock, acquire_lock
from common.repository.core.repository import Repository
from common.repository.core.snapshot import load_snapshot
from common.repository.maintenance.packer import PackSink
from common.repository.maintenance.prune_plan import Plan, plan_prune

DEFAULT_MAX_REPACK_RATIO = 0.5
DEFAULT_UNINDEXED_GRACE = 3600.0
_INDEX_FILE_ENTRIES = 65536
_HINT = "`volkeeper repair TARGET --read-data --dry-run` shows what is damaged"

__all__ = [
    "DEFAULT_MAX_REPACK_RATIO",
    "PruneReport",
    "forget_snapshots",
    "prune",
]


@dataclass
class PruneReport:
    """What prune found and did (or, with ``dry_run``, would do)."""

    dry_run: bool = False
    snapshots: int = 0
    packs: int = 0
    blobs: int = 0
    blobs_live: int = 0
    blobs_removed: int = 0
    packs_deleted: int = 0
    packs_repacked: int = 0
    packs_unindexed_deleted: int = 0
    packs_written: int = 0
    bytes_deleted: int = 0
    bytes_written: int = 0
    index_files_written: int = 0
    index_files_deleted: int = 0
    actions: list[str] = field(default_factory=list)

    @property
    def bytes_reclaimed(self) -> int:
        """Stored bytes freed: deleted and repacked packs minus the new packs."""
        return self.bytes_deleted - self.bytes_written

    def to_dict(self) -> dict[str, object]:
        """JSON form for job records."""
        out: dict[str, object] = {k: v for k, v in vars(self).items() if k != "actions"}
        out["bytes_reclaimed"] = self.bytes_reclaimed
        out["actions"] = self.actions[:1000]
        return out


def forget_snapshots(
    repo: Repository,
    snapshot_ids: list[bytes],
    *,
    force_pinned: bool = False,
    owner: str = "forget",
    stale_after: float = DEFAULT_STALE_AFTER,
    retry_for: float = 0.0,
) -> list[bytes]:
    """Delete the snapshot objects ``snapshot_ids`` under the exclusive lock (waiting up to
    ``retry_for`` seconds for it); returns them.

    All are checked first and nothing is deleted if one is missing (NotFound) or pinned
    (InvalidInput, unless ``force_pinned``). A snapshot too damaged to read can always be
    forgotten. Their data stays until ``prune``.
    """
    wanted = list(dict.fromkeys(snapshot_ids))
    with acquire_lock(repo, exclusive=True, owner=owner, stale_after=stale_after,
                      retry_for=retry_for) as lock:
        pinned = []
        for sid in wanted:
            try:
                if load_snapshot(repo, sid).pinned:
                    pinned.append(sid)
            except IntegrityError:
                continue  # damaged: forgetting it is the remedy
        if pinned and not force_pinned:
            raise InvalidInput(
                f"refusing to forget pinned snapshot(s) "
                f"{', '.join(ids.short(s) for s in pinned)}",
                "unpin them first, or pass force_pinned to forget them anyway",
            )
        lock.check()
        for sid in wanted:
            repo.backend.delete(ids.snapshot_key(sid))
    return wanted


def prune(
    repo: Repository,
    *,
    dry_run: bool = False,
    progress: ProgressTracker | None = None,
    max_repack_ratio: float = DEFAULT_MAX_REPACK_RATIO,
    unindexed_grace: float = DEFAULT_UNINDEXED_GRACE,
    owner: str = "prune",
    stale_after: float = DEFAULT_STALE_AFTER,
) -> PruneReport:
    """Reclaim the space of blobs no snapshot references (see the module docstring).

    ``max_repack_ratio`` (0 to 1): a pack whose unreferenced share of bytes exceeds it is
    rewritten with only its live blobs (0 repacks every pack with any garbage, 1 never
    repacks). ``dry_run`` plans under a shared lock and changes nothing; the report's
    ``actions`` lists what would be done.
    """
    if not 0.0 <= max_repack_ratio <= 1.0:
        raise InvalidInput(f"max_repack_ratio {max_repack_ratio} is not between 0 and 1",
                           "pass a fraction, e.g. 0.5")
    progress = progress or NullTracker()
    with acquire_lock(repo, exclusive=not dry_run, owner=owner,
                      stale_after=stale_after) as lock:
        progress.set_phase("prune: reading index")
        files = _load_index_files(repo)
        try:
            plan = plan_prune(repo, files, max_repack_ratio, unindexed_grace, progress)
            report = _report(plan, dry_run)
            if not dry_run:
                _execute(repo, plan, files, report, lock, progress)
        finally:
            repo.forget_index()  # prune's own, and no longer what is stored
    return report


def _load_index_files(repo: Repository, what: str = "prune") -> dict[bytes, IndexFile]:
    files: dict[bytes, IndexFile] = {}
    for obj in repo.backend.list(ids.INDEX_PREFIX):
        try:
            index_id = ids.id_from_key(obj.key)
            files[index_id] = decode_index(repo.cipher, index_id,
                                           repo.backend.get_bytes(obj.key))
        except (IntegrityError, NotFound, InvalidInput) as exc:
            raise IntegrityError(
                f"{what} refused: index file {obj.key} cannot be read ({exc}); the packs it "
                "lists could hold data that snapshots need",
                "run `volkeeper repair TARGET` (it re-indexes packs from their headers) "
                f"before the {what}",
            ) from None
    return files


def _report(plan: Plan, dry_run: bool) -> PruneReport:
    r = PruneReport(dry_run=dry_run, snapshots=plan.snapshots, packs=len(plan.pack_sizes),
                    blobs=plan.blobs, blobs_live=len(plan.keep))
    for pack_id in plan.delete:
        r.actions.append(f"delete pack {pack_id.hex()} ({plan.pack_sizes[pack_id]} bytes, "
                         "no referenced blob)")
    for pack_id, live in plan.repack.items():
        total = len(plan.pack_entries[pack_id])
        r.actions.append(f"repack pack {pack_id.hex()} ({len(live)} of {total} blobs "
                         f"referenced, {plan.unused_share(pack_id):.0%} unused)")
    for pack_id in plan.unindexed:
        r.actions.append(f"delete unindexed pack {pack_id.hex()} "
                         f"({plan.pack_sizes[pack_id]} bytes, left by an interrupted backup)")
    r.packs_deleted = len(plan.delete)
    r.packs_repacked = len(plan.repack)
    r.packs_unindexed_deleted = len(plan.unindexed)
    gone = [*plan.delete, *plan.repack, *plan.unindexed]
    r.bytes_deleted = sum(plan.pack_sizes[p] for p in gone)
    after = {e.blob_id for p in plan.kept_packs for e in plan.pack_entries[p]}
    after.update(e.blob_id for live in plan.repack.values() for e in live)
    r.blobs_removed = plan.blobs - len(after)
    if dry_run:
        r.bytes_written = sum(e.length for live in plan.repack.values() for e in live)
    if gone or plan.missing_packs:
        r.actions.append(f"write new index files, then delete the {len(plan.index_files)} "
                         "old ones")
    return r


def _execute(repo: Repository, plan: Plan, files: dict[bytes, IndexFile],
             report: PruneReport, lock: RepositoryLock, progress: ProgressTracker) -> None:
    gone = [*plan.delete, *plan.repack, *plan.unindexed]
    if not gone and not plan.missing_packs:
        return  # nothing to reclaim: leave the index files alone
    new_entries = _repack(repo, plan, report, progress)
    entries: list[IndexEntry] = [e for p in plan.kept_packs for e in plan.pack_entries[p]]
    entries.extend(new_entries)
    progress.set_phase("prune: writing index")
    lock.check()
    old = sorted(files)
    for start in range(0, max(len(entries), 1), _INDEX_FILE_ENTRIES):
        chunk = entries[start : start + _INDEX_FILE_ENTRIES]
        index_id = ids.random_id()
        repo.backend.put_bytes(ids.index_key(index_id),
                               encode_index(repo.cipher, index_id, IndexFile(chunk, old)))
        report.index_files_written += 1
    # Only now is anything deleted: first the old index files (every pack they name still
    # exists while they do), then the packs no remaining index file names.
    progress.set_phase("prune: deleting", files_total=len(old) + len(gone))
    lock.check()
    for index_id in old:
        repo.backend.delete(ids.index_key(index_id))
        report.index_files_deleted += 1
        progress.add(files=1)
    for pack_id in gone:
        repo.backend.delete(ids.pack_key(pack_id))
        progress.add(plan.pack_sizes[pack_id], 1)


def _repack(repo: Repository, plan: Plan, report: PruneReport,
            progress: ProgressTracker) -> list[IndexEntry]:
    if not plan.repack:
        return []
    progress.set_phase("prune: repacking",
                       bytes_total=sum(plan.pack_sizes[p] for p in plan.repack),
                       files_total=len(plan.repack))
    with PackSink(repo, write_index=False) as sink:
        for pack_id, live in sorted(plan.repack.items()):
            key = ids.pack_key(pack_id)
            for entry, data in _read_live(repo, key, live):
                try:
                    repo.codec.decode(entry.blob_type, entry.blob_id, data, entry.raw_length)
                except IntegrityError as exc:
                    raise IntegrityError(
                        f"prune stopped before deleting anything: {exc} (in pack "
                        f"{pack_id.hex()}, still referenced)", _HINT) from None
                sink.add(EncodedBlob(entry.blob_id, entry.blob_type, bytes(data),
                                     entry.raw_length, entry.compression))
            progress.add(plan.pack_sizes[pack_id], 1)
        entries = sink.flush()
        report.packs_written = sink.packs_written
        report.bytes_written = sum(repo.backend.stat(ids.pack_key(p)).size
                                   for p in {e.pack_id for e in entries})
    return entries


def _read_live(repo: Repository, key: str, live: list[IndexEntry]
               ) -> Iterable[tuple[IndexEntry, memoryview]]:
    """The stored bytes of each live blob of one pack, from one ranged read spanning them."""
    start = min(e.offset for e in live)
    end = max(e.offset + e.length for e in live)
    try:
        data = memoryview(repo.backend.read_range(key, start, end - start))
    except (NotFound, StorageError) as exc:
        raise IntegrityError(f"prune stopped before deleting anything: cannot read {key} "
                             f"({exc})", _HINT) from None
    for e in sorted(live, key=lambda e: e.offset):
        if e.offset + e.length - start > len(data):
            raise IntegrityError(f"prune stopped before deleting anything: {key} is truncated",
                                 _HINT)
        yield e, data[e.offset - start : e.offset - start + e.length]
