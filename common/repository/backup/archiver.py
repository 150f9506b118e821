"""Backup of a directory into a repository: walk, chunk, dedup, encode, pack, snapshot.

Pipeline (both cores busy, memory bounded):

- the calling thread walks the directory in post-order, one open directory at a time
  (``scandir`` on its descriptor, entries stat'ed relative to it, never following
  symlinks); it opens large files and hands them to chunking threads (``large``), which
  hash each chunk (keyed BLAKE3) while the walk goes on (a directory whose tree needs a
  file still being chunked is completed later: ``Deferred``); a chunk already in the
  index or already queued in this run is not stored again;
- small files are read ahead of it by a reader thread, or by worker processes in a large
  backup (``read``, ``workers``);
- new blobs go through the ``pipeline``: encoder threads, then the packer thread,
  which writes packs and index files.

Write ordering: packs, then the index files naming them, then (after the walk, whose
post-order produced every tree blob) the final packs and index, then the snapshot. A
backup killed at any point leaves no snapshot; committed and indexed packs are reused by
the next backup. On an exception the packer still indexes the packs it committed.

Incremental: a regular file whose size, mtime_ns, ctime_ns and inode equal the parent
snapshot's node at the same path (and whose chunks are all indexed) reuses that chunk
list without being read.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from typing import Any

from common.archive.excludes import NO_EXCLUDES, Excludes
from common.errors import IntegrityError, InvalidInput
from common.progress import NullTracker, ProgressTracker
from common.repository.backup import kept
from common.repository.backup import workers as backup_workers
from common.repository.backup.large import Chunked, Deferred, LargeFiles, Pending, chunk_fd
from common.repository.backup.pipeline import BackupOptions
from common.repository.backup.pipeline import Pipeline as _Pipeline
from common.repository.backup.read import (
    ReadAhead,
    Readers,
    SmallFile,
    open_directory,
    open_nofollow,
    read_small,
    xattrs_at,
    xattrs_of,
)
from common.repository.core.ids import BlobType
from common.repository.core.repository import Repository
from common.repository.core.snapshot import Snapshot, SnapshotStats, save_snapshot
from common.repository.core.tree import Node, encode_dict, encode_nodes, split_tree
from common.repository.system.dirfd import open_dir_at
from common.repository.system.malloc import backup_mmap_threshold, keep_freed_memory

_TYPES = {stat.S_IFIFO: "fifo", stat.S_IFCHR: "char", stat.S_IFBLK: "block",
          stat.S_IFSOCK: "socket", stat.S_IFLNK: "symlink", stat.S_IFDIR: "dir",
          stat.S_IFREG: "file"}

log = logging.getLogger(__name__)


#: a directory with fewer small files to read reads them in the walk, through the same
#: ``read_small`` (a changed re-backup typically has a few per directory: the hand-offs to
#: the readers and their GIL hand-backs cost the walk more than the reads; 5 % of the mixed
#: 1 GiB set changed, ~18 files to read in a directory of 100: 8 -> 32 took its backup
#: from 0.59-0.63 s to 0.53-0.54 s in-process; a first backup reads ahead as before)
READ_AHEAD_MIN = 32

#: a parent-snapshot node as the walk sees it: its JSON object and its exact text (copied
#: into the new tree when the file is unchanged; ``Node.from_dict`` for anything else)
_Old = tuple[dict[str, Any] | None, str]  # None: a kept file, parsed when needed
#: a plan entry: the directory entry, its stat, its parent node, and its read-ahead slot,
#: or -1 (the walk reads it) or ``_UNCHANGED`` (its parent node is reused as it is)
_PlanEntry = tuple[os.DirEntry[str], os.stat_result, "_Old | None", int]
_UNCHANGED = -2
#: the fields a reusable file node may have
_FILE_FIELDS = frozenset({"name", "type", "mode", "uid", "gid", "mtime_ns", "ctime_ns",
                          "inode", "size", "xattrs", "content", "holes"})


class _Listed:
    """A directory opened, listed and stat'ed: its entries with their parent-snapshot
    nodes and read-ahead slots, and the reads handed to the readers."""

    def __init__(self, dir_fd: int, old: dict[str, _Old], parent_ok: bool = True,
                 files: dict[str, tuple[kept.StatKey, list[bytes]]] | None = None) -> None:
        self.dir_fd: int | None = dir_fd
        self.old = old
        #: the parent's plain files by name when the parent tree was kept (``kept``)
        self.files = files
        #: plan position -> chunk ids of the files found unchanged (for ``kept``)
        self.ids: dict[int, list[bytes]] = {}
        #: False when the parent's tree could not be read (its id must not be reused)
        self.parent_ok = parent_ok
        self.plan: list[_PlanEntry] = []
        self.ahead: ReadAhead | None = None

    def close(self) -> None:
        """Give back the read window and the directory's descriptor (once)."""
        try:
            if self.ahead is not None:
                self.ahead.close()
                self.ahead = None
        finally:
            if self.dir_fd is not None:
                os.close(self.dir_fd)
                self.dir_fd = None


