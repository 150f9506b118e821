"""Restore of a snapshot as a tar stream (into volumes reachable only through Docker's API).

``write_snapshot_tar`` writes the snapshot (or selected paths of it) as a POSIX pax tar in
the layout ``DockerHost.archive_sink`` extracts: ``.`` (the volume root, full restores
only), then ``./a``, ``./dir/b`` … in tree order (depth first, names sorted by their raw
bytes). Each member carries numeric owners, mode, mtime (exact, as a pax decimal when it
has a fraction), symlink target, device numbers and xattrs (``SCHILY.xattr.*``); a
hardlink whose first path is in the stream before it is a hardlink member; otherwise it
carries the content and the group's later members (the first path too) link to it.
Sparse files are written whole (holes as zeros: dockerd writes them as allocated blocks
anyway). Sockets cannot be represented in tar; they are skipped with a warning.

Blobs come from a ``BlobFetcher`` (``blob_fetch``) in stream order, a window ahead,
grouped into ranged pack reads; every blob is authenticated and re-hashed before any of
its bytes go out. A file whose data fits in a window is checked whole before its header
is written; a damaged blob fails the restore with an IntegrityError naming the file (the
stream is abandoned without its end-of-archive marker, and the engine undoes the
restore).
"""

from __future__ import annotations

import itertools
import os
import tarfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO

from common.errors import IntegrityError, NotFound
from common.progress import NullTracker, ProgressTracker
from common.repository.core.repository import Repository
from common.repository.core.snapshot import Snapshot
from common.repository.core.tree import Node, check_link_path, check_name
from common.repository.restore.blob_fetch import BlobFetcher
from common.repository.restore.restorer import RestoreStats
from common.repository.restore.trees import narrow
from common.repository.system.sparse import data_ranges

WINDOW = 16 << 20  # plaintext bytes fetched ahead (twice: the one written, the next)
_BLOCK = 512
_ZEROS = bytes(1 << 20)
_HINT = "`volkeeper repair TARGET --read-data --dry-run` shows every damaged object"
_TYPES = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
          "hardlink": tarfile.REGTYPE, "fifo": tarfile.FIFOTYPE, "char": tarfile.CHRTYPE,
          "block": tarfile.BLKTYPE}


@dataclass
class _Member:
    rel: str  # "" for the volume root
    node: Node
    link: str | None = None  # emitted as a hardlink member to this path

    @property
    def data(self) -> bool:
        return self.node.type in ("file", "hardlink") and self.link is None

    @property
    def chunks(self) -> list[bytes]:
        return self.node.content if self.data else []


def _key(rel: str) -> tuple[bytes, ...]:
    """Sort key of a snapshot path in tree (stream) order."""
    return tuple(os.fsencode(p) for p in rel.split("/"))


class _Walk:
    """The members of a snapshot (or of selected paths of it) in stream order."""

    def __init__(self, repo: Repository, paths: list[list[str]] | None) -> None:
        self.repo = repo
        self.selectors: list[list[str]] = [[]] if paths is None else paths
        self.stand_in: dict[str, str] = {}  # first path of a hardlink group → path emitted

    def members(self, snap: Snapshot) -> Iterator[_Member]:
        if self.selectors == [[]]:
            yield _Member("", snap.root)
        yield from self._walk(snap.tree, "", self.selectors, list(range(len(self.selectors))))

    def _walk(self, tree_id: bytes, rel: str, selectors: list[list[str]],
              sel_ids: list[int]) -> Iterator[_Member]:
        everything = any(not s for s in selectors)
        for node in self.repo.read_tree(tree_id).nodes:
            child = f"{rel}/{node.name}" if rel else node.name
            sub: list[list[str]]
            if everything:
                sub, sub_ids = [[]], [-1]
            else:
                picked = narrow(selectors, sel_ids, node)
                if picked is None:
                    continue
                sub, sub_ids, _ = picked
            yield _Member(child, node, self._link_to(child, node))
            if node.type == "dir" and node.subtree is not None:
                yield from self._walk(node.subtree, child, sub, sub_ids)

    def _link_to(self, rel: str, node: Node) -> str | None:
        """The earlier path of the stream a node is a hardlink member to, if any.

        A hardlink node links to its first path when that is selected and earlier in
        tree order. Otherwise (the first path is not selected, or a tar stream named a
        path that sorts later as the first) this node carries the content and stands in
        for the first path: later hardlinks of the group, and the first path itself, link
        to it. Only such out-of-order groups are remembered.
        """
        if node.type == "file":
            return self.stand_in.pop(rel, None) if self.stand_in else None
        if node.type != "hardlink" or node.link is None:
            return None
        link = check_link_path(node.link)
        parts = link.split("/")
        if any(parts[: len(s)] == s for s in self.selectors) and _key(link) < _key(rel):
            return link
        first = self.stand_in.get(link)
        if first is None:
            self.stand_in[link] = rel
        return first


