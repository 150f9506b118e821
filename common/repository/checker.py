"""Repository check: structure, and optionally the data itself (``read_data``).

Structure: every index file opens; every indexed pack exists and its sealed header lists
the blobs the index says it holds; every snapshot opens and all its trees load; every
blob a snapshot references is indexed in an existing pack. ``read_data`` (all packs, or
a random ``read_data_subset`` fraction) downloads packs, opens their headers and decodes
and re-hashes every blob. The report names every damaged object (pack, blob, index file,
snapshot, tree) together with the snapshot paths that depend on it.

``check_snapshot`` does the same for *one* snapshot, looking only at what it references:
its trees (all read and authenticated), every referenced blob indexed, every pack holding
one present with a header that lists it (a truncated pack fails to open); with
``read_data`` every referenced blob is read (one ranged read per pack spanning the blobs
the snapshot needs), authenticated, decompressed and re-hashed; with ``subset`` only a
seeded random share of the referenced packs. Damage elsewhere in the repository (a pack
only other snapshots use) is not looked at. Paths in its problems are ``/a/b`` inside the
snapshot.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from common.errors import IntegrityError, NotFound, StorageError
from common.progress import NullTracker, ProgressTracker
from common.repository import ids
from common.repository.config import Repository
from common.repository.index import Index, IndexEntry
from common.repository.pack import read_pack, read_pack_header, read_range
from common.repository.repo import load_index, read_tree
from common.repository.snapshot import Snapshot, load_snapshot, snapshot_ids

_MAX_PATHS = 1000


@dataclass
class Problem:
    """One damaged or missing object and what depends on it."""

    kind: str  # pack, blob, index, snapshot, tree
    object_id: str
    message: str
    paths: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        """JSON form for job records."""
        return {"kind": self.kind, "id": self.object_id, "message": self.message,
                "paths": self.paths}


@dataclass
class CheckReport:
    """What a check looked at and everything it found."""

    snapshots: int = 0
    index_files: int = 0
    packs: int = 0
    blobs: int = 0
    packs_read: int = 0
    blobs_read: int = 0
    bytes_read: int = 0
    unreferenced_packs: int = 0
    packs_selected: int = 0
    seed: int | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing is damaged or missing."""
        return not self.problems

    def damaged_objects(self) -> set[str]:
        """Ids of every object named in a problem."""
        return {p.object_id for p in self.problems}


