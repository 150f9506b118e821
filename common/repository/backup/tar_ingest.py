"""Backup of a tar stream into a repository (volumes reachable only through Docker's API).

The second front end of the backup pipeline: where ``archiver.backup_directory`` walks a
directory, this consumes the tar stream of a volume — what ``DockerHost.archive_source``
yields (``.``, ``./a``, ``./dir/b``, parents before children, depth first) — and produces
the same snapshot/tree/blob structure. Files are cut by the same chunker (a push-fed
``ChunkFeeder`` that cuts exactly where ``Chunker.chunk_stream`` does) and stored
through the same ``pipeline.Pipeline`` (encoders, packer, index files), so a file
backed up through the mountpoint and the same file backed up through the Docker API share
every data blob.

The stream is parsed by ``common.archive.tarscan`` (ustar, pax, GNU long names, sparse
members, ``SCHILY.xattr.*``); a node gets what the stream carries: type, mode, numeric
owner, mtime (whole seconds from dockerd, exact pax decimals otherwise), size, symlink
target, device numbers, xattrs. Not carried, hence absent: ``ctime_ns`` and ``inode`` —
which is why a tar-stream backup cannot reuse its parent's chunk lists without reading
(every file is read again; dedup still stores nothing twice). Sparse members are stored
with their holes as data (zero chunks deduplicate to one blob).

Memory is bounded by the directory stack: a directory's tree blob is written as soon as
the stream leaves it, only the entries of the open directories are held. Hardlinks name
an earlier member: the last 50,000 non-directory nodes are kept in memory for them, older
ones in a temporary on-disk SQLite table.

Hostile streams get the policy of the archive path (GNU tar's): leading ``/`` is
stripped, a name or hardlink target with a ``..`` component is refused, as is a member
below a non-directory, a hardlink to a member the stream has not had, and a stream that
returns to a directory it already left (out of depth-first order). A refusal raises
IntegrityError and the backup writes no snapshot.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

from common.archive.excludes import NO_EXCLUDES, Excludes
from common.archive.tarscan import DataSink, TarEntry, TarScanner
from common.errors import IntegrityError
from common.progress import NullTracker, ProgressTracker
from common.repository.backup.pipeline import BackupOptions, Pipeline
from common.repository.core.chunker import ChunkFeeder
from common.repository.core.ids import BlobType
from common.repository.core.repository import Repository
from common.repository.core.snapshot import Snapshot, SnapshotStats, save_snapshot
from common.repository.core.tree import Node, Tree, check_name

READ_SIZE = 1 << 20
KEEP_IN_MEMORY = 50_000  # non-directory nodes kept for hardlinks before spilling to disk
_HINT = ("the tar stream is hostile or damaged; back the volume up through direct access "
         "(run the worker on the host) or check the Docker host")


def member_parts(path: str, what: str = "member") -> tuple[str, ...]:
    """The volume-relative components of a member name or hardlink target: leading ``/``
    and ``.`` components dropped (as GNU tar does), ``..`` refused."""
    parts = tuple(p for p in path.split("/") if p not in ("", "."))
    if ".." in parts:
        raise IntegrityError(f"tar {what} {path!r} escapes the volume root", _HINT)
    for p in parts:
        check_name(p)
    return parts


@dataclass
class _Dir:
    parts: tuple[str, ...]
    node: Node
    children: dict[str, Node] = field(default_factory=dict)


class _Members:
    """Non-directory members seen so far (path → node), for hardlinks: the newest
    ``keep`` in memory, older ones spilled to a private temporary SQLite database on disk,
    so memory does not grow with the volume."""

    def __init__(self, keep: int | None = None) -> None:
        self._keep = keep or KEEP_IN_MEMORY
        self._recent: dict[str, Node] = {}
        self._db: sqlite3.Connection | None = None

    def add(self, rel: str, node: Node) -> None:
        self._recent[rel] = node
        if len(self._recent) >= self._keep:
            self._spill()

    def get(self, rel: str) -> Node | None:
        node = self._recent.get(rel)
        if node is not None or self._db is None:
            return node
        row = self._db.execute("SELECT node FROM m WHERE path = ?",
                               (os.fsencode(rel),)).fetchone()
        return None if row is None else Node.from_dict(json.loads(row[0]))

    def _spill(self) -> None:
        if self._db is None:
            self._db = sqlite3.connect("")
            self._db.execute("CREATE TABLE m (path BLOB PRIMARY KEY, node TEXT NOT NULL)")
        self._db.executemany("INSERT OR REPLACE INTO m VALUES (?, ?)",
                             ((os.fsencode(k), json.dumps(n.to_dict()))
                              for k, n in self._recent.items()))
        self._recent = {}

    def close(self) -> None:
        self._recent = {}
        if self._db is not None:
            self._db.close()


class _Ingest:
    """Turns tar members (``start`` before a member's data, ``end`` after it) into trees."""

    def __init__(self, repo: Repository, pipe: Pipeline, stats: SnapshotStats,
                 progress: ProgressTracker, excludes: Excludes = NO_EXCLUDES,
                 left_out: list[str] | None = None) -> None:
        self.excludes = excludes
        self.left_out = left_out if left_out is not None else []
        self._skip_below: tuple[str, ...] | None = None  # an excluded directory
        self.repo = repo
        self.pipe = pipe
        self.stats = stats
        self.progress = progress
        self.root = Node(name="root", type="dir", mode=0o755)
        self.stack = [_Dir((), self.root)]
        self.members = _Members()
        self.feeder = ChunkFeeder(repo.chunker(), self._chunk)
        self._file: Node | None = None
        self._fed = 0

    # --- scanner callbacks ---------------------------------------------------------
    def start(self, entry: TarEntry) -> DataSink | None:
        self.pipe.raise_if_failed()
        parts = member_parts(entry.path)
        if not parts:
            if entry.type != "dir":
                raise IntegrityError(f"the tar member for the volume root ({entry.path!r}) "
                                     f"is a {entry.type}, not a directory", _HINT)
            _apply_meta(self.root, entry)
            return None
        if self.excludes and self._excluded(parts, entry.type == "dir"):
            return _discard if entry.type == "file" else None
        depth = len(parts)
        if entry.type == "dir" and len(self.stack) > depth and \
                self.stack[depth].parts == parts:  # a directory still open, stated again
            _apply_meta(self.stack[depth].node, entry)
            return None
        parent = self._parent(parts, entry.path)
        name = parts[-1]
        rel = "/".join(parts)
        old = parent.children.get(name)
        if old is not None and (old.type == "dir" or entry.type == "dir"):
            raise IntegrityError(f"tar member {entry.path!r} appears twice, or after the "
                                 "stream left its directory (not depth-first order)", _HINT)
        node = Node(name=name, type=entry.type)
        _apply_meta(node, entry)
        parent.children[name] = node
        if entry.type == "dir":
            self.stack.append(_Dir(parts, node))
            return None
        if entry.type == "file":
            self._file, self._fed = node, 0
            return self._feed
        if entry.type == "hardlink":
            self._link(node, rel, entry)
        elif entry.type == "symlink":
            node.target = entry.link or ""
        elif entry.type in ("char", "block"):
            node.rdev = (entry.devmajor, entry.devminor)
        self.members.add(rel, node)
        return None

    def _excluded(self, parts: tuple[str, ...], is_dir: bool) -> bool:
        """Whether the member is left out: below an excluded directory, or matched."""
        skip = self._skip_below
        if skip is not None and parts[:len(skip)] == skip:
            return True
        rel = "/".join(parts)
        if not self.excludes.matches(rel, is_dir):
            return False
        self.left_out.append(rel)
        if is_dir:
            self._skip_below = parts
        return True

    def end(self, entry: TarEntry) -> None:
        node = self._file
        if node is None or entry.type != "file":
            return
        self.feeder.finish()
        self._file = None
        if self._fed != entry.size:
            raise IntegrityError(f"tar member {entry.path!r} holds {self._fed} bytes, its "
                                 f"header says {entry.size}", _HINT)
        node.size = entry.size
        self.stats.files += 1
        self.stats.files_read += 1
        self.stats.bytes += node.size
        self.stats.bytes_read += node.size
        self.progress.add(node.size, 1)
        self.members.add("/".join(member_parts(entry.path)), node)

    # --- helpers -------------------------------------------------------------------
    def _feed(self, data: memoryview) -> None:
        self._fed += len(data)
        self.feeder.feed(data)

    def _chunk(self, chunk: bytes) -> None:
        assert self._file is not None
        blob_id = self.repo.codec.blob_id(chunk)
        self._file.content.append(blob_id)
        self.pipe.submit(BlobType.DATA, chunk, blob_id)

    def _parent(self, parts: tuple[str, ...], path: str) -> _Dir:
        """The open directory holding ``parts``: directories the stream left are closed,
        directories it never stated are created (mode 0755, owner 0, mtime 0)."""
        want = parts[:-1]
        while self.stack[-1].parts != want[: len(self.stack[-1].parts)]:
            self._close()
        while len(self.stack[-1].parts) < len(want):
            top = self.stack[-1]
            name = want[len(top.parts)]
            old = top.children.get(name)
            if old is not None:
                what = "after the stream left that directory (not depth-first order)" \
                    if old.type == "dir" else f"below {name!r}, which is a {old.type}"
                raise IntegrityError(f"tar member {path!r} comes {what}", _HINT)
            node = Node(name=name, type="dir", mode=0o755)
            top.children[name] = node
            self.stack.append(_Dir((*top.parts, name), node))
        return self.stack[-1]

    def _close(self) -> bytes:
        d = self.stack.pop()
        data = Tree(list(d.children.values())).encode()
        tree_id = self.repo.codec.blob_id(data)
        self.pipe.submit(BlobType.TREE, data, tree_id)
        d.node.subtree = tree_id
        self.stats.dirs += 1
        return tree_id

    def _link(self, node: Node, rel: str, entry: TarEntry) -> None:
        target = "/".join(member_parts(entry.link or "", "hardlink target"))
        first = self.members.get(target) if target else None
        if first is None:
            raise IntegrityError(f"tar hardlink {entry.path!r} points to {entry.link!r}, "
                                 "which is not an earlier file of the stream", _HINT)
        if not node.xattrs:  # one inode: GNU tar writes its xattrs on the first member only
            node.xattrs = first.xattrs
        if first.type in ("file", "hardlink"):
            node.type, node.link = "hardlink", first.link or target
            node.content, node.holes, node.size = first.content, first.holes, first.size
            self.stats.files += 1
        else:  # a link to a symlink, fifo or device: stored as a copy of it
            node.type, node.target, node.rdev = first.type, first.target, first.rdev

    def finish(self) -> bytes:
        """Close every open directory; the root tree's id."""
        while len(self.stack) > 1:
            self._close()
        return self._close()


def _discard(data: memoryview) -> None:
    """The data sink of an excluded file."""


def _apply_meta(node: Node, entry: TarEntry) -> None:
    node.mode, node.uid, node.gid = entry.mode, entry.uid, entry.gid
    node.mtime_ns, node.xattrs = entry.mtime_ns, dict(sorted(entry.xattrs.items()))


def backup_tar_stream(
    repo: Repository,
    stream: BinaryIO,
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
    """Back up the tar ``stream`` (a volume's content) into ``repo``; returns the snapshot.
    ``parent`` is recorded as the snapshot's parent only: every file is read.
    ``before_commit`` is called right before the snapshot is written (see
    ``backup_directory``); ``excludes``, ``left_out``: as there."""
    progress = progress or NullTracker()
    progress.set_phase("indexing")
    repo.load_index()
    stats = SnapshotStats()
    progress.set_phase("backup")
    pipe = Pipeline(repo, stats, options)
    ingest = _Ingest(repo, pipe, stats, progress, excludes, left_out)
    try:
        scanner = TarScanner(ingest.end, hash_content=False, on_start=ingest.start)
        while not scanner.finished and (data := stream.read(READ_SIZE)):
            scanner.feed(data)
        scanner.close()
        tree_id = ingest.finish()
    except BaseException:
        pipe.abort()
        raise
    finally:
        ingest.members.close()
    pipe.close()
    snap = Snapshot(tree=tree_id, root=ingest.root, host=host, volume=volume, tags=list(tags),
                    parent=parent.id if parent is not None else None, stats=stats,
                    excludes=list(excludes.patterns))
    progress.checkpoint()  # a cancelled job stops here: packs stay, no snapshot
    if before_commit is not None:  # e.g. the lock still holds: else no snapshot
        before_commit()
    return save_snapshot(repo, snap)
