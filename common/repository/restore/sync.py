"""Sync restore: make a directory that holds an earlier copy equal to a snapshot, touching
only what differs (restic 0.17's ``restore --overwrite if-changed --delete``).

This is the cut-over step of a migration: the destination already holds a restore of an
earlier snapshot S1 of the volume; applying S2 must cost a fraction of a full restore.
The snapshot's trees and the destination are walked together, directory by directory
(every directory opened from ``dest`` down, never through a symlink: ``dirfd``), and for
each entry of the snapshot:

- *unchanged*: same type and, for a regular file, same size and mtime (trusted like
  restic's ``if-changed``; ``verify_content=True`` compares the content instead), owner,
  mode and xattrs the snapshot's: nothing is written;
- *metadata only*: owner, mode, mtime or xattrs differ (for a file whose size or mtime
  differ: its content was hashed and equals the snapshot's): those are changed in place;
- *changed file*: rebuilt under a temporary name (``.vksync-<token>-<n>``) in the same
  directory, then renamed over the old one (atomic: a reader sees the old or the new
  file). The chunks the old file still holds at the same offsets (read, keyed hash,
  compared with the snapshot's chunk ids) are copied from it; only the others are read
  from the repository, in the restorer's batches (``restorer``, ``batch``). Holes stay
  holes; xattrs, owner, mode and times are applied as a restore does. With
  ``in_place=True`` (restic's way) only the changed chunks are written, into the file
  itself, and its metadata fixed (not for a hardlinked file, nor one with data where the
  snapshot has holes: those are rebuilt). A file then is torn while it is written, and
  an interrupted sync leaves it with the wrong content — and a current mtime, so the next
  sync rewrites it. Creating an inode is what a changed small file costs most on ext4
  (measured: temporary file + rename ~0.5 ms, rewrite in place ~0.04 ms), so a cut-over,
  whose destination nobody uses until the sync and its verify are done, wants this;
- *type changed* (file, directory, symlink, fifo, device): the old entry is replaced (a
  directory removed with its content first; anything else renamed over);
- *hardlinks*: linked to their first path (a link to another inode is replaced); a
  regular file that shares its inode with an earlier file of the snapshot is rewritten,
  so inodes are shared exactly as in the snapshot;
- entries of the destination the snapshot does not have are deleted (``delete=True``;
  leftovers of an interrupted sync, ``.vksync-*``, are such entries).

A migration's apply knows more (``trust_base=True`` with ``record`` and ``base``: the
caller vouches that ``dest`` holds exactly ``base``, restored or synced to it cleanly and
untouched since, and verifies everything afterwards): entries whose node is the base's
are kept without a look and directories whose subtree is the base's are not entered, so
an apply costs what changed, not what the volume holds (``sync_base``). A plain sync
restore does not trust anything: it walks every entry as above.

Directory metadata is applied last, deepest first (writing into a directory changes its
mtime), then the root's. The destination must not be written by anyone else meanwhile
(the containers using it are stopped); a directory swapped for a symlink is never
followed (``Conflict``). Damaged blobs: every other entry is synced, the old version of
an affected file is kept (rewritten in place, it is incomplete), and ``IntegrityError``
names them. The modules: ``syncer`` (the walk, hardlinks, directories), ``sync_files``
(regular files and the renames), ``sync_fs`` (comparing and changing entries in place).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

from common.errors import Conflict, IntegrityError, NotFound
from common.progress import NullTracker, ProgressTracker
from common.repository.core.repository import Repository
from common.repository.core.snapshot import Snapshot, load_snapshot
from common.repository.restore.restorer import _HINT, READERS
from common.repository.restore.sync_base import BaseChunks, Record
from common.repository.restore.syncer import Syncer, SyncStats
from common.repository.restore.trees import refused
from common.repository.restore.workers import make_runner
from common.repository.system.dirfd import SWAPPED
from common.repository.system.malloc import RESTORE_TRIM_THRESHOLD, keep_freed_memory

__all__ = ["SyncStats", "sync_snapshot"]


def sync_snapshot(repo: Repository, snapshot: Snapshot | bytes, dest_dir: str | os.PathLike[str],
                  *, delete: bool = True, verify_content: bool = False,
                  tracker: ProgressTracker | None = None, workers: int = 4,
                  processes: int | None = 0, devices: bool = True,
                  in_place: bool = False, record: Record | None = None,
                  base: Snapshot | bytes | None = None, trust_base: bool = False
                  ) -> SyncStats:
    """Make the existing directory ``dest_dir`` equal to ``snapshot`` (a ``Snapshot`` or
    its id), writing only what differs (see the module's docstring).

    ``delete``: remove the entries the snapshot does not have. ``verify_content``: compare
    the content of files whose size and mtime match too (hashing them) instead of trusting
    them. ``in_place``: rewrite a changed file (not a hardlink, no data where the snapshot
    has holes) by writing only its changed chunks into it, instead of rebuilding it under
    a temporary name (see the module's docstring). ``workers``/``processes``: as for
    ``restore_snapshot`` (processes: 0 = threads only; None = automatic).
    ``devices=False`` refuses char/block device nodes (Refused, before anything changes).
    ``record`` (a record of ``dest``: ``sync_base.Record``) and ``base`` (the snapshot
    ``dest`` was last restored or synced to, or its id): the chunks a changed file still
    holds are known from them without reading it, where its stat equals its record entry
    (``sync_base``); elsewhere (or when ``base`` cannot be loaded) they are hashed.
    ``trust_base`` (a migration's apply only; needs ``base``, not with ``verify_content``):
    the caller vouches that ``dest`` holds exactly ``base`` — restored or synced to it
    cleanly, nothing written since —, so entries whose node is the base's are kept
    without a look and directories whose subtree is the base's are not entered
    (``sync_base``; the progress counts the files looked at, ``SyncStats.files_held`` and
    ``subtrees_skipped`` what was not); the caller's independent verify must walk
    everything afterwards.
    Raises Conflict when a directory of the destination is swapped while the sync runs
    (nothing is written outside it), IntegrityError naming the files it could not write
    after syncing everything else."""
    dest = os.fspath(dest_dir)
    if not os.path.isdir(dest) or os.path.islink(dest):
        raise Conflict(f"sync target {dest!r} is not a directory",
                       "sync into the directory (volume) an earlier restore wrote")
    progress = tracker or NullTracker()
    keep_freed_memory(RESTORE_TRIM_THRESHOLD)
    repo.load_index()
    snap = snapshot if isinstance(snapshot, Snapshot) else load_snapshot(repo, snapshot)
    progress.set_phase("sync", snap.stats.bytes, snap.stats.files)
    stats = SyncStats()
    s = Syncer(repo, dest, progress, stats, devices, delete, verify_content, in_place)
    if record or (trust_base and base is not None):
        s.base = _base(s, record or {}, base)
        s.trust = trust_base and s.base.root is not None and not verify_content
    stats.trusted = s.trust
    try:
        # trusting: the trees the walk enters read before anything is written
        beside = s.base.prefetch(snap.tree, not devices) if s.trust and s.base else None
        if not devices and (beside if beside is not None
                            else s.trees.has_devices(snap.tree)):
            for rel, node in s.trees.walk(snap.tree, [[]], set()):
                if node.type in ("char", "block"):
                    raise refused(rel, node)
        _run(s, snap, workers, processes)
    except OSError as exc:
        if exc.errno not in SWAPPED or not exc.filename:
            raise
        raise Conflict(f"sync into {dest!r} stopped: {exc.filename!r} is no longer the "
                       f"directory it was ({exc.strerror}); something else is writing into "
                       "the target, nothing was written outside it",
                       "stop the containers using the volume, then sync again") from None
    finally:
        s.fds.close()
    stats.bytes = stats.bytes_fetched + stats.bytes_reused
    if s.damaged or s.broken:
        blobs = ("; ".join(s.damaged.values()) or "; ".join(sorted(set(s.broken.values()))[:5]))
        kept = ("their previous version was kept, unless rewritten in place: then they "
                "are incomplete" if in_place else "their previous version was kept")
        raise IntegrityError(f"sync incomplete: {blobs}; files not synced ({kept}): "
                             f"{', '.join(sorted(s.broken))}", _HINT)
    return stats


def _base(s: Syncer, record: Record, base: Snapshot | bytes | None) -> BaseChunks:
    """What tells the kept chunks of a file without reading it (without ``base``, or when
    it cannot be loaded — pruned, damaged —, only what the record alone tells)."""
    try:
        snap = base if isinstance(base, Snapshot) or base is None else load_snapshot(
            s.repo, base)
    except (IntegrityError, NotFound):
        snap = None
    return BaseChunks(s.trees, s.index, record, None if snap is None else snap.tree)


def _run(s: Syncer, snap: Snapshot, workers: int, processes: int | None) -> None:
    s.runner = make_runner(s.repo, s.dest, snap.stats.files, snap.stats.bytes, workers,
                           processes)
    try:
        with ThreadPoolExecutor(READERS, thread_name_prefix="repo-sync-read") as readers:
            s.readers = readers
            if s.trust and s.base is not None and s.base.root == snap.tree:
                s.skipped.add("")  # the whole tree is the trusted base's (``sync_base``)
                s.stats.subtrees_skipped += 1
            else:
                s.sync_tree(snap.tree, "", s.base.root if s.trust and s.base else None)
            s.sync_links()
            s.drain()
    except BaseException:
        s.runner.close(abort=True)
        raise
    s.runner.close()
    s.finish_dirs(snap.root)