class _Checker:
    def __init__(self, repo: Repository, report: CheckReport) -> None:
        self.repo = repo
        self.report = report
        self.bad_packs: dict[bytes, Problem] = {}
        self.bad_blobs: dict[bytes, Problem] = {}
        self.clean_trees: set[bytes] = set()  # subtrees already checked and found whole

    def problem(self, kind: str, object_id: bytes, message: str) -> Problem:
        p = Problem(kind, object_id.hex(), message)
        self.report.problems.append(p)
        return p

    def by_pack(self, index: Index) -> dict[bytes, list[IndexEntry]]:
        out: dict[bytes, list[IndexEntry]] = defaultdict(list)
        for e in index:
            out[e.pack_id].append(e)
        return out

    def headers(self, packs: dict[bytes, list[IndexEntry]], present: set[bytes]) -> None:
        for pack_id, entries in sorted(packs.items()):
            if pack_id not in present:
                self.bad_packs[pack_id] = self.problem(
                    "pack", pack_id, f"pack {pack_id.hex()} is missing (indexed, not stored)")
                continue
            try:
                listed = {e.blob_id: e for e in read_pack_header(
                    self.repo.backend, ids.pack_key(pack_id), self.repo.cipher)}
            except (IntegrityError, NotFound, StorageError) as exc:
                self.bad_packs[pack_id] = self.problem("pack", pack_id, str(exc))
                continue
            for e in entries:
                if listed.get(e.blob_id) != e:
                    self.bad_blobs[e.blob_id] = self.problem(
                        "blob", e.blob_id,
                        f"blob {e.blob_id.hex()} is indexed in pack {pack_id.hex()} whose "
                        "header does not list it there")

    def read_data(self, packs: list[bytes], progress: ProgressTracker) -> None:
        progress.set_phase("read-data", files_total=len(packs))
        todo = [p for p in packs if p not in self.bad_packs]
        # two packs at a time (decryption, decompression and hashing run beside the reads);
        # results are recorded here, in pack order
        with ThreadPoolExecutor(2, thread_name_prefix="repo-check") as pool:
            for pack_id, result in zip(todo, pool.map(self._read_pack, todo), strict=True):
                if isinstance(result, Exception):
                    self.bad_packs[pack_id] = self.problem("pack", pack_id, str(result))
                    continue
                size, blobs, damaged = result
                self.report.packs_read += 1
                self.report.bytes_read += size
                self.report.blobs_read += blobs
                for blob_id, why in damaged:
                    self.bad_blobs[blob_id] = self.problem("blob", blob_id, why)
                if damaged:
                    self.bad_packs[pack_id] = self.problem(
                        "pack", pack_id,
                        f"pack {pack_id.hex()} holds {len(damaged)} damaged blob(s)")
                progress.add(size, 1)

    def _read_pack(self, pack_id: bytes
                   ) -> tuple[int, int, list[tuple[bytes, str]]] | Exception:
        """Read and verify one pack: (size, blobs, damaged blobs) or the read error."""
        try:
            entries, data = read_pack(self.repo.backend, ids.pack_key(pack_id),
                                      self.repo.cipher)
        except (IntegrityError, NotFound, StorageError) as exc:
            return exc
        damaged = []
        view = memoryview(data)
        for e in entries:
            try:
                self.repo.codec.decode(e.blob_type, e.blob_id,
                                       view[e.offset : e.offset + e.length], e.raw_length)
            except IntegrityError as exc:
                damaged.append((e.blob_id, str(exc)))
        return len(data), len(entries), damaged

    def snapshots(self, index: Index) -> None:
        for sid in snapshot_ids(self.repo):
            self.report.snapshots += 1
            try:
                snap = load_snapshot(self.repo, sid)
            except (IntegrityError, NotFound) as exc:
                self.problem("snapshot", sid, str(exc))
                continue
            self.tree(index, snap.tree, f"{sid.hex()[:8]}:", sid)

    def _blob_problem(self, index: Index, blob_id: bytes) -> Problem | None:
        if blob_id in self.bad_blobs:
            return self.bad_blobs[blob_id]
        entry = index.lookup(blob_id)
        if entry is None:
            self.bad_blobs[blob_id] = self.problem(
                "blob", blob_id, f"blob {blob_id.hex()} is referenced but not indexed")
            return self.bad_blobs[blob_id]
        return self.bad_packs.get(entry.pack_id)

    def tree(self, index: Index, tree_id: bytes, path: str, sid: bytes) -> bool:
        """Check a tree and everything below it; True when all of it is whole (such a
        subtree, shared by several snapshots, is not walked again)."""
        if tree_id in self.clean_trees:
            return True
        bad = self._blob_problem(index, tree_id)
        if bad is not None:
            _note(bad, path + "/ (whole directory)")
            return False
        try:
            tree = read_tree(self.repo, index, tree_id)
        except (IntegrityError, NotFound, StorageError) as exc:
            p = self.bad_blobs[tree_id] = self.problem("tree", tree_id, str(exc))
            _note(p, path + "/ (whole directory)")
            return False
        whole = True
        for node in tree.nodes:
            child = f"{path}/{node.name}"
            if node.type == "dir" and node.subtree is not None:
                whole = self.tree(index, node.subtree, child, sid) and whole
                continue
            for chunk in node.content:
                bad = self._blob_problem(index, chunk)
                if bad is not None:
                    whole = False
                    _note(bad, child)
                    entry = index.lookup(chunk)
                    if entry is not None and chunk in self.bad_blobs \
                            and entry.pack_id in self.bad_packs:
                        _note(self.bad_packs[entry.pack_id], child)
        if whole:
            self.clean_trees.add(tree_id)
        return whole


def _note(problem: Problem, path: str) -> None:
    if len(problem.paths) < _MAX_PATHS and path not in problem.paths:
        problem.paths.append(path)


