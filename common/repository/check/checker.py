"""Repository check: structure, and optionally the data itself (``read_data``).

Structure: every index file opens; every indexed pack exists and its sealed header lists
the blobs the index says it holds; every snapshot opens and all its trees load; every
blob a snapshot references is indexed in an existing pack. ``read_data`` (all packs, or
a random ``read_data_subset`` fraction) downloads packs, opens their headers and decodes
and re-hashes every blob. The report names every damaged object (pack, blob, index file,
snapshot, tree) together with the snapshot paths that depend on it.

How it runs: worker processes (``pack_verify``) start while the index loads; each pack
read in full is read once (no separate header read) and verified by a worker — packs of
small blobs in a process, others in a thread — while later packs are read. The trees
those workers decode come back as (subtrees, referenced ids), so the tree walk only
follows them; trees of packs not read in full are read by the walk, beside the header
checks. Only when something is damaged does a second walk name the paths.

``check_snapshot`` (in ``snapshot_check``, re-exported here) checks one snapshot.
"""

from __future__ import annotations

import functools
import math
import os
import random
import threading
from collections import deque
from concurrent.futures import BrokenExecutor, Future, ThreadPoolExecutor, wait

from common.errors import IntegrityError, NotFound, StorageError
from common.progress import NullTracker, ProgressTracker
from common.repository.check.pack_verify import PackVerdict, PackVerifier, check_header, verify_pack
from common.repository.check.report import (
    CheckReport,
    Findings,
    Problem,
    note,
    unindexed_message,
)
from common.repository.check.snapshot_check import check_snapshot
from common.repository.core import ids
from common.repository.core.index import ENTRY, pack_entry
from common.repository.core.repository import Repository
from common.repository.core.snapshot import load_snapshot, snapshot_ids
from common.repository.system.malloc import keep_freed_memory

__all__ = ["CheckReport", "Problem", "check_repository", "check_snapshot"]

_PROCESS_MIN_BYTES = 128 << 20  # below this a full read decodes in threads


