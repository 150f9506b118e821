"""Restore a snapshot (or selected paths of it) into an empty directory, with full fidelity.

Three phases:

1. *plan*: walk the snapshot's trees (every name is checked: no '/', '.', '..'), create
   directories, symlinks, fifos and devices, create every regular file at its final
   size (``ftruncate``, so holes stay holes) and note, per pack, which blobs go where;
2. *data*: packs are read one at a time (a single ranged read spanning the needed
   blobs), in offset order, by a small thread pool; each blob is authenticated,
   decompressed and re-hashed, then written with ``pwrite`` at its offsets — holes of
   sparse files are never written, so they stay sparse;
3. *metadata*: hardlinks, then owners (``lchown`` first: it clears setuid bits), modes,
   xattrs and times of files, then of directories deepest first (so writing into a
   directory does not disturb its restored mtime or a read-only mode).

A blob that fails verification does not stop the restore: every other file is written,
then an IntegrityError names the damaged blobs and exactly which files are incomplete.
"""

from __future__ import annotations

import contextlib
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from common.errors import Conflict, IntegrityError, NotFound, Refused, StorageError
from common.progress import NullTracker, ProgressTracker
from common.repository import ids
from common.repository.config import Repository
from common.repository.index import Index, IndexEntry
from common.repository.pack import read_range
from common.repository.repo import load_index, read_tree
from common.repository.snapshot import Snapshot
from common.repository.sparse import data_ranges
from common.repository.tree import Node, check_name

_HINT = "run a repository check --read-data to see every damaged object"


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


@dataclass
class _Target:
    path: str
    writes: list[tuple[int, int, int]]  # (file offset, start in blob, length)
    #: a file that is this one blob: created, written and given its metadata in one go
    whole: Node | None = None


@dataclass
class _Plan:
    files: list[tuple[str, Node]] = field(default_factory=list)
    dirs: list[tuple[str, Node]] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)
    blobs: dict[bytes, tuple[IndexEntry, list[_Target]]] = field(default_factory=dict)
    broken: dict[str, str] = field(default_factory=dict)  # path → why incomplete
    restored_files: set[str] = field(default_factory=set)
    sizes: list[tuple[str, int]] = field(default_factory=list)  # every regular file


def _split(path: str) -> list[str]:
    parts = [p for p in path.strip().strip("/").split("/") if p not in ("", ".")]
    for p in parts:
        check_name(p)
    return parts


