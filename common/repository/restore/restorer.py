"""Restore a snapshot (or selected paths of it) into an empty directory, with full fidelity.

The restore streams: memory does not grow with the number of files.

1. *scan* (only when needed): with ``paths``, the selected subtrees are walked first to
   find paths the snapshot lacks (NotFound) and device nodes (Refused with
   ``devices=False``) before anything is created, and to count the work; a full restore
   with ``devices=False`` only looks for device nodes (``trees.has_devices``).
   Trees read here are kept (up to a budget) for step 2.
2. *walk and write*: the snapshot's trees are walked in order (every name checked:
   no '/', '.', '..'); directories are created at once (0700 for now); every other
   entry goes into the current *batch* (at most ``BATCH_FILES`` entries and
   ``BATCH_BYTES`` of data). A full batch's pack ranges are read (one ranged read per
   run of needed blobs in a pack) and the batch is handed to a ``BatchWriter``
   (``batch``) — in threads, or for large restores in worker processes
   (``workers``) so both cores work — which verifies every blob (decrypt,
   decompress, re-hash), creates each file with one ``open``, ``pwrite``s its data
   (holes never written: sparse files stay sparse) and gives it owner, xattrs, mode and
   times through the same descriptor. Then the batch is dropped. A file with more data
   than a batch is created here and written in parts by several batches; its metadata
   is applied when the last part is written.
3. *finish*: hardlinks (kept aside during the walk) are linked to their first path when
   that was restored as a regular file, else restored with their own content; then
   directories get their metadata deepest first (so writing into a directory does not
   disturb its restored mtime or a read-only mode), then the root.

What stays for the whole restore: the directories' metadata, the hardlink nodes and
the damaged blobs / incomplete files. A blob that fails verification does not stop the
restore: every other file is written, then an IntegrityError names the damaged blobs
and exactly which files are incomplete.
"""

from __future__ import annotations

import os
import stat
from collections import deque
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from common.errors import Conflict, IntegrityError, NotFound
from common.progress import NullTracker, ProgressTracker
from common.repository.core.index import IndexEntry
from common.repository.core.repository import Repository
from common.repository.core.snapshot import Snapshot
from common.repository.core.tree import Node, check_link_path, check_name
from common.repository.restore.batch import (
    NODE,
    PART,
    SYMLINK,
    WHOLE,
    FileRecord,
    Meta,
    Result,
    apply_fd,
)
from common.repository.restore.plan import Large, Pending, chunk_writes, meta_of
from common.repository.restore.read import read_blobs
from common.repository.restore.trees import Trees, refused
from common.repository.restore.workers import MixedRunner, ProcessRunner, ThreadRunner, make_runner
from common.repository.system.dirfd import SWAPPED, DirFds, open_root
from common.repository.system.malloc import RESTORE_TRIM_THRESHOLD, keep_freed_memory

_HINT = "`volkeeper repair TARGET --read-data --dry-run` shows every damaged object"
BATCH_FILES = 2048
#: 1 MiB (was 8, then 2): every batch in flight holds its pack ranges (7 in flight with two
#: worker processes and two threads: at 2 MiB 15.5 MiB of the restoring process's traced
#: heap at its peak); CLI restore of the mixed set, 4 interleaved pairs on the busy VM: peak
#: RSS of the process tree 141-143 MiB vs 151-155 at 2 MiB, CPU 2.25-2.29 s vs 2.24-2.35,
#: wall alike; 40,000 small files in-process: the same wall and CPU. (At 2 vs 8 MiB: 158-162
#: vs 217 MiB, CPU 6.5-6.8 s vs 7.2-7.7.) A sync's batches (``sync_files``) are as large.
BATCH_BYTES = 1 << 20
TREE_CACHE_BYTES = 32 << 20
READERS = 4  # concurrent ranged reads of one batch


@dataclass
class RestoreStats:
    """What a restore did."""

    files: int = 0
    dirs: int = 0
    bytes: int = 0
    blobs: int = 0
    packs_read: int = 0
    bytes_read: int = 0
    warnings: list[str] = field(default_factory=list)


def _split(path: str) -> list[str]:
    parts = [p for p in path.strip().strip("/").split("/") if p not in ("", ".")]
    for p in parts:
        check_name(p)
    return parts