class _Checker(Findings):
    def __init__(self, repo: Repository, report: CheckReport) -> None:
        super().__init__(repo, report)
        self.clean_trees: set[bytes] = set()  # subtrees already checked and found whole

    def packs(self, stored: list[bytes], chosen: set[bytes], expected: dict[bytes, bytes],
              verifier: PackVerifier | None, walk: _Walk, progress: ProgressTracker) -> None:
        """Check every stored indexed pack: the ``chosen`` ones read whole and every blob
        decoded (by ``verifier``; the trees they hold go to ``walk``), the others by their
        header. Results are recorded in pack order, while later packs are being read."""
        backend, cipher = self.repo.backend, self.repo.cipher
        results: dict[bytes, Future[PackVerdict] | Exception] = {}
        order = deque(stored)

        def record(block: bool) -> None:
            while order and (block or _done(results.get(order[0]))):
                pack_id = order.popleft()
                self._record(pack_id, results.pop(pack_id), pack_id in chosen,
                             expected[pack_id], walk)

        with ThreadPoolExecutor(4, thread_name_prefix="repo-check-header") as headers:
            for pack_id in stored:
                if pack_id not in chosen:
                    f = headers.submit(check_header, backend, cipher, pack_id, expected[pack_id])
                    f.add_done_callback(lambda _: progress.add(0, 1))
                    results[pack_id] = f
            window: deque[Future[PackVerdict]] = deque()
            for pack_id in stored:
                if pack_id not in chosen:
                    continue
                assert verifier is not None
                while len(window) >= verifier.in_flight:
                    wait([window.popleft()])
                record(False)
                try:
                    data = backend.get_bytes(ids.pack_key(pack_id))
                except (IntegrityError, NotFound, StorageError) as exc:
                    results[pack_id] = exc
                    continue
                f = verifier.submit(pack_id, data, expected[pack_id],
                                    len(expected[pack_id]) // ENTRY.size)
                f.add_done_callback(functools.partial(_progress, progress, len(data)))
                results[pack_id] = f
                window.append(f)
            record(True)

    def _record(self, pack_id: bytes, result: Future[PackVerdict] | Exception, full: bool,
                expected: bytes, walk: _Walk) -> None:
        if isinstance(result, Future):
            try:
                verdict = result.result()
            except BrokenExecutor:  # a worker process died: verify this one here
                verdict = _verify_here(self.repo, pack_id, expected)
        else:
            verdict = PackVerdict(error=str(result), transient=isinstance(result, StorageError))
        if verdict.error is not None:
            self.bad_packs[pack_id] = self.problem("pack", pack_id, verdict.error)
            if not verdict.transient:
                self.damage.packs.add(pack_id)
            return
        for blob_id in verdict.unlisted:
            self.damage.add_blob(blob_id, pack_id)
            self.bad_blobs[blob_id] = self.problem(
                "blob", blob_id,
                f"blob {blob_id.hex()} is indexed in pack {pack_id.hex()} whose "
                "header does not list it there")
        if not full:
            return
        self.report.packs_read += 1
        self.report.bytes_read += verdict.size
        self.report.blobs_read += verdict.blobs
        for blob_id, why in verdict.damaged:
            self.bad_blobs[blob_id] = self.problem("blob", blob_id, why)
            self.damage.add_blob(blob_id, pack_id)
        if verdict.damaged:
            self.bad_packs[pack_id] = self.problem(
                "pack", pack_id,
                f"pack {pack_id.hex()} holds {len(verdict.damaged)} damaged blob(s)")
        for tree_id, info in verdict.trees.items():
            walk.learn(tree_id, info)

    def take_walk(self, walk: _Walk) -> None:
        """Add what the tree walk found, unless the pack checks named it already (as when
        the walk runs after them): a damaged blob, or a tree in a damaged pack."""
        for p in walk.snapshot_problems:
            self.report.problems.append(p)
        for object_id, p in walk.found.items():
            if object_id in self.bad_blobs or self._pack_of(object_id) in self.bad_packs:
                continue
            self.report.problems.append(p)
            self.bad_blobs[object_id] = p

    def _pack_of(self, blob_id: bytes) -> bytes | None:
        """The pack of a blob's indexed copy, else of its copy damage marks left out."""
        pack_id = self.repo.index.pack_of(blob_id)
        if pack_id is None and blob_id in self.repo.quarantined:
            return self.repo.quarantined[blob_id].pack_id
        return pack_id

    def _blob_problem(self, blob_id: bytes) -> Problem | None:
        if blob_id in self.bad_blobs:
            return self.bad_blobs[blob_id]
        pack_id = self._pack_of(blob_id)
        if pack_id is None:
            self.bad_blobs[blob_id] = self.problem(
                "blob", blob_id, unindexed_message(self.repo, blob_id))
            return self.bad_blobs[blob_id]
        return self.bad_packs.get(pack_id)

    def tree(self, tree_id: bytes, path: str, sid: bytes) -> bool:
        """Name the paths below a tree that depend on a damaged object; True when all of
        it is whole (such a subtree, shared by several snapshots, is not walked again)."""
        if tree_id in self.clean_trees:
            return True
        bad = self._blob_problem(tree_id)
        if bad is not None:
            note(bad, path + "/ (whole directory)")
            return False
        try:
            tree = self.repo.read_tree(tree_id)
        except (IntegrityError, NotFound, StorageError) as exc:
            p = self.bad_blobs[tree_id] = self.problem("tree", tree_id, str(exc))
            note(p, path + "/ (whole directory)")
            return False
        whole = True
        for node in tree.nodes:
            child = f"{path}/{node.name}"
            if node.type == "dir" and node.subtree is not None:
                whole = self.tree(node.subtree, child, sid) and whole
                continue
            for chunk in node.content:
                bad = self._blob_problem(chunk)
                if bad is not None:
                    whole = False
                    note(bad, child)
                    pack_id = self._pack_of(chunk)
                    if pack_id is not None and chunk in self.bad_blobs \
                            and pack_id in self.bad_packs:
                        note(self.bad_packs[pack_id], child)
        if whole:
            self.clean_trees.add(tree_id)
        return whole


class _Walk(threading.Thread):
    """Every snapshot opens, every tree it reaches loads, every blob they reference is
    indexed — each tree read once (or taken from the pack checks, which decode trees
    anyway), beside or after the pack checks. Paths are named afterwards, and only when
    something is damaged (``_Checker.tree``)."""

    def __init__(self, repo: Repository) -> None:
        super().__init__(name="repo-check-walk", daemon=True)
        self.repo, self.index = repo, repo.index
        self.snapshots = 0
        self.roots: list[tuple[bytes, bytes]] = []  # (snapshot id, its tree)
        self.snapshot_problems: list[Problem] = []
        self.found: dict[bytes, Problem] = {}  # unindexed blobs, unreadable trees
        #: trees the pack checks decoded: (subtrees, unindexed blobs) or why unreadable
        self.known: dict[bytes, tuple[list[bytes], list[bytes]] | str] = {}
        self.error: BaseException | None = None

    def learn(self, tree_id: bytes, info: tuple[list[bytes], bytes] | str) -> None:
        """Take a tree decoded elsewhere: its subtrees and referenced blobs, or an error."""
        if isinstance(info, str):
            self.known[tree_id] = info
            return
        subtrees, chunks = info
        index = self.index
        missing = [c for c in (chunks[i : i + 32] for i in range(0, len(chunks), 32))
                   if c not in index]
        self.known[tree_id] = (subtrees, missing)

    def run(self) -> None:
        try:
            seen: set[bytes] = set()
            for sid in snapshot_ids(self.repo):
                self.snapshots += 1
                try:
                    snap = load_snapshot(self.repo, sid)
                except (IntegrityError, NotFound) as exc:
                    self.snapshot_problems.append(Problem("snapshot", sid.hex(), str(exc)))
                    continue
                self.roots.append((sid, snap.tree))
                self._walk(snap.tree, seen)
        except BaseException as exc:  # noqa: BLE001 - re-raised by the checking thread
            self.error = exc

    def _walk(self, root: bytes, seen: set[bytes]) -> None:
        index, found = self.index, self.found
        stack = [root]
        while stack:
            tree_id = stack.pop()
            if tree_id in seen:
                continue
            seen.add(tree_id)
            if tree_id not in index:
                self._unindexed(tree_id)
                continue
            info = self.known.pop(tree_id, None)
            if isinstance(info, str):
                found[tree_id] = Problem("tree", tree_id.hex(), info)
                continue
            if info is not None:
                stack.extend(info[0])
                for chunk in info[1]:
                    self._unindexed(chunk)
                continue
            try:
                tree = self.repo.read_tree(tree_id)
            except (IntegrityError, NotFound, StorageError) as exc:
                found[tree_id] = Problem("tree", tree_id.hex(), str(exc))
                continue
            for node in tree.nodes:
                if node.type == "dir" and node.subtree is not None:
                    stack.append(node.subtree)
                    continue
                for chunk in node.content:
                    if chunk not in index and chunk not in found:
                        self._unindexed(chunk)

    def _unindexed(self, blob_id: bytes) -> None:
        self.found.setdefault(blob_id, Problem(
            "blob", blob_id.hex(), unindexed_message(self.repo, blob_id)))


def _verify_here(repo: Repository, pack_id: bytes, expected: bytes) -> PackVerdict:
    try:
        data = repo.backend.get_bytes(ids.pack_key(pack_id))
    except (IntegrityError, NotFound) as exc:
        return PackVerdict(error=str(exc))
    except StorageError as exc:
        return PackVerdict(error=str(exc), transient=True)
    return verify_pack(repo.codec, repo.cipher, pack_id, data, expected)


def _progress(progress: ProgressTracker, nbytes: int, _: object) -> None:
    progress.add(nbytes, 1)


def _done(result: Future[PackVerdict] | Exception | None) -> bool:
    return result is not None and (not isinstance(result, Future) or result.done())


def _processes(processes: int | None, total_bytes: int) -> int:
    """Worker processes for a full read: given, or 2-4 when there is enough to read and
    more than one CPU (starting one costs ~0.3 s of CPU, overlapped with the index load)."""
    if processes is not None:
        return processes
    cpus = os.cpu_count() or 1
    return min(cpus, 4) if cpus > 1 and total_bytes >= _PROCESS_MIN_BYTES else 0


def check_repository(
    repo: Repository,
    *,
    read_data: bool = False,
    read_data_subset: float | None = None,
    progress: ProgressTracker | None = None,
    processes: int | None = None,
    record_damage: bool = True,
) -> CheckReport:
    """Check the repository; ``read_data`` reads every pack, ``read_data_subset`` (0-1]
    a random fraction of them. Paths in problems are ``<snapshot id prefix>:/a/b``.
    ``record_damage``: write what was found damaged as a damage mark (``core/damage.py``),
    so later backups store those blobs again and ``repair`` knows what to rewrite.
    ``processes``: worker processes decoding the packs read (None: chosen by size)."""
    progress = progress or NullTracker()
    keep_freed_memory()
    report = CheckReport()
    checker = _Checker(repo, report)
    progress.set_phase("index")
    present = {ids.id_from_key(o.key): o.size for o in repo.backend.list(ids.PACKS_PREFIX)}
    verifier = None
    if read_data or read_data_subset:  # the processes start while the index loads
        verifier = PackVerifier(repo.codec, repo.cipher, repo.key, repo.config.encrypted,
                                _processes(processes, sum(present.values())))
    try:
        loaded = repo.load_index()
        report.index_files = len(loaded.files)
        for index_id, why in loaded.damaged.items():
            checker.problem("index", index_id, why)
        for mark_id, why in loaded.damaged_marks.items():  # backups may reuse what it named
            checker.problem("index", mark_id, f"{why}; the damage it recorded is no longer "
                            "applied (delete it and run check --read-data again)")
        index = loaded.index
        report.blobs = len(index)
        expected = index.pack_records()
        for e in loaded.quarantined:  # damaged copies are read again: still damaged?
            expected[e.pack_id] = expected.get(e.pack_id, b"") + pack_entry(e)
        report.packs = len(present)
        report.unreferenced_packs = len(present.keys() - expected.keys())
        for pack_id in sorted(expected.keys() - present.keys()):
            checker.bad_packs[pack_id] = checker.problem(
                "pack", pack_id, f"pack {pack_id.hex()} is missing (indexed, not stored)")
            checker.damage.packs.add(pack_id)
        stored = sorted(expected.keys() & present.keys())
        chosen = stored if read_data or read_data_subset else []
        if not read_data and read_data_subset is not None:
            n = max(1, math.ceil(len(chosen) * min(max(read_data_subset, 0.0), 1.0)))
            chosen = sorted(random.sample(chosen, min(n, len(chosen))))
        walk = _Walk(repo)
        if len(chosen) < len(stored):  # some trees must be read: walk beside the packs
            walk.start()
        progress.set_phase("read-data" if chosen else "structure", files_total=len(stored))
        checker.packs(stored, set(chosen), expected, verifier, walk, progress)
        del expected
    finally:
        if verifier is not None:
            verifier.close()
    if not walk.is_alive() and walk.ident is None:  # every tree was decoded already
        walk.start()
    if walk.is_alive():
        progress.set_phase("snapshots")
    walk.join()
    if walk.error is not None:
        raise walk.error
    report.snapshots = walk.snapshots
    checker.take_walk(walk)
    if report.problems:
        progress.set_phase("naming damaged files")
        for sid, root in walk.roots:
            checker.tree(root, f"{sid.hex()[:8]}:", sid)
    if record_damage:
        checker.record("repository check")
    return report
