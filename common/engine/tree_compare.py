"""Comparing a restored volume with a repository snapshot's tree (drills, replace-restores
and a migration's record and verify of repo snapshots).

``compare_tree`` walks the snapshot's trees and the restored directory side by side and
compares every entry — type, size, mode, owner, mtime (to the nanosecond), symlink
target, device numbers, xattrs, hardlinks, sparseness and content. Content is compared
by cutting the restored file with the repository's chunker and keyed hash, exactly as a
backup would, so no data is downloaded again: equal chunk ids mean equal bytes.

Most entries of a volume are plain files (no xattrs, no holes): their tree nodes stay JSON
objects (``tree.decode_some`` with ``_plain_file``, validated as ``Node.from_dict`` would)
and are compared field by field with the ``lstat`` (``_Comparer.same_file``); any
difference, or content that must be read, sends one through the full comparison of a
``Node`` (``entry``), which words the problem — so a migration's verify and the pre-copy's
record make no ``Node`` for the files that are as they should be.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.archive import VerifyReport
from common.archive.reader import MAX_PROBLEMS
from common.config import Settings
from common.engine.records import StoredBackup
from common.engine.repo import LOCK_RETRY_SECONDS, load_backup
from common.errors import IntegrityError, NotFound, StorageError
from common.progress import ProgressTracker
from common.repository import Repository
from common.repository.backup.read import xattrs_of
from common.repository.core.chunker import Chunker
from common.repository.core.ids import BlobType
from common.repository.core.locks import backup_lock
from common.repository.core.snapshot import Snapshot
from common.repository.core.tree import Node, content_digest, decode_some
from common.repository.system.sparse import DataReader, data_ranges
from common.storage.base import Backend

if TYPE_CHECKING:
    from common.repository.restore.sync import SyncStats

_READ = 1 << 20
_ZEROS = bytes(_READ)
_TYPES = {stat.S_IFIFO: "fifo", stat.S_IFCHR: "char", stat.S_IFBLK: "block",
          stat.S_IFSOCK: "socket", stat.S_IFLNK: "symlink", stat.S_IFDIR: "dir",
          stat.S_IFREG: "file"}


#: what a comparison saw of a file whose content matched: (inode, size, mtime_ns,
#: ctime_ns, digest of the backup's chunk ids), by path below the root
Seen = dict[str, tuple[int, int, int, int, str]]


def sync_record(root: Path, stats: SyncStats, seen: Seen) -> int:
    """Update ``seen`` (a comparison's record of the tree ``root``) with what a sync
    (``sync_snapshot``) just did to it: the entries of the paths it removed dropped, each
    file whose content it wrote (every blob verified as written, every chunk it kept
    hashed: ``SyncStats.wrote``) recorded with the stat it left, as a ``written``
    comparison records a restore's — so a comparison trusting ``seen`` reads none of them
    again, and a later write (a new ctime) is still noticed. Call it right after the sync,
    before anything else may write into ``root``. Returns how many files were recorded."""
    gone = set(stats.removed)
    if gone:
        for rel in [k for k in seen if _under(k, gone)]:
            del seen[rel]
    base = os.fspath(root)
    done = 0
    for rel, (size, digest) in stats.wrote.items():
        try:
            st = os.lstat(os.path.join(base, rel))
        except OSError:
            st = None
        if st is None or not stat.S_ISREG(st.st_mode) or st.st_size != size:
            seen.pop(rel, None)  # not what it wrote (then the comparison reads it)
            continue
        seen[rel] = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, digest)
        done += 1
    return done


def _under(rel: str, gone: set[str]) -> bool:
    """Whether ``rel`` or a directory above it is in ``gone``."""
    while True:
        if rel in gone:
            return True
        rel, _, name = rel.rpartition("/")
        if not name or not rel:
            return False


def compare_backup(backend: Backend, backup: StoredBackup, root: Path, settings: Settings,
                   tracker: ProgressTracker, *, trusted: Seen | None = None,
                   seen: Seen | None = None, written: bool = False,
                   opened: tuple[Repository, Snapshot] | None = None) -> VerifyReport:
    """Compare the directory ``root`` (a restored volume) with the backup's snapshot
    (``trusted``/``seen``/``written``: see ``compare_tree``). ``opened``: the repository
    and the backup's snapshot as a step before in the same job loaded them, its index
    read (a migration's apply then verify: not read again)."""
    repo, snap = opened or load_backup(backend, backup, settings)
    with backup_lock(repo, f"comparison with backup {backup.id}",
                     retry_for=LOCK_RETRY_SECONDS):
        return compare_tree(repo, snap, root, tracker, trusted=trusted, seen=seen,
                            written=written, load_index=opened is None)


def compare_tree(repo: Repository, snap: Snapshot, root: Path,
                 tracker: ProgressTracker, *, trusted: Seen | None = None,
                 seen: Seen | None = None, written: bool = False,
                 load_index: bool = True) -> VerifyReport:
    """Compare every entry below ``root`` with the snapshot (never raises for differences:
    they are listed in the report, the first ``MAX_PROBLEMS`` of them). ``seen`` collects
    each file whose content matched; a file whose entry in ``trusted`` (what an earlier
    comparison of this tree saw) still holds — same inode, size, mtime and ctime (which
    nobody can set back), and the same chunk ids in this snapshot — is not read again:
    its content is what was compared then (a migration's verify after its pre-copy's).
    ``written``: ``root`` was just restored from this snapshot by this process's caller
    (every blob verified as it was written): the metadata and sizes are compared, the
    content is not read but taken as the snapshot's and recorded in ``seen`` (with the
    ctime it left, so a later write is noticed). ``load_index=False``: the caller loaded
    the repository's index just before (the restore this records, or the apply this
    verifies: nothing was stored since)."""
    tracker.set_phase("comparing", bytes_total=snap.stats.bytes, files_total=snap.stats.files)
    if load_index:
        repo.load_index()
    cmp = _Comparer(repo, os.fspath(root), tracker, trusted or {}, seen, written)
    try:
        cmp.entry("/", os.fspath(root), snap.root)
        cmp.tree(snap.tree, "")
        cmp.settle(0)
    finally:
        cmp.pool.shutdown(wait=True, cancel_futures=True)
    return cmp.report


#: a file at least this large has its content compared in a helper thread beside the walk
#: (reading, chunking and hashing release the GIL), so a verify that must read large
#: changed files uses both cores; its problems are listed when its check ends
BESIDE_MIN = 1 << 20
_BESIDE_PENDING = 8


class _Comparer:
    def __init__(self, repo: Repository, root: str, tracker: ProgressTracker,
                 trusted: Seen, seen: Seen | None, written: bool = False) -> None:
        self.trusted, self.seen, self.written = trusted, seen, written
        self.repo = repo
        self.root = root
        self.tracker = tracker
        self.report = VerifyReport(ok=True, entries_checked=0, archive_sha256=None)
        self.pool = ThreadPoolExecutor(2, thread_name_prefix="compare")
        self.pending: deque[tuple[str, tuple[int, int, int, int, str], Future[list[str]]]] \
            = deque()
        self._local = threading.local()  # a chunker per thread

    def settle(self, keep: int) -> None:
        """Report the checks running beside the walk until at most ``keep`` are left."""
        while len(self.pending) > keep:
            rel, key, done = self.pending.popleft()
            out = done.result()
            if not out and self.seen is not None:
                self.seen[rel] = key
            for d in out:
                self.problem(f"{rel}: {d}")

    def problem(self, text: str) -> None:
        self.report.ok = False
        self.report.problem_count += 1
        if len(self.report.problems) < MAX_PROBLEMS:
            self.report.problems.append(text)

    def tree(self, tree_id: bytes, rel: str) -> None:
        try:
            nodes = decode_some(self.repo.read_blob(tree_id, BlobType.TREE),
                                f"tree {tree_id.hex()}", _plain_file)
        except (IntegrityError, NotFound, StorageError) as e:
            self.problem(f"{rel or '/'}: cannot read the backup's tree: {e}")
            return
        here = os.path.join(self.root, rel)
        try:
            present = set(os.listdir(here))  # str: the names ``os.fsdecode``'d
        except OSError as e:
            self.problem(f"{rel or '/'}: cannot list the restored directory: {e.strerror}")
            return
        names = {n["name"] if isinstance(n, dict) else n.name for n in nodes}
        for extra in sorted(present - names):
            self.problem(f"{rel}/{extra}: in the volume but not in the backup")
        # progress once per directory (before its subdirectories): a migration's verify
        # walks tens of thousands of entries inside its downtime, and every ``add`` of a
        # job's tracker takes a lock and looks for a cancel
        self.tracker.add(sum(n.get("size", 0) if isinstance(n, dict) else
                             n.size if n.type == "file" else 0 for n in nodes), len(nodes))
        base = os.path.join(self.root, rel) if rel else self.root
        base = base if base.endswith("/") else base + "/"
        prefix = f"{rel}/" if rel else ""
        same = self.same_file
        for node in nodes:
            if isinstance(node, dict):  # a plain file (``_plain_file``)
                name = node["name"]
                if name not in present:
                    self.problem(f"{prefix}{name}: in the backup but not in the volume")
                elif not same(prefix + name, base + name, node):
                    self.entry(prefix + name, base + name, Node.from_dict(node))
                continue
            child = prefix + node.name
            if node.name not in present:
                self.problem(f"{child}: in the backup but not in the volume")
                continue
            self.entry(child, base + node.name, node)
            if node.type == "dir" and node.subtree is not None:
                self.tree(node.subtree, child)

    def same_file(self, rel: str, path: str, d: dict[str, Any]) -> bool:
        """Whether the plain file node ``d`` (not decoded: ``_plain_file``) holds for the
        volume's ``path`` with nothing to report: a regular file with its mode, owner,
        mtime and size, no xattrs, and its content vouched for by ``trusted`` (or taken
        as the snapshot's: ``written``); then it is counted and recorded in ``seen``. Any
        other case (False) is compared by ``entry`` from a ``Node``, which words what
        differs — most files of a migration's verify and record take only this path."""
        if not self.written and rel not in self.trusted:
            return False  # its content must be read: ``entry`` (no lstat made twice)
        try:
            st = _lstat(path)
        except OSError:
            return False
        g = d.get
        if (st.st_mode != _REG | g("mode", 0) or st.st_size != g("size", 0)
                or st.st_mtime_ns != g("mtime_ns", 0) or st.st_uid != g("uid", 0)
                or st.st_gid != g("gid", 0)):
            return False
        try:
            if _listxattr(path, follow_symlinks=False):
                return False
        except OSError:
            pass  # none to be read: ``xattrs_of`` has {} then, as the node has
        key = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, d[_DIGEST])
        if not self.written:
            had = self.trusted.get(rel)
            if had is None or (had if type(had) is tuple else tuple(had)) != key:
                return False
        self.report.entries_checked += 1
        if self.seen is not None:
            self.seen[rel] = key
        return True

    def entry(self, rel: str, path: str, node: Node) -> None:
        self.report.entries_checked += 1
        if rel == "/":
            self.tracker.add(0, 1)  # the root (the trees' entries: ``tree``)
        try:
            st = os.lstat(path)
        except OSError as e:
            self.problem(f"{rel}: cannot be read: {e.strerror}")
            return
        want = "file" if node.type == "hardlink" else node.type
        have = _TYPES.get(stat.S_IFMT(st.st_mode), "unknown")
        if have != want:
            self.problem(f"{rel}: type: volume has {have}, backup says {want}")
            return
        diffs = []
        if (stat.S_IMODE(st.st_mode) != node.mode or st.st_uid != node.uid
                or st.st_gid != node.gid or st.st_mtime_ns != node.mtime_ns):
            for what, actual, expected in (
                    ("mode", stat.S_IMODE(st.st_mode), node.mode), ("uid", st.st_uid, node.uid),
                    ("gid", st.st_gid, node.gid), ("mtime_ns", st.st_mtime_ns, node.mtime_ns)):
                if actual != expected:
                    diffs.append(f"{what}: volume has {actual!r}, backup says {expected!r}")
        if node.type == "symlink" and os.readlink(path) != node.target:
            diffs.append(f"link: volume has {os.readlink(path)!r}, backup says {node.target!r}")
        if node.type in ("char", "block") and node.rdev is not None \
                and (os.major(st.st_rdev), os.minor(st.st_rdev)) != tuple(node.rdev):
            diffs.append(f"device: volume has {os.major(st.st_rdev)}:{os.minor(st.st_rdev)}, "
                         f"backup says {node.rdev[0]}:{node.rdev[1]}")
        xattrs = xattrs_of(path)
        if xattrs != node.xattrs:
            diffs.append(f"xattrs: volume has {sorted(xattrs)}, backup says {sorted(node.xattrs)}")
        if node.type == "hardlink" and node.link is not None:
            try:
                first = os.lstat(os.path.join(self.root, node.link))
                if (first.st_dev, first.st_ino) != (st.st_dev, st.st_ino):
                    diffs.append(f"link: not a hardlink of {node.link}")
            except OSError:
                diffs.append(f"link: its first path {node.link} is missing")
        if node.type in ("file", "hardlink"):
            diffs.extend(self.checked_content(rel, path, st, node))
        for d in diffs:
            self.problem(f"{rel}: {d}")

    def checked_content(self, rel: str, path: str, st: os.stat_result, node: Node
                        ) -> list[str]:
        """``content``, unless ``trusted`` vouches for it (see ``compare_tree``)."""
        key = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns,
               content_digest(node.content))
        if tuple(self.trusted.get(rel) or ()) == key:
            out: list[str] = []
        elif self.written:
            out = [] if st.st_size == node.size else [
                f"size: volume has {st.st_size}, backup says {node.size}"]
        elif st.st_size >= BESIDE_MIN and st.st_size == node.size:
            self.pending.append((rel, key, self.pool.submit(self.content, path, st, node)))
            self.settle(_BESIDE_PENDING)
            return []
        else:
            out = self.content(path, st, node)
        if not out and self.seen is not None:
            self.seen[rel] = key
        return out

    def _chunker(self) -> Chunker:
        chunker: Chunker | None = getattr(self._local, "chunker", None)
        if chunker is None:
            chunker = self._local.chunker = self.repo.chunker()
        return chunker

    def content(self, path: str, st: os.stat_result, node: Node) -> list[str]:
        if st.st_size != node.size:
            return [f"size: volume has {st.st_size}, backup says {node.size}"]
        out = []
        if node.holes and st.st_blocks * 512 >= st.st_size:
            out.append("sparse: the volume's file is not sparse, the backup's is")
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
        except OSError as e:
            return [*out, f"content cannot be read: {e.strerror}"]
        try:
            if any(not _zeros(fd, off, n) for off, n in node.holes):
                out.append("content: a region the backup has as a hole is not zeros")
            chunks = [self.repo.codec.blob_id(c) for c in
                      self._chunker().chunk_stream(DataReader(  # type: ignore[arg-type]
                          fd, data_ranges(node.holes, node.size)))]
        finally:
            os.close(fd)
        if chunks != node.content:
            same = next((i for i, (a, b) in enumerate(zip(chunks, node.content, strict=False))
                         if a != b), min(len(chunks), len(node.content)))
            out.append(f"content: differs from the backup (from chunk {same} of "
                       f"{len(node.content)})")
        return out


