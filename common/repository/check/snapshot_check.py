"""Checking one snapshot: ``check_snapshot`` looks only at what the snapshot references:
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

from common.errors import IntegrityError, NotFound, StorageError
from common.progress import NullTracker, ProgressTracker
from common.repository.check.report import CheckReport, Findings, note, unindexed_message
from common.repository.core import ids
from common.repository.core.index import IndexEntry
from common.repository.core.pack import read_pack_header, read_range
from common.repository.core.repository import Repository
from common.repository.core.snapshot import Snapshot


class _SnapshotChecker(Findings):
    """The checks of one snapshot, over only the objects it references."""

    def __init__(self, repo: Repository, report: CheckReport) -> None:
        super().__init__(repo, report)
        self.index = repo.index
        self.refs: dict[bytes, dict[bytes, IndexEntry]] = defaultdict(dict)
        self.bad_trees: set[bytes] = set()
        self.partly_bad: set[bytes] = set()  # packs whose header is fine, some blobs not
        self.unindexed = False
        self.marked: set[bytes] = set()  # referenced blobs whose only copy is marked

    def lookup(self, blob_id: bytes) -> IndexEntry | None:
        """The blob's indexed copy, else the damaged copy a damage mark left out."""
        entry = self.index.lookup(blob_id)
        if entry is None and blob_id in self.repo.quarantined:
            entry = self.repo.quarantined[blob_id]
            self.marked.add(blob_id)
        return entry

    def marked_problems(self) -> None:
        """A blob whose only copy a damage mark names is damaged even when this check did
        not read it (again): the index leaves it out, so nothing can restore it."""
        for blob_id in sorted(self.marked - self.bad_blobs.keys()):
            self.bad_blobs[blob_id] = self.problem(
                "blob", blob_id, unindexed_message(self.repo, blob_id))

    def ref(self, blob_id: bytes, path: str) -> IndexEntry | None:
        entry = self.lookup(blob_id)
        if entry is None:
            self.unindexed = True
            p = self.bad_blobs.get(blob_id) or self.problem(
                "blob", blob_id, unindexed_message(self.repo, blob_id))
            self.bad_blobs[blob_id] = p
            note(p, path)
            return None
        self.refs[entry.pack_id][blob_id] = entry
        return entry

    def collect(self, tree_id: bytes, path: str) -> None:
        """Walk the trees (reading each), recording every referenced blob by pack."""
        where = (path or "") + "/ (whole directory)"
        if self.ref(tree_id, where) is None:
            return
        try:
            tree = self.repo.read_tree(tree_id)
        except (IntegrityError, NotFound, StorageError) as exc:
            self.bad_trees.add(tree_id)
            p = self.bad_blobs[tree_id] = self.problem("tree", tree_id, str(exc))
            note(p, where)
            entry = self.index.lookup(tree_id)
            if entry is not None and not isinstance(exc, StorageError):
                self.damage.add_blob(tree_id, entry.pack_id)
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
                self.damage.packs.add(pack_id)
                continue
            except (IntegrityError, StorageError) as exc:
                self.bad_packs[pack_id] = self.problem("pack", pack_id, str(exc))
                if isinstance(exc, IntegrityError):
                    self.damage.packs.add(pack_id)
                continue
            for e in entries.values():
                if listed.get(e.blob_id) != e:
                    self.damage.add_blob(e.blob_id, pack_id)
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
                if not isinstance(exc, StorageError):
                    self.damage.packs.add(pack_id)
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
                    self.damage.add_blob(e.blob_id, pack_id)
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
        if tree_id in self.bad_trees or self.lookup(tree_id) is None:
            return
        try:
            tree = self.repo.read_tree(tree_id)
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
            note(self.bad_blobs[blob_id], path)
        entry = self.lookup(blob_id)
        if entry is not None and entry.pack_id in self.bad_packs \
                and (bad_blob or entry.pack_id not in self.partly_bad):
            note(self.bad_packs[entry.pack_id], path)


def check_snapshot(
    repo: Repository,
    snapshot: Snapshot,
    *,
    read_data: bool = False,
    subset: float | None = None,
    seed: int | None = None,
    progress: ProgressTracker | None = None,
    record_damage: bool = True,
) -> CheckReport:
    """Check one snapshot and only what it references. ``read_data`` reads every blob it
    references; ``subset`` (0-1] reads the blobs of a random share of its packs, drawn with
    ``seed`` (reported in the result; a random one when None). ``packs`` and ``blobs``
    count what the snapshot references; ``packs_selected`` the packs chosen for reading.
    ``record_damage``: write what was found damaged as a damage mark (``core/damage.py``)."""
    progress = progress or NullTracker()
    report = CheckReport(snapshots=1)
    progress.set_phase("index")
    loaded = repo.load_index()
    report.index_files = len(loaded.files)
    checker = _SnapshotChecker(repo, report)
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
    checker.marked_problems()
    if report.problems:
        progress.set_phase("naming damaged files")
        checker.attribute(snapshot.tree, "")
    for index_id, why in loaded.damaged.items():
        if checker.unindexed:  # an unreadable index file may be why a blob is not indexed
            checker.problem("index", index_id, why)
    if record_damage:
        checker.record(f"verify of snapshot {snapshot.id.hex()}")
    return report
