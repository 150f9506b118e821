"""Reading a snapshot's trees for a restore: a small cache, the selection walk, a scan.

``Trees`` reads and verifies tree blobs; what a pre-scan read is kept (as stored, up to
a byte budget) for the restore's walk, so a tree is fetched from storage once (one GET
per directory on S3). ``fetch`` reads many trees at once (a sync's pre-pass, before any
write thread runs): the trees of one pack in few range reads (neighbours read together,
gaps of up to ``SPAN_GAP`` read and dropped) and kept verified, as plaintext, within the
same budget, so the walk that follows neither reads nor decodes them again. ``walk``
yields the selected entries of a snapshot in tree order (pre-order: a directory before
its content; every name checked). ``has_devices`` tells whether any tree of a snapshot
holds a char or block device node without decoding its nodes: tree plaintext is
canonical JSON in which a quote inside a string is always escaped, so ``"type":"char"``
and ``"subtree":"<hex>"`` can only be real fields.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from common.errors import IntegrityError, NotFound, Refused
from common.repository.core import ids
from common.repository.core.ids import BlobType
from common.repository.core.index import IndexEntry
from common.repository.core.pack import read_range
from common.repository.core.repository import Repository
from common.repository.core.tree import Node, Tree

_HINT = "`volkeeper repair TARGET --read-data --dry-run` shows what is damaged"
#: ``fetch``: two trees of a pack at most this far apart are read in one range read
SPAN_GAP = 256 << 10
#: ``fetch``: the most one range read spans
SPAN_MAX = 16 << 20
_SUBTREE = re.compile(rb'"subtree":"([0-9a-f]{64})"')
DEVICES = (b'"type":"char"', b'"type":"block"')



def narrow(selectors: list[list[str]], sel_ids: list[int], node: Node
           ) -> tuple[list[list[str]], list[int], list[int]] | None:
    """A selective walk's step into ``node`` (``selectors``: path components, none of
    them empty, numbered by ``sel_ids``): the selectors' remaining components below it,
    their numbers, and the numbers of those that select it whole; None when it is not
    selected (no selector names it, or only ones that go on below a non-directory)."""
    pairs = [(s[1:], i) for s, i in zip(selectors, sel_ids, strict=True)
             if s[0] == node.name]
    if not pairs:
        return None
    whole = [i for p, i in pairs if not p]
    if not whole and node.type != "dir":
        return None
    return [p[0] for p in pairs], [p[1] for p in pairs], whole

class Trees:
    """Verified trees of one repository; ``keep`` caches up to ``budget`` stored bytes
    (``fetch``: plaintext, within the same budget)."""

    def __init__(self, repo: Repository, budget: int) -> None:
        self.repo = repo
        self.index = repo.index
        self.budget = budget
        self._kept: dict[bytes, bytes] = {}
        self._plain: dict[bytes, bytes] = {}  # verified plaintext (``fetch``)
        self._kept_bytes = 0

    def plain(self, tree_id: bytes, keep: bool = False) -> bytes:
        """The verified plaintext of a tree; a cached copy is used (and dropped, unless
        ``keep``)."""
        plain = self._plain.get(tree_id)
        if plain is not None:
            if not keep:
                del self._plain[tree_id]
                self._kept_bytes -= len(plain)
            return plain
        entry = self.index.lookup(tree_id)
        if entry is None or entry.blob_type != BlobType.TREE:
            raise IntegrityError(self.repo.unindexed(tree_id, "tree blob"), _HINT)
        stored = self._kept.pop(tree_id, None)
        if stored is not None:
            self._kept_bytes -= len(stored)
        else:
            try:
                stored = read_range(self.repo.backend, ids.pack_key(entry.pack_id),
                                    entry.offset, entry.length)
            except NotFound:
                raise IntegrityError(f"pack {entry.pack_id.hex()} holding tree blob "
                                     f"{tree_id.hex()} is missing", _HINT) from None
        plain = self.repo.codec.decode(BlobType.TREE, tree_id, stored, entry.raw_length)
        if keep and self._kept_bytes + len(stored) <= self.budget:
            self._kept[tree_id] = stored
            self._kept_bytes += len(stored)
        return plain

    def fetch(self, tree_ids: Iterable[bytes]) -> None:
        """Read and verify the trees ``tree_ids`` not kept yet, and keep their plaintext
        (as far as the budget goes, in the order given) for ``plain``. The trees of one
        pack are read together (runs of neighbours: ``SPAN_GAP``, ``SPAN_MAX``). Nothing
        is raised: a tree that is not indexed, not found or damaged is not kept (``plain``
        then reads it and says what is wrong)."""
        by_pack: dict[bytes, list[tuple[bytes, IndexEntry]]] = {}
        room = self.budget - self._kept_bytes
        for tree_id in dict.fromkeys(tree_ids):
            entry = self.index.lookup(tree_id)
            if (tree_id in self._plain or tree_id in self._kept or entry is None
                    or entry.blob_type != BlobType.TREE):
                continue
            room -= entry.raw_length
            if room < 0:
                break
            by_pack.setdefault(entry.pack_id, []).append((tree_id, entry))
        for pack_id, wanted in by_pack.items():
            wanted.sort(key=lambda w: w[1].offset)
            for run in _runs(wanted):
                start = run[0][1].offset
                try:
                    data = read_range(self.repo.backend, ids.pack_key(pack_id), start,
                                      run[-1][1].offset + run[-1][1].length - start)
                except (IntegrityError, NotFound):
                    continue
                view = memoryview(data)
                for tree_id, e in run:
                    try:
                        plain = self.repo.codec.decode(
                            BlobType.TREE, tree_id,
                            view[e.offset - start:e.offset - start + e.length], e.raw_length)
                    except IntegrityError:
                        continue
                    if self._kept_bytes + len(plain) <= self.budget:
                        self._plain[tree_id] = plain
                        self._kept_bytes += len(plain)

    def get(self, tree_id: bytes, keep: bool = False) -> Tree:
        """The decoded tree (hostile names refused)."""
        return Tree.decode(self.plain(tree_id, keep), f"tree {tree_id.hex()}")

    def walk(self, tree_id: bytes, selectors: list[list[str]], matched: set[int],
             keep: bool = False) -> Iterator[tuple[str, Node]]:
        """The selected entries under ``tree_id`` as (relative path, node), in tree order.
        ``selectors`` are path components ([] = everything); the numbers of the
        selectors that matched a whole entry are added to ``matched``."""
        return self._walk(tree_id, "", selectors, list(range(len(selectors))), matched, keep)

    def _walk(self, tree_id: bytes, rel: str, selectors: list[list[str]], sel_ids: list[int],
              matched: set[int], keep: bool) -> Iterator[tuple[str, Node]]:
        everything = any(not s for s in selectors)
        for node in self.get(tree_id, keep).nodes:
            child_rel = f"{rel}/{node.name}" if rel else node.name
            sub: list[list[str]]
            if everything:
                sub, sub_ids = [[]], [-1]
            else:
                picked = narrow(selectors, sel_ids, node)
                if picked is None:
                    continue
                sub, sub_ids, whole = picked
                matched.update(whole)
            yield child_rel, node
            if node.type == "dir" and node.subtree is not None:
                yield from self._walk(node.subtree, child_rel, sub, sub_ids, matched, keep)

    def scan(self, tree_id: bytes, selectors: list[list[str]], devices: bool
             ) -> tuple[int, int, set[int]]:
        """Walk the selection before anything is written (its trees are kept for the
        restore's walk): Refused for a device node unless ``devices``; returns the
        (files, bytes) to restore and the numbers of the selectors that matched."""
        matched: set[int] = set()
        files = nbytes = 0
        for rel, node in self.walk(tree_id, selectors, matched, keep=True):
            if node.type in ("file", "hardlink"):
                files += 1
                nbytes += node.size
            elif node.type in ("char", "block") and not devices:
                raise refused(rel, node)
        return files, nbytes, matched

    def has_devices(self, tree_id: bytes) -> bool:
        """Whether any tree under ``tree_id`` lists a char or block device (each distinct
        tree read once, and kept for the walk that follows)."""
        todo, seen = [tree_id], {tree_id}
        while todo:
            plain = self.plain(todo.pop(), keep=True)
            if any(marker in plain for marker in DEVICES):
                return True
            for m in _SUBTREE.finditer(plain):
                sub = bytes.fromhex(m.group(1).decode())
                if sub not in seen:
                    seen.add(sub)
                    todo.append(sub)
        return False


def _runs(wanted: list[tuple[bytes, IndexEntry]]) -> list[list[tuple[bytes, IndexEntry]]]:
    """The blobs of one pack (by offset) in runs that one range read each covers."""
    runs: list[list[tuple[bytes, IndexEntry]]] = []
    for w in wanted:
        e = w[1]
        if runs:
            first, last = runs[-1][0][1], runs[-1][-1][1]
            if (e.offset - (last.offset + last.length) <= SPAN_GAP
                    and e.offset + e.length - first.offset <= SPAN_MAX):
                runs[-1].append(w)
                continue
        runs.append([w])
    return runs


def refused(rel: str, node: Node) -> Refused:
    """The error refusing to restore the device node ``node`` at ``rel``."""
    return Refused(f"refused {rel!r}: a {node.type} device node "
                   f"({':'.join(map(str, node.rdev or (0, 0)))}); restores do not "
                   "create device nodes", "nothing was kept; if the device nodes are "
                   "genuine, set VOLKEEPER_RESTORE_DEVICE_NODES=true on the workers")