#: the fields a plain file's node may have (``_plain_file``)
_FILE_KEYS = frozenset({"name", "type", "mode", "uid", "gid", "mtime_ns", "ctime_ns",
                        "inode", "size", "content"})
_REG = stat.S_IFREG
_lstat, _listxattr, _sha256 = os.lstat, os.listxattr, hashlib.sha256
#: where ``_plain_file`` leaves a plain file's ``content_digest`` in its JSON object (no
#: key of a tree node: such a node has keys outside ``_FILE_KEYS``, so it is not plain)
_DIGEST = " digest"
_NO_CONTENT = content_digest([])


def _plain_file(d: Any) -> bool:
    """Whether the tree's JSON object ``d`` is a plain file that ``Node.from_dict`` would
    parse exactly (``tree.decode_some``'s ``keep``): type ``file``, integer fields, a
    permission mode, no xattrs, holes or other fields, its chunk ids 64 hex digits each;
    its ``content_digest`` is then left in it (``_DIGEST``). Any other node is made a
    ``Node`` (validated) and compared by ``_Comparer.entry``."""
    if type(d) is not dict or not d.keys() <= _FILE_KEYS or d.get("type") != "file":
        return False
    g = d.get
    mode, size = g("mode", 0), g("size", 0)
    if not (type(g("name")) is str and type(mode) is int and 0 <= mode <= 0o7777
            and type(size) is int and size >= 0 and type(g("uid", 0)) is int
            and type(g("gid", 0)) is int and type(g("mtime_ns", 0)) is int
            and type(g("ctime_ns", 0)) is int and type(g("inode", 0)) is int):
        return False
    content = g("content")
    if not content:
        d[_DIGEST] = _NO_CONTENT
        return True
    if type(content) is not list:
        return False
    n = len(content)
    try:
        ids = content[0] if n == 1 else "".join(content)
        raw = bytes.fromhex(ids)
        # 64 digits each (no whitespace, which ``bytes.fromhex`` skips)
        if len(ids) != 64 * n or len(raw) != 32 * n or (
                n > 1 and any(len(c) != 64 for c in content)):
            return False
    except (TypeError, ValueError):
        return False
    d[_DIGEST] = _sha256(raw).hexdigest()
    return True


def _zeros(fd: int, offset: int, length: int) -> bool:
    end = offset + length
    while offset < end:
        data = os.pread(fd, min(_READ, end - offset), offset)
        if not data:
            return True  # past the end: size is compared separately
        if data != _ZEROS[: len(data)]:
            return False
        offset += len(data)
    return True
