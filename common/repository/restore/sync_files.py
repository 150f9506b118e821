"""Writing the files of a sync restore (``sync``): what a regular file of the snapshot
needs when the destination already has something at its path — nothing, its metadata
fixed, its changed chunks written into it (``in_place``), or a rebuild under a temporary
name renamed over it once its batch is written — and the bookkeeping of those renames.
``FileSyncer`` extends the restorer (``restorer._Restorer``: batching, large files in
parts, runners); ``syncer.Syncer`` adds the walk, hardlinks and directories.
"""

from __future__ import annotations

import os
import secrets
import stat
from dataclasses import dataclass, field

from common.progress import ProgressTracker
from common.repository.core.index import IndexEntry
from common.repository.core.repository import Repository
from common.repository.core.tree import Node, content_digest
from common.repository.restore.batch import PART, PATCH, FileRecord
from common.repository.restore.plan import Large, Writes, chunk_writes, meta_of
from common.repository.restore.restorer import BATCH_BYTES, RestoreStats, _Restorer
from common.repository.restore.sync_base import BaseChunks
from common.repository.restore.sync_fs import (
    copy_range,
    fix_fd,
    holes_intact,
    match_chunks,
    remove_at,
    same_meta,
    xattrs_in,
)

_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_PATCH = os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


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
    #: changed files whose kept chunks a record and a base snapshot told (``sync_base``)
    files_known: int = 0
    #: the destination was trusted to hold the base (``trust_base`` taken: the base could
    #: be loaded, no ``verify_content``)
    trusted: bool = False
    #: directories not entered: their subtree is the trusted base's (``sync_base``)
    subtrees_skipped: int = 0
    #: files whose node is the trusted base's: kept without a look (``sync_base``)
    files_held: int = 0
    #: the regular files whose content this sync wrote or compared (every blob it wrote
    #: verified, every chunk it kept hashed or known from a record: ``sync_base``), by
    #: final path: (size, ``content_digest``);
    #: not the files it trusted by size and mtime (``verify_content=False``)
    wrote: dict[str, tuple[int, str]] = field(default_factory=dict, repr=False)
    #: the paths it removed (a directory with everything below it)
    removed: list[str] = field(default_factory=list, repr=False)


