"""The walk of a sync restore (``sync``): the snapshot's trees and the destination side by
side, one directory at a time; what to do with each entry (keep, fix its metadata,
rebuild, replace, delete), the renames of rebuilt entries once their batch is written,
hardlinks, and directory metadata last. The restorer's batches write the data
(``restorer._Restorer`` is the base: its batching, large files in parts, runners).
"""

from __future__ import annotations

import os
import secrets
import stat
from dataclasses import dataclass

from common.errors import IntegrityError
from common.progress import ProgressTracker
from common.repository.core.index import IndexEntry
from common.repository.core.repository import Repository
from common.repository.core.tree import Node, check_link_path
from common.repository.restore.batch import NODE, PART, SYMLINK, FileRecord
from common.repository.restore.plan import Large, meta_of
from common.repository.restore.restorer import BATCH_BYTES, RestoreStats, _Restorer
from common.repository.restore.sync_fs import (
    Writes,
    copy_range,
    fix_at,
    fix_fd,
    holes_intact,
    match_chunks,
    remove_at,
    same_meta,
    xattrs_in,
)
from common.repository.restore.trees import refused
from common.repository.system.sparse import data_ranges

_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_PATCH = os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_IFMT = {"fifo": stat.S_IFIFO, "socket": stat.S_IFSOCK, "char": stat.S_IFCHR,
         "block": stat.S_IFBLK}


@dataclass
class SyncStats(RestoreStats):
    """What a sync did (``files``/``dirs``: of the snapshot; ``bytes``: written)."""

    files_written: int = 0  # regular files written or rewritten
    bytes_fetched: int = 0  # file data read from the repository
    bytes_reused: int = 0  # file data copied from the old version of a file
    entries_written: int = 0  # directories, symlinks, special files and links created
    metadata_fixed: int = 0
    deleted: int = 0
    unchanged: int = 0