class _Restorer:
    def __init__(self, repo: Repository, index: Index, dest: str, progress: ProgressTracker,
                 stats: RestoreStats, devices: bool = True) -> None:
        self.devices = devices
        self.repo = repo
        self.index = index
        self.dest = dest
        self.progress = progress
        self.stats = stats
        self.plan = _Plan()

    def full(self, rel: str) -> str:
        return os.path.join(self.dest, rel)

    # --- phase 1 -------------------------------------------------------------------
    def walk(self, tree_id: bytes, rel: str, selectors: list[list[str]], matched: set[int],
             sel_ids: list[int]) -> None:
        everything = any(not s for s in selectors)
        for node in read_tree(self.repo, self.index, tree_id).nodes:
            child_rel = f"{rel}/{node.name}" if rel else node.name
            sub: list[list[str]]
            if everything:
                sub, sub_ids = [[]], [-1]
            else:
                pairs = [(s[1:], i) for s, i in zip(selectors, sel_ids, strict=True)
                         if s[0] == node.name]
                if not pairs:
                    continue
                sub, sub_ids = [p[0] for p in pairs], [p[1] for p in pairs]
                whole = [i for p, i in pairs if not p]
                if not whole and node.type != "dir":
                    continue
                matched.update(whole)
            self.create(child_rel, node)
            if node.type == "dir" and node.subtree is not None:
                self.walk(node.subtree, child_rel, sub, matched, sub_ids)

    def create(self, rel: str, node: Node) -> None:
        path = self.full(rel)
        t = node.type
        if t == "dir":
            os.mkdir(path, 0o700)
            self.plan.dirs.append((rel, node))
            self.stats.dirs += 1
            return
        if t == "hardlink" and node.link in self.plan.restored_files:
            self.plan.links.append((rel, node.link))
            self.stats.files += 1
            return
        if t in ("file", "hardlink"):
            self._create_file(rel, node)
            return
        if t == "symlink":
            os.symlink(node.target or "", path)
        elif t == "fifo":
            os.mkfifo(path, 0o600)
        elif t in ("char", "block") and not self.devices:
            raise Refused(f"refused {rel!r}: a {t} device node "
                          f"({':'.join(map(str, node.rdev or (0, 0)))}); restores do not "
                          "create device nodes", "nothing was kept; if the device nodes are "
                          "genuine, set VOLKEEPER_RESTORE_DEVICE_NODES=true on the workers")
        elif t in ("char", "block", "socket"):
            kind = {"char": stat.S_IFCHR, "block": stat.S_IFBLK, "socket": stat.S_IFSOCK}[t]
            dev = os.makedev(*node.rdev) if node.rdev else 0
            try:
                os.mknod(path, 0o600 | kind, dev)
            except OSError as exc:
                self.stats.warnings.append(f"{rel}: cannot create {t} device: {exc.strerror}")
                return
        self.plan.files.append((rel, node))

    def _create_file(self, rel: str, node: Node) -> None:
        self.plan.sizes.append((rel, node.size))
        if len(node.content) == 1 and not node.holes:
            entry = self.index.lookup(node.content[0])
            if entry is not None and entry.raw_length == node.size:
                # the common small file: nothing to do until its blob is read
                self.plan.restored_files.add(rel)
                self.stats.files += 1
                known = self.plan.blobs.setdefault(entry.blob_id, (entry, []))
                known[1].append(_Target(rel, [(0, 0, node.size)], node))
                return
        fd = os.open(self.full(rel), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            if node.holes:  # data writes extend the file; only holes need the final size
                os.ftruncate(fd, node.size)
        finally:
            os.close(fd)
        self.plan.restored_files.add(rel)
        self.plan.files.append((rel, node))
        self.stats.files += 1
        ranges = data_ranges(node.holes, node.size)
        ri, pos = 0, ranges[0][0] if ranges else 0
        for chunk_id in node.content:
            entry = self.index.lookup(chunk_id)
            if entry is None:
                self.plan.broken[rel] = f"chunk {chunk_id.hex()} is not in the index"
                return
            writes, start = [], 0
            while start < entry.raw_length and ri < len(ranges):
                end = ranges[ri][1]
                n = min(entry.raw_length - start, end - pos)
                writes.append((pos, start, n))
                start += n
                pos += n
                if pos >= end:
                    ri += 1
                    pos = ranges[ri][0] if ri < len(ranges) else pos
            known = self.plan.blobs.setdefault(chunk_id, (entry, []))
            known[1].append(_Target(rel, writes))

    # --- phase 2 -------------------------------------------------------------------
    def read_packs(self, workers: int) -> dict[bytes, str]:
        by_pack: dict[bytes, list[tuple[IndexEntry, list[_Target]]]] = {}
        for entry, targets in self.plan.blobs.values():
            by_pack.setdefault(entry.pack_id, []).append((entry, targets))
        damaged: dict[bytes, str] = {}
        with ThreadPoolExecutor(workers, thread_name_prefix="repo-restore") as pool:
            for bad in pool.map(self._pack, sorted(by_pack.items())):
                damaged.update(bad)
        return damaged

    def _pack(self, item: tuple[bytes, list[tuple[IndexEntry, list[_Target]]]]
              ) -> dict[bytes, str]:
        pack_id, blobs = item
        blobs.sort(key=lambda b: b[0].offset)
        start = blobs[0][0].offset
        end = max(e.offset + e.length for e, _ in blobs)
        key = ids.pack_key(pack_id)
        try:
            span = memoryview(read_range(self.repo.backend, key, start, end - start))
        except (IntegrityError, NotFound, StorageError) as exc:
            why = f"pack {pack_id.hex()} could not be read: {exc}"
            return {e.blob_id: why for e, _ in blobs}
        self.stats.packs_read += 1
        self.stats.bytes_read += end - start
        bad: dict[bytes, str] = {}
        for entry, targets in blobs:
            raw = span[entry.offset - start : entry.offset - start + entry.length]
            try:
                plain = self.repo.codec.decode(entry.blob_type, entry.blob_id, raw,
                                               entry.raw_length)
            except IntegrityError as exc:
                bad[entry.blob_id] = str(exc)
                continue
            for target in targets:
                self._write(target, plain)
            self.stats.blobs += 1
        return bad

    def _write(self, target: _Target, plain: bytes) -> None:
        path = self.full(target.path)
        if target.whole is not None:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        else:
            fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
        try:
            view = memoryview(plain)
            for off, begin, n in target.writes:
                done = 0
                while done < n:
                    done += os.pwrite(fd, view[begin + done : begin + n], off + done)
                self.progress.add(n)
            if target.whole is not None:
                self.apply(fd, target.whole, path)
        finally:
            os.close(fd)

    def create_unwritten(self, targets: list[_Target]) -> None:
        """Create the single-blob files whose blob was damaged (empty, with metadata), so
        they are there like every other incomplete file."""
        for target in targets:
            if target.whole is not None:
                fd = os.open(self.full(target.path),
                             os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                os.close(fd)
                self.plan.files.append((target.path, target.whole))

    # --- phase 3 -------------------------------------------------------------------
    def finish(self, root: Node | None, workers: int) -> None:
        for rel, link in self.plan.links:
            os.link(self.full(link), self.full(rel))
        files = self.plan.files
        step = max(1, -(-len(files) // workers))
        with ThreadPoolExecutor(workers, thread_name_prefix="repo-restore-meta") as pool:
            list(pool.map(self._apply_all, [files[i : i + step]
                                            for i in range(0, len(files), step)]))
        for rel, node in reversed(self.plan.dirs):
            self.apply(self.full(rel), node)
        if root is not None:
            self.apply(self.dest, root)

    def _apply_all(self, items: list[tuple[str, Node]]) -> None:
        for rel, node in items:
            self.apply(self.full(rel), node)

    def apply(self, where: str | int, node: Node, path: str = "") -> None:
        """Owner, mode, xattrs and times of one restored entry (``where``: its path, or an
        open file descriptor of a regular file at ``path``)."""
        path = path or str(where)
        try:
            if isinstance(where, int):
                os.chown(where, node.uid, node.gid)
            else:
                os.lchown(where, node.uid, node.gid)
        except OSError as exc:
            self.stats.warnings.append(f"{path}: cannot set owner: {exc.strerror}")
        for name, value in node.xattrs.items():
            try:
                if isinstance(where, int):
                    os.setxattr(where, name, value)
                else:
                    os.setxattr(where, name, value, follow_symlinks=False)
            except OSError as exc:
                self.stats.warnings.append(f"{path}: cannot set xattr {name}: {exc.strerror}")
        if isinstance(where, int):
            os.chmod(where, node.mode)
            os.utime(where, ns=(node.mtime_ns, node.mtime_ns))
            return
        if node.type != "symlink":
            os.chmod(where, node.mode)
        with contextlib.suppress(NotImplementedError):
            os.utime(where, ns=(node.mtime_ns, node.mtime_ns), follow_symlinks=False)


def restore_snapshot(
    repo: Repository,
    snapshot: Snapshot,
    dest_dir: str | os.PathLike[str],
    *,
    paths: list[str] | None = None,
    progress: ProgressTracker | None = None,
    workers: int = 4,
    index: Index | None = None,
    devices: bool = True,
) -> RestoreStats:
    """Restore ``snapshot`` (or only ``paths`` inside it) into the empty ``dest_dir``.
    ``devices=False`` refuses (raises ``Refused``, before any file data is written) a
    snapshot holding character or block device nodes."""
    dest = os.fspath(dest_dir)
    if os.path.lexists(dest):
        if not os.path.isdir(dest) or os.path.islink(dest) or os.listdir(dest):
            raise Conflict(f"restore target {dest!r} is not an empty directory",
                           "restore into a new or empty directory")
    else:
        os.makedirs(dest)
    progress = progress or NullTracker()
    progress.set_phase("planning", snapshot.stats.bytes, snapshot.stats.files)
    if index is None:
        index = load_index(repo).index
    stats = RestoreStats()
    r = _Restorer(repo, index, dest, progress, stats, devices)
    selectors = [[]] if paths is None else [_split(p) for p in paths]
    matched: set[int] = set()
    r.walk(snapshot.tree, "", selectors, matched, list(range(len(selectors))))
    if paths is not None:
        missing = [p for i, p in enumerate(paths) if i not in matched and _split(p)]
        if missing:
            raise NotFound("path in snapshot", ", ".join(missing),
                           f"list snapshot {snapshot.id.hex()[:8]} to see its paths")
    progress.set_phase("restore", sum(size for _, size in r.plan.sizes), stats.files)
    damaged = r.read_packs(workers)
    for blob_id in damaged:
        for target in r.plan.blobs[blob_id][1]:
            r.plan.broken.setdefault(target.path, f"blob {blob_id.hex()} is damaged")
        r.create_unwritten(r.plan.blobs[blob_id][1])
    stats.bytes = sum(size for rel, size in r.plan.sizes if rel not in r.plan.broken)
    r.finish(snapshot.root if paths is None else None, workers)
    if damaged or r.plan.broken:
        blobs = "; ".join(damaged.values()) or "blobs missing from the index"
        files = ", ".join(sorted(r.plan.broken))
        raise IntegrityError(f"restore incomplete: {blobs}; files not restored correctly: "
                             f"{files}", _HINT)
    return stats