class FileSyncer(_Restorer):
    """The file-writing half of a sync of one snapshot into ``dest``."""

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
        self.base: BaseChunks | None = None  # a record and a base snapshot (``sync_base``)
        #: the destination is trusted to hold the base (``sync_base``); the directories
        #: not entered (their subtree is the base's)
        self.trust = False
        self.skipped: set[str] = set()

    def remove(self, parent: int, name: str, rel: str) -> None:
        """Remove the entry ``name`` (at ``rel``) of the directory ``parent``."""
        self.stats.deleted += remove_at(parent, name, rel)
        self.stats.removed.append(rel)

    def wrote(self, rel: str, node: Node) -> None:
        """``rel`` (its final path) gets the content of ``node``, verified as written."""
        self.stats.wrote[self.temp_final.get(rel, rel)] = (node.size,
                                                           content_digest(node.content))

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

    # --- regular files ---------------------------------------------------------------
    def sync_file(self, rel: str, node: Node, st: os.stat_result | None) -> None:
        if st is not None and stat.S_ISDIR(st.st_mode):
            parent, name = self.fds.parent(rel)
            self.remove(parent, name, rel)
            st = None
        if st is None or not stat.S_ISREG(st.st_mode):
            self.write_new(self.temp(rel) if st is not None else rel, node)
            return
        inode = (st.st_dev, st.st_ino)
        shared = st.st_nlink > 1 and (inode in self.claimed or self.unclaimed(rel))
        if st.st_nlink > 1:
            self.claimed.add(inode)
        parent, name = self.fds.parent(rel)
        same_size = not shared and st.st_size == node.size
        quick = same_size and st.st_mtime_ns == node.mtime_ns and not self.verify_content
        if quick and same_meta(st, meta_of(node), xattrs_in(parent, name)):
            self.stats.unchanged += 1  # the common case: no open, one listxattr
            self.progress.add(node.size, 1)
            return
        planned: list[tuple[IndexEntry, Writes]] = []
        known: list[bool | None] | None = None
        if not quick:
            if self.in_place and st.st_nlink == 1 and self.whole(rel, node, st):
                return
            got = self.plan(rel, node)
            if got is None:
                return  # a chunk the index lacks: the old file stays, the error names it
            planned = got
            known = None if self.base is None else self.base.matches(rel, st, node, planned)
            if known is not None:
                self.stats.files_known += 1
                told = [k is True for k in known]
                if (None not in known and not node.holes and not (same_size and all(told))
                        and (not any(told) or (self.in_place and st.st_nlink == 1))):
                    # nothing of the old file to read or copy: no need to open it
                    self.rewrite(rel, node, -1, planned, told, st.st_nlink == 1)
                    return
        fd = os.open(name, _READ, dir_fd=parent)
        try:
            if quick:
                self.meta_only(fd, rel, node)
                return
            matches = self.match(fd, st, planned, known)
            if same_size and all(matches) and holes_intact(fd, node.holes):
                self.meta_only(fd, rel, node)
                self.wrote(rel, node)  # its chunks hashed (or known): the snapshot's
                return
            self.rewrite(rel, node, fd, planned, matches, st.st_nlink == 1)
        finally:
            os.close(fd)

    def whole(self, rel: str, node: Node, st: os.stat_result) -> bool:
        """A changed small file (one chunk, no holes) that the record says holds other
        content (``sync_base``): its chunk written over it in place without planning —
        the common changed file of a cut-over; False (nothing done) for any other."""
        if (self.base is None or node.holes or len(node.content) != 1
                or node.size > BATCH_BYTES):
            return False
        entry = self.index.lookup(node.content[0])
        if entry is None or entry.raw_length != node.size:
            return False
        todo = [(entry, [(0, 0, node.size)])]
        if self.base.matches(rel, st, node, todo) != [False]:
            return False
        self.stats.files_known += 1
        self.wrote(rel, node)
        self.patch(rel, node, todo, 0, node.size)
        return True

    def unclaimed(self, rel: str) -> bool:
        """Whether the hardlinked ``rel`` may share its inode with a file of a skipped
        subtree that claimed it unseen: trusting the base, unless it was a regular file
        (a first path) there (``sync_base``)."""
        if not self.trust or self.base is None:
            return False
        was = self.base.node(rel)
        return was is None or was.type != "file"

    def match(self, fd: int, st: os.stat_result, planned: list[tuple[IndexEntry, Writes]],
              known: list[bool | None] | None) -> list[bool]:
        """Which planned chunks the old file ``fd`` holds at their offsets: those a record
        and the base snapshot do not tell (``known``, ``sync_base``) read and hashed."""
        todo = [(e.blob_id, e.raw_length, w)
                for (e, w), k in zip(planned, known or [None] * len(planned), strict=True)
                if k is None]
        hashed = iter(match_chunks(fd, st.st_size, todo, self.repo.codec.blob_id)
                      if todo else [])
        if known is None:
            return list(hashed)
        return [next(hashed) if k is None else k for k in known]

    def meta_only(self, fd: int, rel: str, node: Node) -> None:
        self.kept(fix_fd(fd, rel, meta_of(node), self.stats.warnings))
        self.progress.add(node.size, 1)

    def write_new(self, rel: str, node: Node) -> None:
        self.wrote(rel, node)
        self.stats.files_written += 1
        self.stats.bytes_fetched += node.size - sum(n for _o, n in node.holes)
        self.add_file(rel, node)

    def plan(self, rel: str, node: Node) -> list[tuple[IndexEntry, Writes]] | None:
        """Where each chunk of ``node`` goes in the file (None: a chunk is not indexed)."""
        planned, missing = chunk_writes(self.index, node)
        if missing is not None:
            self._broken(rel, self.repo.unindexed(missing), node.size)
            return None
        return planned

    def rewrite(self, rel: str, node: Node, old: int, planned: list[tuple[IndexEntry, Writes]],
                matches: list[bool], single: bool) -> None:
        """Rebuild ``rel``: under a temporary name (the chunks the old file ``old`` holds
        are copied from it, the others fetched in batches; renamed when complete), or with
        ``in_place``, when ``rel`` is no hardlink (``single``) and has no data where the
        snapshot has holes, by writing only the changed chunks into it. (``old`` is -1,
        not open, when no chunk is copied and the snapshot's file has no holes.)"""
        reused = 0
        self.wrote(rel, node)  # the chunks kept were hashed (``match_chunks``), the rest
        # is written from verified blobs
        if self.in_place and single and holes_intact(old, node.holes):
            reused = sum(n for (_e, ws), ok in zip(planned, matches, strict=True) if ok
                         for _p, _s, n in ws)
            todo = [(e, ws) for (e, ws), ok in zip(planned, matches, strict=True) if not ok]
            data = sum(e.raw_length for e, _ws in todo)
            if data <= BATCH_BYTES:
                self.patch(rel, node, todo, reused, data)
                return
            temp = rel
            self.patched.add(rel)
            parent, name = self.fds.parent(rel)
            fd = os.open(name, _PATCH, dir_fd=parent)
            try:
                os.ftruncate(fd, node.size)
            finally:
                os.close(fd)
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

    def patch(self, rel: str, node: Node, todo: list[tuple[IndexEntry, Writes]],
              reused: int, data: int) -> None:
        """Rewrite the chunks ``todo`` (``data`` bytes) of ``rel`` in place, in one batch
        (``PATCH``)."""
        if self.batch.files and self.batch.nbytes + data > BATCH_BYTES:
            self.flush()
        b = self.batch
        out = [(b.blob(e), off, begin, n) for e, ws in todo for off, begin, n in ws]
        b.done_files += 1
        self.stats.files_written += 1
        self.stats.bytes_reused += reused
        self.stats.bytes_fetched += sum(w[3] for w in out)
        if reused:
            self.progress.add(reused, 0)
        self.add((PATCH, rel, meta_of(node), node.size, False, out), node.size - reused)

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


def join(rel: str, name: str) -> str:
    """The relative path of ``name`` in the directory ``rel``."""
    return f"{rel}/{name}" if rel else name