def check_repository(
    repo: Repository,
    *,
    read_data: bool = False,
    read_data_subset: float | None = None,
    progress: ProgressTracker | None = None,
) -> CheckReport:
    """Check the repository; ``read_data`` reads every pack, ``read_data_subset`` (0-1]
    a random fraction of them. Paths in problems are ``<snapshot id prefix>:/a/b``."""
    progress = progress or NullTracker()
    report = CheckReport()
    checker = _Checker(repo, report)
    progress.set_phase("index")
    loaded = load_index(repo)
    report.index_files = len(loaded.files)
    for index_id, why in loaded.damaged.items():
        checker.problem("index", index_id, why)
    index = loaded.index
    report.blobs = len(index)
    present = {ids.id_from_key(o.key) for o in repo.backend.list(ids.PACKS_PREFIX)}
    packs = checker.by_pack(index)
    report.packs = len(present)
    report.unreferenced_packs = len(present - packs.keys())
    progress.set_phase("structure", files_total=len(packs))
    checker.headers(packs, present)
    if read_data or read_data_subset:
        chosen = sorted(packs.keys() & present)
        if not read_data and read_data_subset is not None:
            n = max(1, math.ceil(len(chosen) * min(max(read_data_subset, 0.0), 1.0)))
            chosen = sorted(random.sample(chosen, min(n, len(chosen))))
        checker.read_data(chosen, progress)
    progress.set_phase("snapshots")
    checker.snapshots(index)
    return report



class _SnapshotChecker(_Checker):
    """The checks of one snapshot, over only the objects it references."""

    def __init__(self, repo: Repository, report: CheckReport, index: Index) -> None:
        super().__init__(repo, report)
        self.index = index
        self.refs: dict[bytes, dict[bytes, IndexEntry]] = defaultdict(dict)
        self.bad_trees: set[bytes] = set()
        self.partly_bad: set[bytes] = set()  # packs whose header is fine, some blobs not
        self.unindexed = False

    def ref(self, blob_id: bytes, path: str) -> IndexEntry | None:
        entry = self.index.lookup(blob_id)
        if entry is None:
            self.unindexed = True
            p = self.bad_blobs.get(blob_id) or self.problem(
                "blob", blob_id, f"blob {blob_id.hex()} is referenced but not indexed")
            self.bad_blobs[blob_id] = p
            _note(p, path)
            return None
        self.refs[entry.pack_id][blob_id] = entry
        return entry

    def collect(self, tree_id: bytes, path: str) -> None:
        """Walk the trees (reading each), recording every referenced blob by pack."""
        where = (path or "") + "/ (whole directory)"
        if self.ref(tree_id, where) is None:
            return
        try:
            tree = read_tree(self.repo, self.index, tree_id)
        except (IntegrityError, NotFound, StorageError) as exc:
            self.bad_trees.add(tree_id)
            p = self.bad_blobs[tree_id] = self.problem("tree", tree_id, str(exc))
            _note(p, where)
            return
        for node in tree.nodes:
            child = f"{path}/{node.name}"
            if node.type == "dir" and node.subtree is not None:
                self.collect(node.subtree, child)
                continue
            if node.type == "hardlink":
                continue  # the same chunks as its first path, counted there
            for chunk in node.content:
                self.ref(chunk, child)

    def structure(self) -> None:
        """Every referenced pack is stored, opens, and lists the blobs where indexed."""
        for pack_id, entries in sorted(self.refs.items()):
            try:
                listed = {e.blob_id: e for e in read_pack_header(
                    self.repo.backend, ids.pack_key(pack_id), self.repo.cipher)}
            except NotFound:
                self.bad_packs[pack_id] = self.problem(
                    "pack", pack_id, f"pack {pack_id.hex()} is missing (indexed, not stored)")
                continue
            except (IntegrityError, StorageError) as exc:
                self.bad_packs[pack_id] = self.problem("pack", pack_id, str(exc))
                continue
            for e in entries.values():
                if listed.get(e.blob_id) != e:
                    self.bad_blobs[e.blob_id] = self.problem(
                        "blob", e.blob_id,
                        f"blob {e.blob_id.hex()} is indexed in pack {pack_id.hex()} whose "
                        "header does not list it there")

    def read_blobs(self, packs: list[bytes], progress: ProgressTracker) -> None:
        """Read, authenticate, decompress and re-hash every referenced blob of ``packs``."""
        progress.set_phase("read-data", files_total=len(packs))
        for pack_id in packs:
            if pack_id in self.bad_packs:
                continue
            entries = sorted(self.refs[pack_id].values(), key=lambda e: e.offset)
            start = entries[0].offset
            end = max(e.offset + e.length for e in entries)
            try:
                span = memoryview(read_range(self.repo.backend, ids.pack_key(pack_id), start,
                                             end - start))
            except (IntegrityError, NotFound, StorageError) as exc:
                self.bad_packs[pack_id] = self.problem("pack", pack_id, str(exc))
                continue
            self.report.packs_read += 1
            self.report.bytes_read += end - start
            damaged = 0
            for e in entries:
                try:
                    self.repo.codec.decode(e.blob_type, e.blob_id,
                                           span[e.offset - start : e.offset - start + e.length],
                                           e.raw_length)
                except IntegrityError as exc:
                    damaged += 1
                    self.bad_blobs[e.blob_id] = self.problem("blob", e.blob_id, str(exc))
                self.report.blobs_read += 1
            if damaged:
                self.partly_bad.add(pack_id)
                self.bad_packs[pack_id] = self.problem(
                    "pack", pack_id, f"pack {pack_id.hex()} holds {damaged} damaged blob(s)")
            progress.add(end - start, 1)

    def attribute(self, tree_id: bytes, path: str) -> None:
        """Name the files (and whole directories) that depend on a damaged object."""
        where = (path or "") + "/ (whole directory)"
        self._note_blob(tree_id, where)
        if tree_id in self.bad_trees or self.index.lookup(tree_id) is None:
            return
        try:
            tree = read_tree(self.repo, self.index, tree_id)
        except (IntegrityError, NotFound, StorageError):
            return  # noted as damaged in the first walk or by the pack checks
        for node in tree.nodes:
            child = f"{path}/{node.name}"
            if node.type == "dir" and node.subtree is not None:
                self.attribute(node.subtree, child)
                continue
            for chunk in node.content:
                self._note_blob(chunk, child)

    def _note_blob(self, blob_id: bytes, path: str) -> None:
        bad_blob = blob_id in self.bad_blobs
        if bad_blob:
            _note(self.bad_blobs[blob_id], path)
        entry = self.index.lookup(blob_id)
        if entry is not None and entry.pack_id in self.bad_packs \
                and (bad_blob or entry.pack_id not in self.partly_bad):
            _note(self.bad_packs[entry.pack_id], path)