class _Restorer:
    def __init__(self, repo: Repository, dest: str, progress: ProgressTracker,
                 stats: RestoreStats, devices: bool) -> None:
        self.repo = repo
        self.index = repo.index
        self.dest = dest
        #: the restore's own directories, opened from ``dest`` down (never a symlink)
        self.fds = DirFds(open_root(dest))
        self.progress = progress
        self.stats = stats
        self.devices = devices
        self.trees = Trees(repo, TREE_CACHE_BYTES)
        self.runner: ThreadRunner | ProcessRunner | MixedRunner | None = None
        #: reads the ranges of a batch concurrently (storage round trips overlap)
        self.readers: Executor | None = None
        self.batch = Pending()
        self.inflight: deque[tuple[Future[Result], Pending]] = deque()
        self.dirs: list[tuple[str, Meta]] = []
        self.links: list[tuple[str, Node]] = []
        self.large: dict[str, Large] = {}  # large files being written in parts
        self.damaged: dict[bytes, str] = {}
        self.broken: dict[str, str] = {}  # path → why incomplete
        self.file_bytes = 0
        self.broken_bytes = 0

    # --- step 2: walk, batch, write ----------------------------------------------------
    def restore(self, tree_id: bytes, selectors: list[list[str]]) -> None:
        for rel, node in self.trees.walk(tree_id, selectors, set()):
            t = node.type
            if t == "dir":
                parent, name = self.fds.parent(rel)
                os.mkdir(name, 0o700, dir_fd=parent)
                self.dirs.append((rel, meta_of(node)))
                self.stats.dirs += 1
            elif t == "hardlink":
                self.links.append((rel, node))
                self.stats.files += 1
            elif t == "file":
                self.stats.files += 1
                self.add_file(rel, node)
            elif t == "symlink":
                self.add((SYMLINK, rel, meta_of(node, node.target or ""), 0, False, []))
            else:
                if t in ("char", "block") and not self.devices:
                    raise refused(rel, node)
                self.add((NODE, rel, meta_of(node, (t, node.rdev)), 0, False, []))
        self.hardlinks()

    def add(self, record: FileRecord, nbytes: int = 0) -> None:
        b = self.batch
        b.files.append(record)
        b.done_bytes += nbytes
        if len(b.files) >= BATCH_FILES or b.nbytes >= BATCH_BYTES:
            self.flush()

    def add_file(self, rel: str, node: Node) -> None:
        """Plan one regular file (or a hardlink restored with its own content)."""
        size = node.size
        self.file_bytes += size
        content = node.content
        if len(content) == 1 and not node.holes:  # the common small file
            entry = self.index.lookup(content[0])
            if entry is not None and entry.raw_length == size:
                if self.batch.nbytes + size > BATCH_BYTES and self.batch.files:
                    self.flush()
                self.batch.done_files += 1
                no = self.batch.blob(entry)
                self.add((WHOLE, rel, meta_of(node), size, False, [(no, 0, 0, size)]), size)
                return
        planned, missing = chunk_writes(self.index, node)
        if missing is not None:  # restore what is there; the file is named as broken
            self._broken(rel, self.repo.unindexed(missing), size)
        data = sum(e.raw_length for e, _ in planned)
        if self.batch.files and self.batch.nbytes + data > BATCH_BYTES:
            self.flush()
        if data <= BATCH_BYTES:
            b = self.batch
            out = [(b.blob(e), off, begin, n) for e, ws in planned for off, begin, n in ws]
            b.done_files += 1
            self.add((WHOLE, rel, meta_of(node), size, bool(node.holes), out), size)
            return
        self._large(rel, node, planned)

    def _large(self, rel: str, node: Node,
               planned: list[tuple[IndexEntry, list[tuple[int, int, int]]]]) -> None:
        """A file with more data than a batch: created now, written by several batches,
        given its metadata when the last part is written."""
        parent, name = self.fds.parent(rel)
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                     | os.O_CLOEXEC, 0o600, dir_fd=parent)
        try:
            if node.holes:
                os.ftruncate(fd, node.size)
        finally:
            os.close(fd)
        state = self.large[rel] = Large(meta_of(node), node.size)
        part: list[tuple[int, int, int, int]] = []
        written = 0
        for entry, writes in planned:
            no = self.batch.blob(entry)
            part.extend((no, off, begin, n) for off, begin, n in writes)
            if self.batch.nbytes >= BATCH_BYTES:
                n = sum(w[3] for w in part)
                written += n
                self._part(rel, state, part, n)
                part = []
        self.batch.done_files += 1  # the file counts once, with its last part
        self._part(rel, state, part, node.size - written)  # holes count here
        state.outstanding -= 1  # the guard: every part is handed out
        if state.outstanding == 0:
            self._finish_large(rel)

    def _part(self, rel: str, state: Large, part: list[tuple[int, int, int, int]],
              nbytes: int) -> None:
        state.outstanding += 1
        self.batch.parts.append(rel)
        self.add((PART, rel, state.meta, state.size, False, part), nbytes)

    def _finish_large(self, rel: str) -> None:
        meta = self.large.pop(rel).meta
        parent, name = self.fds.parent(rel)
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                     dir_fd=parent)
        try:
            apply_fd(fd, rel, meta, self.stats.warnings)
        finally:
            os.close(fd)

    def _broken(self, rel: str, why: str, size: int) -> None:
        if rel not in self.broken:
            self.broken[rel] = why
            self.broken_bytes += size

    def flush(self) -> None:
        """Read the current batch's blobs and hand it to the runner."""
        b = self.batch
        if not b.files:
            return
        self.batch = Pending()
        assert self.runner is not None
        spans, blobs = read_blobs(self.repo, b.entries, self.stats, self.damaged,
                                  2 * BATCH_BYTES, self.readers)
        self.inflight.append((self.runner.submit((spans, blobs, b.files)), b))
        b.files, b.entries, b.blob_no = [], [], {}
        while len(self.inflight) >= self.runner.capacity:
            self.collect()

    def collect(self) -> None:
        """Wait for the oldest batch in flight and take in its result."""
        fut, b = self.inflight.popleft()
        damaged, broken, warnings, blobs = fut.result()
        self.stats.blobs += blobs
        for blob_id, why in damaged:
            self.damaged.setdefault(blob_id, why)
        for rel, why, size in broken:
            self._broken(rel, why, size)
        self.stats.warnings.extend(warnings)
        self.progress.add(b.done_bytes, b.done_files)
        for rel in b.parts:
            state = self.large[rel]
            state.outstanding -= 1
            if state.outstanding == 0:
                self._finish_large(rel)

    def drain(self) -> None:
        self.flush()
        while self.inflight:
            self.collect()

    # --- step 3: hardlinks, directories ------------------------------------------------
    def hardlinks(self) -> None:
        """Link each hardlink to its first path when that is a regular file this restore
        made (in a directory it made: no symlink on the way), else restore its content."""
        self.drain()  # every file of the walk is on disk
        dirs = {rel for rel, _ in self.dirs}
        dirs.add("")
        will_exist: set[str] = set()
        links: list[tuple[str, str]] = []
        for rel, node in self.links:
            target = node.link or ""
            if target in will_exist or self._restored_file(target, dirs):
                links.append((rel, target))
                self.progress.add(0, 1)  # its bytes are its first path's
            else:
                self.add_file(rel, node)
            will_exist.add(rel)
        self.drain()
        for rel, target in links:
            src_dir, src = self.fds.parent(target)
            src_dir = os.dup(src_dir)  # the next lookup may close the cached one
            try:
                dst_dir, dst = self.fds.parent(rel)
                os.link(src, dst, src_dir_fd=src_dir, dst_dir_fd=dst_dir,
                        follow_symlinks=False)
            finally:
                os.close(src_dir)

    def _restored_file(self, target: str, dirs: set[str]) -> bool:
        try:
            check_link_path(target)
            if os.path.dirname(target) not in dirs:
                return False
            parent, name = self.fds.parent(target)
            st = os.lstat(name, dir_fd=parent)
        except (IntegrityError, OSError):
            return False
        return os.path.dirname(target) in dirs and stat.S_ISREG(st.st_mode)

    def finish(self, root: Node | None) -> None:
        for rel, meta in reversed(self.dirs):
            apply_fd(self.fds.dir(rel), rel, meta, self.stats.warnings)
        if root is not None:
            apply_fd(self.fds.root, ".", meta_of(root), self.stats.warnings)