class _Writer:
    """Buffers small writes to the output stream."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.buf = bytearray()

    def write(self, data: bytes | memoryview) -> None:
        if len(data) >= 1 << 20:
            self.flush()
            self.out.write(data)
            return
        self.buf += data
        if len(self.buf) >= 1 << 20:
            self.flush()

    def zeros(self, n: int) -> None:
        while n > 0:
            take = min(n, len(_ZEROS))
            self.write(memoryview(_ZEROS)[:take])
            n -= take

    def flush(self) -> None:
        if self.buf:
            self.out.write(self.buf)
            self.buf = bytearray()


def header(m: _Member) -> bytes:
    """The tar header blocks (pax format) of one member."""
    node = m.node
    info = tarfile.TarInfo("." if not m.rel else "./" + m.rel)
    info.type = tarfile.LNKTYPE if m.link is not None else _TYPES[node.type]
    info.mode = node.mode & 0o7777
    info.uid, info.gid = node.uid, node.gid
    info.uname = info.gname = ""
    pax: dict[str, str] = {}
    sign = "-" if node.mtime_ns < 0 else ""
    secs, frac = divmod(abs(node.mtime_ns), 1_000_000_000)
    info.mtime = node.mtime_ns // 1_000_000_000
    if frac or node.mtime_ns < 0:
        pax["mtime"] = f"{sign}{secs}.{frac:09d}".rstrip("0").rstrip(".")
    for name, value in node.xattrs.items():
        pax[f"SCHILY.xattr.{name}"] = value.decode("utf-8", "surrogateescape")
    if m.link is not None:
        info.linkname = "./" + m.link
    elif node.type == "symlink":
        info.linkname = node.target or ""
    elif node.type in ("char", "block") and node.rdev is not None:
        info.devmajor, info.devminor = node.rdev
    if m.data:
        info.size = node.size
    info.pax_headers = pax
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _split(path: str) -> list[str]:
    parts = [p for p in path.strip().strip("/").split("/") if p not in ("", ".")]
    for p in parts:
        check_name(p)
    return parts


def write_snapshot_tar(
    repo: Repository,
    snapshot: Snapshot,
    out: BinaryIO,
    *,
    paths: list[str] | None = None,
    progress: ProgressTracker | None = None,
    window: int = WINDOW,
) -> RestoreStats:
    """Write ``snapshot`` (or only ``paths`` inside it) to ``out`` as a tar stream.
    Raises NotFound for a path not in the snapshot (before anything is written) and
    IntegrityError naming the file when a blob is damaged (the stream is then incomplete)."""
    progress = progress or NullTracker()
    repo.load_index()
    stats = RestoreStats()
    selectors = None if paths is None else [_split(p) for p in paths]
    walk = _Walk(repo, selectors)
    if selectors is not None:
        _check_paths(repo, snapshot, paths or [], selectors)
    total = snapshot.stats.bytes if paths is None else None
    progress.set_phase("restore", total, snapshot.stats.files if paths is None else None)
    members, planned = itertools.tee(walk.members(snapshot))
    plan = (c for m in planned for c in m.chunks)
    w = _Writer(out)
    with ThreadPoolExecutor(1, thread_name_prefix="repo-tar-fetch") as pool:
        fetcher = BlobFetcher(repo, plan, window, pool, stats)
        try:
            for m in members:
                _emit(m, w, fetcher, window, stats, progress)
        finally:
            if fetcher.next is not None:
                fetcher.next.cancel()
            w.flush()  # on failure too: the members before the damaged file are whole
    w.write(bytes(2 * _BLOCK))
    w.flush()
    return stats


def _check_paths(repo: Repository, snapshot: Snapshot, paths: list[str],
                 selectors: list[list[str]]) -> None:
    """NotFound naming the selected paths that are not in the snapshot."""
    missing = []
    for path, parts in zip(paths, selectors, strict=True):
        tree_id: bytes | None = snapshot.tree
        for part in parts:
            node = repo.read_tree(tree_id).by_name().get(part) if tree_id else None
            if node is None:
                missing.append(path)
                break
            tree_id = node.subtree if node.type == "dir" else None
    if missing:
        raise NotFound("path in snapshot", ", ".join(missing),
                       f"list snapshot {snapshot.id.hex()[:8]} to see its paths")


def _emit(m: _Member, w: _Writer, fetcher: BlobFetcher, window: int, stats: RestoreStats,
          progress: ProgressTracker) -> None:
    node = m.node
    if node.type == "socket":
        stats.warnings.append(f"{m.rel}: a socket cannot be restored through a tar stream")
        return
    if node.type == "dir":
        if m.rel:
            stats.dirs += 1
        w.write(header(m))
        return
    if not m.data:
        if node.type in ("file", "hardlink"):
            stats.files += 1
        w.write(header(m))
        return
    ranges = data_ranges(node.holes, node.size)
    entries = [fetcher.index.lookup(c) for c in node.content]
    stored = sum(e.raw_length for e in entries if e is not None)
    if None not in entries and stored != sum(b - a for a, b in ranges):
        raise IntegrityError(f"restore failed: the tree entry of {m.rel!r} is inconsistent "
                             f"({stored} bytes of chunks for {node.size} bytes)", _HINT)
    whole = stored <= window
    if whole:  # check every blob of the file before its header goes out
        fetcher.ensure(len(node.content))
        blobs = [_get(fetcher, c, m.rel) for c in node.content]
    w.write(header(m))
    chunks = iter(blobs) if whole else (_get(fetcher, c, m.rel) for c in node.content)
    pos = 0
    pending = memoryview(b"")
    for start, end in ranges:
        w.zeros(start - pos)
        pos = start
        while pos < end:
            if not pending:
                pending = memoryview(next(chunks))
            take = min(len(pending), end - pos)
            w.write(pending[:take])
            pending = pending[take:]
            pos += take
            progress.add(take)
    w.zeros(node.size - pos)
    w.write(bytes(-node.size % _BLOCK))
    stats.files += 1
    stats.bytes += node.size
    progress.add(0, 1)


def _get(fetcher: BlobFetcher, blob_id: bytes, rel: str) -> bytes:
    try:
        return fetcher.get(blob_id)
    except IntegrityError as exc:
        raise IntegrityError(f"restore failed: {rel!r} cannot be restored: {exc.message}",
                             _HINT) from exc