def check_snapshot(
    repo: Repository,
    snapshot: Snapshot,
    *,
    read_data: bool = False,
    subset: float | None = None,
    seed: int | None = None,
    progress: ProgressTracker | None = None,
) -> CheckReport:
    """Check one snapshot and only what it references. ``read_data`` reads every blob it
    references; ``subset`` (0-1] reads the blobs of a random share of its packs, drawn with
    ``seed`` (reported in the result; a random one when None). ``packs`` and ``blobs``
    count what the snapshot references; ``packs_selected`` the packs chosen for reading."""
    progress = progress or NullTracker()
    report = CheckReport(snapshots=1)
    progress.set_phase("index")
    loaded = load_index(repo)
    report.index_files = len(loaded.files)
    checker = _SnapshotChecker(repo, report, loaded.index)
    progress.set_phase("trees")
    checker.collect(snapshot.tree, "")
    report.packs = len(checker.refs)
    report.blobs = sum(len(v) for v in checker.refs.values())
    progress.set_phase("structure", files_total=report.packs)
    checker.structure()
    if read_data or subset is not None:
        chosen = sorted(checker.refs)
        if subset is not None and not read_data:
            report.seed = seed if seed is not None else random.SystemRandom().randrange(2**32)
            share = min(max(subset, 0.0), 1.0)
            n = min(len(chosen), max(1, math.ceil(len(chosen) * share))) if chosen else 0
            chosen = sorted(random.Random(report.seed).sample(chosen, n))
        report.packs_selected = len(chosen)
        checker.read_blobs(chosen, progress)
    if report.problems:
        progress.set_phase("naming damaged files")
        checker.attribute(snapshot.tree, "")
    for index_id, why in loaded.damaged.items():
        if checker.unindexed:  # an unreadable index file may be why a blob is not indexed
            checker.problem("index", index_id, why)
    return report