class Syncer(_Restorer):
    """Syncs one snapshot into ``dest`` (see ``sync``)."""

    stats: SyncStats

    def __init__(self, repo: Repository, dest: str, progress: ProgressTracker,
                 stats: SyncStats, devices: bool, delete: bool, verify_content: bool,
                 in_place: bool) -> None:
        super().__init__(repo, dest, progress, stats, devices)
        self.delete = delete
        self.in_place = in_place
        self.patched: set[str] = set()  # files being rewritten in place
        self.verify_content = verify_content
        self.token = secrets.token_hex(4)
        self.n = 0
        self.temp_final: dict[str, str] = {}  # temporary name → final name
        self.claimed: set[tuple[int, int]] = set()  # inodes a file of the snapshot kept
        #: (rel, node, created | same | fixed: as found, before this sync wrote into it)
        self.sync_dirs: list[tuple[str, Node, str]] = []
        self.dir_set: set[str] = {""}

    # --- the walk --------------------------------------------------------------------
    def sync_tree(self, tree_id: bytes, rel: str) -> None:
        tree = self.trees.get(tree_id)
        fd = self.fds.dir(rel)
        have = {name: os.stat(name, dir_fd=fd, follow_symlinks=False)
                for name in os.listdir(fd)}
        if self.delete:
            wanted = {n.name for n in tree.nodes}
            for name in sorted(have.keys() - wanted):
                self.stats.deleted += remove_at(self.fds.dir(rel), name, join(rel, name))
        for node in tree.nodes:
            child = join(rel, node.name)
            self.entry(child, node, have.get(node.name))

    def entry(self, rel: str, node: Node, st: os.stat_result | None) -> None:
        t = node.type
        if t == "dir":
            self.sync_dir(rel, node, st)
        elif t == "hardlink":
            self.links.append((rel, node))
            self.stats.files += 1
        elif t == "file":
            self.stats.files += 1
            self.sync_file(rel, node, st)
        elif t == "symlink":
            target = node.target or ""
            parent, name = self.fds.parent(rel)
            if st is not None and stat.S_ISLNK(st.st_mode) and os.readlink(
                    name, dir_fd=parent) == target:
                self.kept(fix_at(parent, name, rel, st, meta_of(node), self.stats.warnings))
            else:
                self.replace(rel, st, (SYMLINK, rel, meta_of(node, target), 0, False, []))
        else:
            if t in ("char", "block") and not self.devices:
                raise refused(rel, node)
            if st is not None and stat.S_IFMT(st.st_mode) == _IFMT.get(t) and (
                    t not in ("char", "block")
                    or (os.major(st.st_rdev), os.minor(st.st_rdev)) == (node.rdev or (0, 0))):
                parent, name = self.fds.parent(rel)
                self.kept(fix_at(parent, name, rel, st, meta_of(node), self.stats.warnings))
            else:
                self.replace(rel, st, (NODE, rel, meta_of(node, (t, node.rdev)), 0, False, []))

    def sync_dir(self, rel: str, node: Node, st: os.stat_result | None) -> None:
        parent, name = self.fds.parent(rel)
        if st is not None and not stat.S_ISDIR(st.st_mode):
            self.stats.deleted += remove_at(parent, name, rel)
            st = None
        if st is None:
            os.mkdir(name, 0o700, dir_fd=parent)
            self.stats.entries_written += 1
            state = "created"
        else:
            same = same_meta(st, meta_of(node), xattrs_in(parent, name))
            state = "same" if same else "fixed"
        self.stats.dirs += 1
        self.sync_dirs.append((rel, node, state))
        self.dir_set.add(rel)
        if node.subtree is not None:
            self.sync_tree(node.subtree, rel)

    def kept(self, changed: bool) -> None:
        if changed:
            self.stats.metadata_fixed += 1
        else:
            self.stats.unchanged += 1

    def temp(self, rel: str) -> str:
        self.n += 1
        head, _, _ = rel.rpartition("/")
        temp = join(head, f".vksync-{self.token}-{self.n}")
        self.temp_final[temp] = rel
        return temp

    def replace(self, rel: str, st: os.stat_result | None, record: FileRecord) -> None:
        """Create a symlink or special file; an existing entry is replaced."""
        if st is not None and stat.S_ISDIR(st.st_mode):
            parent, name = self.fds.parent(rel)
            self.stats.deleted += remove_at(parent, name, rel)
            st = None
        if st is not None:
            record = (record[0], self.temp(rel), *record[2:])
        self.stats.entries_written += 1
        self.add(record)

    # --- regular files ---------------------------------------------------------------
    def sync_file(self, rel: str, node: Node, st: os.stat_result | None) -> None:
        if st is not None and stat.S_ISDIR(st.st_mode):
            parent, name = self.fds.parent(rel)
            self.stats.deleted += remove_at(parent, name, rel)
            st = None
        if st is None or not stat.S_ISREG(st.st_mode):
            self.write_new(self.temp(rel) if st is not None else rel, node)
            return
        inode = (st.st_dev, st.st_ino)
        shared = st.st_nlink > 1 and inode in self.claimed
        if st.st_nlink > 1:
            self.claimed.add(inode)
        parent, name = self.fds.parent(rel)
        same_size = not shared and st.st_size == node.size
        quick = same_size and st.st_mtime_ns == node.mtime_ns and not self.verify_content
        if quick and same_meta(st, meta_of(node), xattrs_in(parent, name)):
            self.stats.unchanged += 1  # the common case: no open, one listxattr
            self.progress.add(node.size, 1)
            return
        fd = os.open(name, _READ, dir_fd=parent)
        try:
            if quick:
                self.meta_only(fd, rel, node)
                return
            planned = self.plan(rel, node)
            if planned is None:
                return  # a chunk the index lacks: the old file stays, the error names it
            matches = match_chunks(fd, st.st_size,
                                   [(e.blob_id, e.raw_length, w) for e, w in planned],
                                   self.repo.codec.blob_id)
            if same_size and all(matches) and holes_intact(fd, node.holes):
                self.meta_only(fd, rel, node)
                return
            self.rewrite(rel, node, fd, planned, matches, st.st_nlink == 1)
        finally:
            os.close(fd)

    def meta_only(self, fd: int, rel: str, node: Node) -> None:
        self.kept(fix_fd(fd, rel, meta_of(node), self.stats.warnings))
        self.progress.add(node.size, 1)

    def write_new(self, rel: str, node: Node) -> None:
        self.stats.files_written += 1
        self.stats.bytes_fetched += node.size - sum(n for _o, n in node.holes)
        self.add_file(rel, node)

    def plan(self, rel: str, node: Node) -> list[tuple[IndexEntry, Writes]] | None:
        """Where each chunk of ``node`` goes in the file (None: a chunk is not indexed)."""
        size = node.size
        ranges = data_ranges(node.holes, size)
        ri, pos = 0, ranges[0][0] if ranges else 0
        planned: list[tuple[IndexEntry, Writes]] = []
        for chunk_id in node.content:
            entry = self.index.lookup(chunk_id)
            if entry is None:
                self._broken(rel, self.repo.unindexed(chunk_id), size)
                return None
            writes: Writes = []
            start = 0
            while start < entry.raw_length and ri < len(ranges):
                end = ranges[ri][1]
                n = min(entry.raw_length - start, end - pos)
                writes.append((pos, start, n))
                start += n
                pos += n
                if pos >= end:
                    ri += 1
                    pos = ranges[ri][0] if ri < len(ranges) else pos
            planned.append((entry, writes))
        return planned

    def rewrite(self, rel: str, node: Node, old: int, planned: list[tuple[IndexEntry, Writes]],
                matches: list[bool], single: bool) -> None:
        """Rebuild ``rel``: under a temporary name (the chunks the old file ``old`` holds
        are copied from it, the others fetched in batches; renamed when complete), or with
        ``in_place``, when ``rel`` is no hardlink (``single``) and has no data where the
        snapshot has holes, by writing only the changed chunks into it."""
        reused = 0
        if self.in_place and single and holes_intact(old, node.holes):
            temp = rel
            self.patched.add(rel)
            parent, name = self.fds.parent(rel)
            fd = os.open(name, _PATCH, dir_fd=parent)
            try:
                os.ftruncate(fd, node.size)
            finally:
                os.close(fd)
            reused = sum(n for (_e, ws), ok in zip(planned, matches, strict=True) if ok
                         for _p, _s, n in ws)
        else:
            temp = self.temp(rel)
            parent, name = self.fds.parent(temp)
            fd = os.open(name, _CREATE, 0o600, dir_fd=parent)
            try:
                os.ftruncate(fd, node.size)  # what is never written stays a hole
                for (_entry, writes), ok in zip(planned, matches, strict=True):
                    if ok:
                        for pos, _start, n in writes:
                            copy_range(old, fd, pos, n)
                            reused += n
            finally:
                os.close(fd)
        self.stats.files_written += 1
        self.stats.bytes_reused += reused
        self.progress.add(reused, 0)
        state = self.large[temp] = Large(meta_of(node), node.size)
        part: list[tuple[int, int, int, int]] = []
        accounted = reused
        for (entry, writes), ok in zip(planned, matches, strict=True):
            if ok:
                continue
            no = self.batch.blob(entry)
            part.extend((no, off, begin, n) for off, begin, n in writes)
            self.stats.bytes_fetched += sum(w[2] for w in writes)
            if self.batch.nbytes >= BATCH_BYTES:
                n = sum(w[3] for w in part)
                accounted += n
                self._part(temp, state, part, n)
                part = []
        self.batch.done_files += 1
        self._part(temp, state, part, node.size - accounted)
        state.outstanding -= 1
        if state.outstanding == 0:
            self._finish_large(temp)

    # --- renames once written ----------------------------------------------------------
    def add(self, record: FileRecord, nbytes: int = 0) -> None:
        if record[0] != PART and record[1] in self.temp_final:
            self.batch.renames.append((record[1], self.temp_final[record[1]]))
        super().add(record, nbytes)

    def collect(self) -> None:
        b = self.inflight[0][1]
        super().collect()
        for temp, final in b.renames:
            self.rename(temp, final)

    def _finish_large(self, rel: str) -> None:
        if rel in self.patched:  # an existing inode: extra xattrs removed too
            self.patched.discard(rel)
            meta = self.large.pop(rel).meta
            parent, name = self.fds.parent(rel)
            fd = os.open(name, _READ, dir_fd=parent)
            try:
                fix_fd(fd, rel, meta, self.stats.warnings)
            finally:
                os.close(fd)
        elif rel in self.broken:
            self.large.pop(rel)
        else:
            super()._finish_large(rel)
        final = self.temp_final.get(rel)
        if final is not None:
            self.rename(rel, final)

    def rename(self, temp: str, final: str) -> None:
        """Put the written ``temp`` in place of ``final`` (a damaged one is dropped: the
        old version stays, and the error names the final name)."""
        del self.temp_final[temp]
        parent, name = self.fds.parent(temp)
        _, final_name = final.rpartition("/")[::2]
        if temp in self.broken:
            self.broken[final] = self.broken.pop(temp)
            os.unlink(name, dir_fd=parent)
            return
        os.rename(name, final_name, src_dir_fd=parent, dst_dir_fd=parent)

    # --- hardlinks and directories -----------------------------------------------------
    def sync_links(self) -> None:
        """Each hardlink made a link of its first path (when that is a regular file of
        the snapshot's directories), else synced as a file with its own content."""
        self.drain()
        own: set[str] = set()
        for rel, node in self.links:
            if node.link not in own and self.regular(node.link or "") is None:
                own.add(rel)
                self.sync_file(rel, node, self.lstat(rel))
        self.drain()
        for rel, node in self.links:
            if rel in own:
                continue
            target = node.link or ""
            have, first = self.lstat(rel), self.regular(target)
            if first is None:  # its first path is a link written with its own content
                self.stats.warnings.append(f"{rel}: not linked: {target} is not a file")
                continue
            if have is not None and (have.st_dev, have.st_ino) == (first.st_dev, first.st_ino):
                self.stats.unchanged += 1
                self.progress.add(0, 1)
                continue
            self.link(rel, target, have)
            self.stats.entries_written += 1
            self.progress.add(0, 1)

    def link(self, rel: str, target: str, have: os.stat_result | None) -> None:
        """Make ``rel`` a hardlink of ``target`` (an existing ``rel`` is replaced)."""
        parent, name = self.fds.parent(rel)
        if have is not None and stat.S_ISDIR(have.st_mode):
            self.stats.deleted += remove_at(parent, name, rel)
            have = None
        tmp = name
        if have is not None:
            tmp = self.temp(rel).rpartition("/")[2]
            del self.temp_final[join(rel.rpartition("/")[0], tmp)]
        src_dir, src = self.fds.parent(target)
        src_dir = os.dup(src_dir)  # the next lookup may close the cached one
        try:
            dst_dir, dst = self.fds.parent(rel)
            os.link(src, tmp, src_dir_fd=src_dir, dst_dir_fd=dst_dir, follow_symlinks=False)
            if tmp != dst:
                os.rename(tmp, dst, src_dir_fd=dst_dir, dst_dir_fd=dst_dir)
        finally:
            os.close(src_dir)

    def lstat(self, rel: str) -> os.stat_result | None:
        parent, name = self.fds.parent(rel)
        try:
            return os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def regular(self, target: str) -> os.stat_result | None:
        """The destination's ``target`` when it is a regular file in a snapshot directory."""
        try:
            check_link_path(target)
        except IntegrityError:
            return None
        if os.path.dirname(target) not in self.dir_set:
            return None
        st = self.lstat(target)
        return st if st is not None and stat.S_ISREG(st.st_mode) else None

    def finish_dirs(self, root: Node) -> None:
        for rel, node, state in reversed(self.sync_dirs):
            fix_fd(self.fds.dir(rel), rel, meta_of(node), self.stats.warnings)
            if state != "created":
                self.kept(state == "fixed")
        self.kept(fix_fd(self.fds.root, ".", meta_of(root), self.stats.warnings))


def join(rel: str, name: str) -> str:
    return f"{rel}/{name}" if rel else name