class _Walker:
    """Walks one directory tree in post-order, producing tree blobs."""

    def __init__(self, repo: Repository, pipe: _Pipeline, stats: SnapshotStats,
                 progress: ProgressTracker, options: BackupOptions, root: str = "",
                 excludes: Excludes = NO_EXCLUDES, left_out: list[str] | None = None,
                 kept_trees: tuple[dict[bytes, kept.KeptTree], frozenset[bytes] | None]
                 = ({}, None)) -> None:
        self.root = root
        #: parent trees a backup in this process kept (``kept``), by id
        self.kept, stamp = kept_trees
        #: every chunk the kept trees name is indexed: no lookup for an unchanged file
        self.trusted = stamp is not None and repo.index_files is not None \
            and stamp <= repo.index_files
        #: the trees written, kept for the next backup (``options.keep_trees``)
        self.keeping: dict[bytes, kept.KeptTree] | None = (
            {} if options.keep_trees or kept.wanted() else None)
        self._kept_nodes = 0
        self.excludes = excludes
        #: the volume-relative paths ``excludes`` left out (a directory once)
        self.left_out = left_out if left_out is not None else []
        self.repo = repo
        self.pipe = pipe
        self.stats = stats
        self.progress = progress
        self.chunker = repo.chunker()
        # a file up to the chunker's minimum size is a single chunk, whatever its content
        self.small = self.chunker.params.min_size
        self.blob_id = repo.codec.blob_id
        self.links: dict[tuple[int, int], tuple[str, Node]] = {}
        processes = options.processes

        def start() -> backup_workers.ProcessReaders | None:
            return backup_workers.start(repo, pipe.want, pipe.deliver, processes)

        self.readers = Readers(options.readers, self.blob_id,
                               None if processes == 0 else start, options.process_after)
        self.large = LargeFiles(repo.chunker, self.blob_id, pipe.known, pipe.submit,
                                progress, options.chunkers, lengths=pipe.layout
                                ) if options.chunkers > 0 else None

    def node(self, name: str, dir_fd: int, st: os.stat_result,
             xattrs: dict[str, bytes] | None = None) -> Node:
        """A node with the metadata common to every type (of ``name`` in ``dir_fd``)."""
        return Node(name=name, type=_TYPES.get(stat.S_IFMT(st.st_mode), "file"),
                    mode=stat.S_IMODE(st.st_mode), uid=st.st_uid, gid=st.st_gid,
                    mtime_ns=st.st_mtime_ns,
                    xattrs=xattrs_at(dir_fd, name) if xattrs is None else xattrs)

    def directory(self, path: str, rel: str, parent_tree: bytes | None,
                  prepared: _Listed | None = None, at: tuple[int, str] | None = None
                  ) -> bytes | Deferred:
        """Back up the directory at ``path`` (``prepared``: listed already; ``at``: the
        descriptor of its parent and its name, None for the root); returns its tree id, or
        the tree to complete once the files below it still being chunked are done."""
        listed = prepared if prepared is not None else self._list(path, parent_tree, at)
        try:
            texts, dicts, files, pending = self._entries(listed, path, rel)
        finally:
            listed.close()
        self.stats.dirs += 1
        tree = Deferred(texts, pending,
                        lambda done: self.tree(done, parent_tree, listed, dicts, files),
                        self.chunked)
        return tree.result() if tree.ready() else tree

    def tree(self, texts: list[str], parent_tree: bytes | None, listed: _Listed,
             dicts: list[dict[str, Any] | None],
             files: dict[str, tuple[kept.StatKey, list[bytes]]]) -> bytes:
        """The id of the tree of ``texts`` (``dicts``: their JSON objects where known;
        ``files``: plain files' stat keys and chunks, when keeping trees), stored unless
        known (the parent's tree when nothing changed)."""
        if parent_tree is not None and listed.parent_ok \
                and texts == [t for _d, t in listed.old.values()]:
            tree_id = parent_tree  # nothing changed: the same bytes, hence the same tree id
        else:
            data = encode_nodes(texts)
            tree_id = self.repo.codec.blob_id(data)
            self.pipe.submit(BlobType.TREE, data, tree_id)
        if self.keeping is not None:
            self._kept_nodes += len(texts)
            if self._kept_nodes > kept.MAX_NODES:
                self.keeping = None  # too large to keep
            else:
                self.keeping[tree_id] = kept.make_tree(texts, dicts, files)
        return tree_id

    def chunked(self, node: Node, out: Chunked) -> None:
        """(walking thread) A file a chunking thread read: its node and the counts."""
        node.content, node.holes, node.size = out.content, out.holes, out.size
        self.stats.files_read += 1
        self.stats.bytes_read += out.read
        self.stats.bytes += out.size

    def _list(self, path: str, parent_tree: bytes | None, at: tuple[int, str] | None
              ) -> _Listed:
        """Open (relative to its parent's descriptor ``at``: never through a symlink),
        list and stat a directory (relative to it), and hand its small files to read to
        the readers at once."""
        old: dict[str, _Old] = {}
        parent_ok = True
        files = None
        was = self.kept.get(parent_tree) if parent_tree is not None else None
        if was is not None and parent_tree is not None and self.pipe.known(parent_tree):
            old, files = was.old, was.files  # made by this process: as read
        elif parent_tree is not None:
            try:
                with self.pipe.lock:  # the packer adds to the index meanwhile
                    data = self.repo.read_blob(parent_tree, BlobType.TREE)
                old = {d["name"]: (d, t)
                       for d, t in split_tree(data, f"tree {parent_tree.hex()}")}
            except IntegrityError as exc:  # damaged: back this directory up in full
                log.warning("parent tree of %s unreadable (%s); reading it in full", path, exc)
                old, parent_ok = {}, False
        dir_fd = open_directory(path) if at is None else open_dir_at(*at, path)
        listed = _Listed(dir_fd, old, parent_ok, files)
        try:
            with os.scandir(dir_fd) as it:
                entries = list(it)
            # the order of the names' bytes; for ASCII names that of the strings
            if all(e.name.isascii() for e in entries):
                entries.sort(key=lambda e: e.name)
            else:
                entries.sort(key=lambda e: os.fsencode(e.name))
            reads: list[tuple[str, int]] = []
            same: list[tuple[int, list[bytes]]] = []  # plan positions, their chunks
            trusted: list[tuple[int, list[bytes]]] = []  # the same, known to be indexed
            sure = trusted if self.trusted else same
            excludes = self.excludes if self.excludes else None
            rel_dir = path[len(self.root) + 1:] if excludes is not None else ""
            for entry in entries:
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:  # vanished while we walked
                    self.stats.skipped += 1
                    continue
                if excludes is not None:
                    rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
                    if excludes.matches(rel, stat.S_ISDIR(st.st_mode)):
                        self.left_out.append(rel)
                        continue
                prev = old.get(entry.name)
                slot = -1
                content = None
                known = files.get(entry.name) if files is not None else None
                if known is not None:  # a kept plain file: its stat key says it all
                    if st.st_nlink == 1 and stat.S_ISREG(st.st_mode) \
                            and known[0] == kept.stat_key(st):
                        sure.append((len(listed.plan), known[1]))
                        content = known[1]
                elif prev is not None and prev[0] is not None:
                    content = self._same_file(prev[0], st)
                    if content is not None:
                        same.append((len(listed.plan), content))
                if content is None and self._read_ahead(st, prev):
                    slot = len(reads)  # (a small file is read as new: no parent node)
                    reads.append((entry.name, st.st_size))
                elif content is None and prev is not None and prev[0] is None:
                    prev = (json.loads(prev[1]), prev[1])  # a changed kept file
                listed.plan.append((entry, st, prev, slot))
            self._mark_unchanged(listed, same, trusted)
            if len(reads) >= READ_AHEAD_MIN:  # else the walk reads them (_entries)
                listed.ahead = ReadAhead(self.readers, dir_fd, path, reads)
        except BaseException:
            listed.close()
            raise
        return listed

    def _entries(self, listed: _Listed, path: str, rel: str
                 ) -> tuple[list[str], list[dict[str, Any] | None],
                            dict[str, tuple[kept.StatKey, list[bytes]]], list[Pending]]:
        """The nodes (texts, and their JSON objects) of a directory's entries, in order,
        the plain files' stat keys and chunks (when keeping trees), and the entries still
        pending (their texts empty, objects None). Before going into a subdirectory the
        next one is listed, so the readers have its files while the walk is busy."""
        texts: list[str] = []
        dicts: list[dict[str, Any] | None] = []
        files: dict[str, tuple[kept.StatKey, list[bytes]]] = {}
        keeping = self.keeping is not None
        waiting: list[Pending] = []
        same = [0, 0]  # unchanged files in a row, their bytes: counted at once
        ahead, plan, dir_fd = listed.ahead, listed.plan, listed.dir_fd
        assert dir_fd is not None  # open until ``listed.close``
        dirs = [i for i, (_e, st, _p, _s) in enumerate(plan) if stat.S_ISDIR(st.st_mode)]
        nexts = dict(itertools.pairwise(dirs))
        pending: dict[int, _Listed | BaseException] = {}
        try:
            for i, (entry, st, prev, slot) in enumerate(plan):
                if slot == _UNCHANGED and prev is not None:  # counted in a run (_same)
                    same[0] += 1
                    same[1] += st.st_size  # its node's size
                    texts.append(prev[1])
                    if keeping:
                        files[entry.name] = (kept.stat_key(st), listed.ids[i])
                        # a kept parent's file has no object (``KeptTree``): its name
                        # alone, so that ``make_tree`` does not parse its text again
                        dicts.append(prev[0] if prev[0] is not None else
                                     {"name": entry.name})
                    else:
                        dicts.append(prev[0])
                    continue
                if same[0]:
                    self._same(same)
                child = f"{path}/{entry.name}"
                child_rel = f"{rel}/{entry.name}" if rel else entry.name
                wait: Future[Chunked] | Deferred | None
                try:
                    if slot >= 0:  # few files to read: a hand-off each costs more
                        small = ahead.get(slot) if ahead is not None else read_small(
                            dir_fd, entry.name, st.st_size, self.blob_id)
                        if small.error is not None:
                            raise small.error
                        node = self.node(entry.name, dir_fd, st, small.xattrs)
                        # read ahead: it is not its parent node (``_read_ahead``)
                        wait = self._file(node, dir_fd, child_rel, st, None, small)
                    else:
                        node = self.node(entry.name, dir_fd, st)
                        if i in nexts:
                            self._list_next(plan, nexts[i], path, dir_fd, pending)
                        listed_here = pending.pop(i, None)
                        if isinstance(listed_here, BaseException):
                            raise listed_here
                        wait = self._fill(node, child, dir_fd, child_rel, st,
                                          _old_node(prev), listed_here)
                except FileNotFoundError:  # vanished while we walked
                    self.stats.skipped += 1
                    continue
                if wait is not None:  # its text once what it waits for is done
                    waiting.append((len(texts), node, wait))
                    texts.append("")
                    dicts.append(None)
                    continue
                d = node.to_dict()
                texts.append(encode_dict(d))
                dicts.append(d)
                if keeping and node.type == "file" and st.st_nlink == 1:
                    files[node.name] = ((node.inode, node.size, node.mtime_ns, node.ctime_ns,
                                         node.mode, node.uid, node.gid), list(node.content))
            if same[0]:
                self._same(same)
        finally:
            for other in pending.values():
                if isinstance(other, _Listed):
                    other.close()
        return texts, dicts, files, waiting

    def _same(self, same: list[int]) -> None:
        """Count a run of unchanged files (one progress call for them all)."""
        self.stats.files += same[0]
        self.stats.bytes += same[1]
        self.progress.add(same[1], same[0])
        same[0] = same[1] = 0

    def _list_next(self, plan: list[_PlanEntry], j: int, path: str, dir_fd: int,
                   pending: dict[int, _Listed | BaseException]) -> None:
        """List subdirectory ``j`` of ``plan`` ahead of its turn (an error waits for it)."""
        entry, _st, prev, _slot = plan[j]
        old = _old_node(prev)
        sub = old.subtree if old is not None and old.type == "dir" else None
        try:
            pending[j] = self._list(f"{path}/{entry.name}", sub, (dir_fd, entry.name))
        except OSError as exc:
            pending[j] = exc

    def _read_ahead(self, st: os.stat_result, prev: _Old | None) -> bool:
        """Whether a reader may read this entry ahead of the walk: a small, regular, not
        hardlinked, not sparse file that is not its parent-snapshot node unchanged."""
        if not (stat.S_ISREG(st.st_mode) and st.st_nlink == 1 and st.st_size < self.small
                and st.st_blocks * 512 >= st.st_size):
            return False
        if prev is None or prev[0] is None:  # None: a kept file its stat key said changed
            return True
        get = prev[0].get
        return (get("size", 0), get("mtime_ns", 0), get("ctime_ns", 0), get("inode", 0)) != (
            st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)

    def _same_file(self, old: dict[str, Any], st: os.stat_result) -> list[bytes] | None:
        """The chunk ids of a regular file's parent node (JSON object) if the file is
        exactly that node by its stat: same inode, size, mtime and ctime (chmod, chown and
        xattr changes all update ctime, so mode, owner and xattrs are the same too), not
        hardlinked, only a file's fields; None otherwise."""
        get = old.get
        if not (get("type") == "file" and st.st_nlink == 1 and stat.S_ISREG(st.st_mode)
                and get("inode", 0) == st.st_ino and get("size", 0) == st.st_size
                and get("mtime_ns", 0) == st.st_mtime_ns
                and get("ctime_ns", 0) == st.st_ctime_ns
                and get("mode", 0) == stat.S_IMODE(st.st_mode) and get("uid", 0) == st.st_uid
                and get("gid", 0) == st.st_gid and old.keys() <= _FILE_FIELDS):
            return None
        content = get("content", [])
        try:
            ids = [bytes.fromhex(c) for c in content]
        except (TypeError, ValueError):  # not hex strings: not chunk ids
            return None
        return ids if all(len(b) == 32 for b in ids) else None

    def _mark_unchanged(self, listed: _Listed, same: list[tuple[int, list[bytes]]],
                        trusted: list[tuple[int, list[bytes]]]) -> None:
        """Mark the files that are their parent node by their stat and whose chunks are all
        still indexed (one index query for the directory; none for ``trusted``) to be
        reused as they are."""
        plan = listed.plan
        missing = self.pipe.unknown([b for _i, ids in same for b in ids]) if same else None
        for i, ids in itertools.chain(trusted, same):
            if not missing or missing.isdisjoint(ids):
                entry, st, prev, _slot = plan[i]
                plan[i] = (entry, st, prev, _UNCHANGED)
                if self.keeping is not None:
                    listed.ids[i] = ids

    def _fill(self, node: Node, path: str, dir_fd: int, rel: str, st: os.stat_result,
              old: Node | None, listed: _Listed | None = None
              ) -> Future[Chunked] | Deferred | None:
        """The type-specific part of ``node`` (at ``path``, ``node.name`` in ``dir_fd``),
        or what it waits for (a file being chunked, a deferred subtree)."""
        if node.type == "dir":
            sub = old.subtree if old is not None and old.type == "dir" else None
            tree = self.directory(path, rel, sub, listed, (dir_fd, node.name))
            if isinstance(tree, Deferred):
                return tree
            node.subtree = tree
        elif node.type == "symlink":
            node.target = os.readlink(node.name, dir_fd=dir_fd)
        elif node.type in ("char", "block"):
            node.rdev = (os.major(st.st_rdev), os.minor(st.st_rdev))
        elif node.type == "file":
            return self._file(node, dir_fd, rel, st, old)
        return None

    def _file(self, node: Node, dir_fd: int, rel: str, st: os.stat_result,
              old: Node | None, small: SmallFile | None = None) -> Future[Chunked] | None:
        self.stats.files += 1
        node.ctime_ns, node.inode = st.st_ctime_ns, st.st_ino
        first = self.links.get((st.st_dev, st.st_ino)) if st.st_nlink > 1 else None
        if first is not None:
            node.type, node.link = "hardlink", first[0]
            node.content, node.holes, node.size = first[1].content, first[1].holes, first[1].size
            return None
        if (old is not None and old.type in ("file", "hardlink")
                and (old.size, old.mtime_ns, old.ctime_ns, old.inode)
                == (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
                and all(self.pipe.known(c) for c in old.content)):
            node.content, node.holes, node.size = old.content, old.holes, old.size
        elif small is not None and small.size >= 0:
            self._small(node, small.size, small.blob_id, small.data)
        elif self.large is not None and st.st_nlink == 1 and (
                st.st_size >= self.small or st.st_blocks * 512 < st.st_size):
            # the chunking threads count it when done
            return self.large.chunk(open_nofollow(node.name, dir_fd), st, _old_chunks(old))
        else:
            self._read(node, dir_fd, st, old)
        self.stats.bytes += node.size
        self.progress.add(node.size, 1)
        if st.st_nlink > 1:
            self.links[(st.st_dev, st.st_ino)] = (rel, node)
        return None

    def _read(self, node: Node, dir_fd: int, st: os.stat_result, old: Node | None) -> None:
        fd = open_nofollow(node.name, dir_fd)
        try:
            if st.st_size < self.small and st.st_blocks * 512 >= st.st_size:
                # the common small file: one read; a short read means end of file
                data = os.read(fd, st.st_size + 1)
                if len(data) <= st.st_size:
                    self._small(node, len(data), self.blob_id(data) if data else None, data)
                    return
                os.lseek(fd, 0, os.SEEK_SET)  # it grew: chunk it like any other file
            ids = _old_chunks(old)
            out = chunk_fd(self.chunker, self.blob_id, self.pipe.known, self.pipe.submit, fd,
                           st, old=self.pipe.layout(ids) if ids else None)
            node.content, node.holes, node.size = out.content, out.holes, out.size
            self.stats.files_read += 1
            self.stats.bytes_read += out.read
        finally:
            os.close(fd)

    def _small(self, node: Node, size: int, blob_id: bytes | None, data: bytes | None
               ) -> None:
        """A small file read whole by a reader (``data``: by a thread; None: by a worker
        process, which stores the blob itself when the walk wants it)."""
        if blob_id is not None:
            node.content.append(blob_id)
            if data is not None:
                self.pipe.submit(BlobType.DATA, data, blob_id)
        node.size = size
        self.stats.files_read += 1
        self.stats.bytes_read += size


def _old_node(prev: _Old | None) -> Node | None:
    """A parent-snapshot node, validated; None if there is none or it is malformed (the
    entry is then backed up as if new)."""
    if prev is None:
        return None
    try:
        return Node.from_dict(prev[0] if prev[0] is not None else json.loads(prev[1]))
    except IntegrityError:
        return None


def _old_chunks(old: Node | None) -> list[bytes] | None:
    """The chunk ids of a file's parent-snapshot node when its chunks can guide the
    cutting of the file now (``large.chunk_resync``): a plain file, not sparse."""
    if old is None or old.type != "file" or old.holes or not old.content:
        return None
    return old.content


def _root_node(path: str) -> Node:
    st = os.lstat(path)
    return Node(name="root", type="dir", mode=stat.S_IMODE(st.st_mode), uid=st.st_uid,
                gid=st.st_gid, mtime_ns=st.st_mtime_ns, xattrs=xattrs_of(path))


def backup_directory(
    repo: Repository,
    path: str | os.PathLike[str],
    *,
    host: str,
    volume: str,
    tags: Sequence[str] = (),
    parent: Snapshot | None = None,
    progress: ProgressTracker | None = None,
    options: BackupOptions = BackupOptions(),
    before_commit: Callable[[], None] | None = None,
    excludes: Excludes = NO_EXCLUDES,
    left_out: list[str] | None = None,
) -> Snapshot:
    """Back up the directory ``path`` into ``repo``; returns the snapshot written last.
    ``before_commit`` is called right before the snapshot is written; what it raises
    leaves no snapshot (the packs stay for the next backup). Paths ``excludes`` matches
    are left out (and appended to ``left_out``)."""
    root = os.fspath(path)
    if not os.path.isdir(root) or os.path.islink(root):
        raise InvalidInput(f"{root!r} is not a directory", "back up an existing directory")
    progress = progress or NullTracker()
    keep_freed_memory(mmap_threshold=backup_mmap_threshold())
    progress.set_phase("indexing")
    repo.load_index(reuse=True)
    stats = SnapshotStats()
    progress.set_phase("backup")
    pipe = _Pipeline(repo, stats, options)
    walker: _Walker | None = None
    try:
        root_node = _root_node(root)
        parent_tree = parent.tree if parent is not None else None
        walker = _Walker(repo, pipe, stats, progress, options, root, excludes, left_out,
                         kept.take(repo.config.repository_id, parent_tree))
        tree = walker.directory(root, "", parent_tree)
        tree_id = tree.result() if isinstance(tree, Deferred) else tree
        root_node.subtree = tree_id
        if walker.large is not None:
            walker.large.close()
        walker.readers.close()  # every blob a worker process sealed is with the packer
    except BaseException:
        if walker is not None:
            if walker.large is not None:
                walker.large.close(abort=True)
            walker.readers.close(abort=True)
        pipe.abort()
        raise
    pipe.close()
    if walker.keeping is not None:  # a backup follows: all committed and indexed
        repo.remember_index(pipe.packer.written)
    snap = Snapshot(tree=tree_id, root=root_node, host=host, volume=volume, tags=list(tags),
                    parent=parent.id if parent is not None else None, stats=stats,
                    excludes=list(excludes.patterns))
    progress.checkpoint()  # a cancelled job stops here: packs stay, no snapshot
    if before_commit is not None:  # e.g. the lock still holds: else no snapshot
        before_commit()
    saved = save_snapshot(repo, snap)
    if walker.keeping is not None:
        kept.keep(repo.config.repository_id, walker.keeping, repo.index_files)
    return saved


def iter_nodes(repo: Repository, tree_id: bytes, prefix: str = ""
               ) -> Iterator[tuple[str, Node]]:
    """Every (path, node) below a tree, depth first (helper for tests and tools)."""
    for node in repo.read_tree(tree_id).nodes:
        path = f"{prefix}/{node.name}" if prefix else node.name
        yield path, node
        if node.type == "dir" and node.subtree is not None:
            yield from iter_nodes(repo, node.subtree, path)