def restore_snapshot(
    repo: Repository,
    snapshot: Snapshot,
    dest_dir: str | os.PathLike[str],
    *,
    paths: list[str] | None = None,
    progress: ProgressTracker | None = None,
    workers: int = 4,
    devices: bool = True,
    processes: int | None = None,
) -> RestoreStats:
    """Restore ``snapshot`` (or only ``paths`` inside it) into the empty ``dest_dir``.

    ``devices=False`` refuses (raises ``Refused``, before anything is written) a snapshot
    holding character or block device nodes. ``workers``: threads writing batches when
    no worker processes are used; ``processes``: worker processes (0: none; None: as
    many as CPUs, at most 4, for restores of at least ``PROCESS_MIN_FILES`` files of at
    most ``PROCESS_MAX_AVERAGE`` bytes on average: ``workers.make_runner``).
    Raises IntegrityError naming damaged blobs and incomplete files after restoring
    everything else."""
    dest = os.fspath(dest_dir)
    if os.path.lexists(dest):
        if not os.path.isdir(dest) or os.path.islink(dest) or os.listdir(dest):
            raise Conflict(f"restore target {dest!r} is not an empty directory",
                           "restore into a new or empty directory")
    else:
        os.makedirs(dest)
    progress = progress or NullTracker()
    keep_freed_memory(RESTORE_TRIM_THRESHOLD)
    progress.set_phase("planning", snapshot.stats.bytes, snapshot.stats.files)
    repo.load_index()
    stats = RestoreStats()
    r = _Restorer(repo, dest, progress, stats, devices)
    try:
        return _restore(r, snapshot, paths, devices, workers, processes)
    finally:
        r.fds.close()


def _restore(r: _Restorer, snapshot: Snapshot, paths: list[str] | None, devices: bool,
             workers: int, processes: int | None) -> RestoreStats:
    stats, progress, dest = r.stats, r.progress, r.dest
    selectors = [[]] if paths is None else [_split(p) for p in paths]
    files, nbytes = snapshot.stats.files, snapshot.stats.bytes
    if paths is not None:
        files, nbytes, matched = r.trees.scan(snapshot.tree, selectors, devices)
        missing = [p for i, p in enumerate(paths) if i not in matched and _split(p)]
        if missing:
            raise NotFound("path in snapshot", ", ".join(missing),
                           f"list snapshot {snapshot.id.hex()[:8]} to see its paths")
    elif not devices and r.trees.has_devices(snapshot.tree):
        for rel, node in r.trees.walk(snapshot.tree, selectors, set()):
            if node.type in ("char", "block"):
                raise refused(rel, node)
    progress.set_phase("restore", nbytes, files)
    try:
        _run(r, snapshot, selectors, files, nbytes, workers, processes, paths is None)
    except OSError as exc:
        if exc.errno not in SWAPPED or not exc.filename:
            raise
        raise Conflict(f"restore into {dest!r} stopped: {exc.filename!r} is no longer the "
                       f"directory this restore created ({exc.strerror}); something else "
                       "is writing into the target, nothing was written outside it",
                       "stop the containers using the volume, then restore again into "
                       "a new or empty volume") from None
    stats.bytes = r.file_bytes - r.broken_bytes
    if r.damaged or r.broken:
        blobs = ("; ".join(r.damaged.values()) or "; ".join(sorted(set(r.broken.values()))[:5])
                 or "blobs missing from the index")
        names = ", ".join(sorted(r.broken))
        raise IntegrityError(f"restore incomplete: {blobs}; files not restored correctly: "
                             f"{names}", _HINT)
    return stats


def _run(r: _Restorer, snapshot: Snapshot, selectors: list[list[str]], files: int,
         nbytes: int, workers: int, processes: int | None, full: bool) -> None:
    """Steps 2 and 3: walk and write in batches, then hardlinks and directories."""
    r.runner = make_runner(r.repo, r.dest, files, nbytes, workers, processes)
    try:
        with ThreadPoolExecutor(READERS, thread_name_prefix="repo-restore-read") as readers:
            r.readers = readers
            r.restore(snapshot.tree, selectors)
            r.drain()
    except BaseException:
        r.runner.close(abort=True)
        raise
    r.runner.close()
    r.finish(snapshot.root if full else None)
