"""Which chunks a changed file of a sync restore (``sync``) already holds, known without
reading it: from a record of the destination and a *base* snapshot.

A sync rewrites a file whose size or mtime differ from the snapshot's; to keep what the
old file already holds it reads the whole old file and hashes every planned chunk
(``sync_fs.match_chunks``). A migration knows more: its record of the destination
(``common.engine.tree_compare.Seen``: path → inode, size, mtime, ctime and the digest of
the chunk ids the file was compared with or written from) and the snapshot the
destination was last restored or synced to (the final backup's parent). When a file's
stat still equals its record entry (inode, size, mtime_ns, ctime_ns: the ctime nobody can
set back, so nothing wrote into it since) and the base snapshot's node at the same path
has the recorded chunk ids (``content_digest``), no holes and the file's size, the file
holds exactly the base's chunks one after the other: a chunk of the new snapshot is kept
where the base has the same chunk id at the same offsets, rewritten where the base has
another chunk there, and only a chunk whose offsets no base chunk has exactly (where the
chunk boundaries moved, around a change) is read and hashed. In any other case (no record
entry, a stat that moved, another digest, a sparse base file, a hardlink, a base tree that
cannot be read) the sync hashes the old file as before. Two cases need no base: a file
with the recorded chunk ids (same size, no holes: only its metadata changed) holds every
chunk; a one-chunk file of the recorded size with other chunk ids does not hold it.

*Trusting the base* (``sync_snapshot(trust_base=True)``, a migration's apply only): the
caller vouches that the destination holds exactly the base snapshot — it was restored or
synced to it without a difference or a warning, and nothing has written into it since
(a migration's destination: new, used by no container until the migration ends; the
verify that follows walks every entry and compares it with the snapshot, so a write the
trust missed fails the migration, which rolls back). The walk (``syncer``) then pairs
each directory it enters with the base's directory at the same path (``dir``): an entry
whose node is the base's node — the same canonical JSON: type, content, metadata, xattrs
and, for a directory, the subtree id, which covers everything below it — is kept without
a look (no ``stat``, no ``listxattr``; a directory not entered); a directory whose own
metadata changed but whose subtree is the base's gets that metadata fixed and is not
entered; everything else is synced as without the trust. Entries are deleted as always
(the names a directory lists that the snapshot lacks). Device nodes are looked for
(``devices=False``) only in the trees the walk enters (``prefetch``: the pass that reads
those trees and the base's at the same paths before anything is written, so the walk
neither reads nor decodes a tree while the write threads run): the others are already
there. Hardlinks: a link target in a skipped directory is a directory of the
snapshot (``Syncer.in_dirs``); the files of skipped directories do not claim their inodes
(``FileSyncer.sync_file``), so a walked regular file that shares its inode with another
path and was not a regular file (a first path) in the base is rewritten — it was a link
that the snapshot now separates. (A node repeats its inode's ctime, so a link can only
stay unchanged while its first path changes in a snapshot taken while the source ran:
the file is then rewritten and the verify names the stale link.)
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from common.errors import IntegrityError, NotFound
from common.repository.core.index import Index, IndexEntry
from common.repository.core.tree import TREE_VERSION, Node, content_digest
from common.repository.restore.plan import Writes, chunk_writes
from common.repository.restore.trees import DEVICES, Trees

#: a record of the destination: path → (inode, size, mtime_ns, ctime_ns, chunk digest)
Record = Mapping[str, tuple[int, int, int, int, str]]


class BaseChunks:
    """The kept chunks of a file known from ``record`` and the base tree ``root``."""

    def __init__(self, trees: Trees, index: Index, record: Record,
                 root: bytes | None) -> None:
        self.trees = trees
        self.index = index
        self.record = record
        self.root = root
        self.dirs: dict[str, dict[str, dict[str, Any]] | None] = {}

    def plain(self, tree_id: bytes) -> bytes | None:
        """A base tree's plaintext (None: it cannot be read)."""
        try:
            return self.trees.plain(tree_id)
        except (IntegrityError, NotFound):
            return None

    def seed(self, rel: str, plain: bytes) -> dict[str, dict[str, Any]] | None:
        """The base's directory ``rel`` from its tree's plaintext (as ``dir`` has it)."""
        if rel not in self.dirs:
            self.dirs[rel] = _by_name(plain)
        return self.dirs[rel]

    def prefetch(self, tree_id: bytes, devices: bool) -> bool:
        """Read the trees a trusting walk from ``tree_id`` enters — not a subtree of the
        base at the same path, see the module's docstring — and the base's trees at the
        same paths, a level at a time (``Trees.fetch``: those of a pack read together),
        and keep them for the walk (within the cache's budget); the base's directories
        that have subdirectories are parsed (``dir``). Returns whether one of the walk's
        trees lists a char or block device (looked for only when ``devices``: then the
        pass stops at the first)."""
        level = [] if tree_id == self.root else [("", tree_id, self.root)]
        while level:
            self.trees.fetch([t for _r, t, _b in level] + [b for _r, _t, b in level if b])
            below: list[tuple[str, bytes, bytes | None]] = []
            for rel, tid, held in level:
                plain = self.trees.plain(tid, keep=True)
                if devices and any(marker in plain for marker in DEVICES):
                    return True
                if b'"subtree"' not in plain:
                    continue
                try:
                    subs = [(d["name"], bytes.fromhex(d["subtree"]))
                            for d in json.loads(plain)["nodes"]
                            if d.get("type") == "dir" and "subtree" in d]
                except (KeyError, TypeError, ValueError, AttributeError):
                    # malformed (the walk refuses it)
                    if devices and self.trees.has_devices(tid):
                        return True
                    continue
                had: dict[str, dict[str, Any]] = {}
                if held is not None:
                    if rel not in self.dirs:  # (as ``dir`` finds it)
                        base = self.plain_kept(held)
                        self.dirs[rel] = None if base is None else _by_name(base)
                    had = self.dirs[rel] or {}
                for name, sub in subs:
                    b = had.get(name)
                    sub_held = hex_id(b.get("subtree")) if b is not None and b.get(
                        "type") == "dir" else None
                    if sub_held != sub:
                        below.append((f"{rel}/{name}" if rel else name, sub, sub_held))
            level = below
        return False

    def plain_kept(self, tree_id: bytes) -> bytes | None:
        """``plain``, the tree kept for the walk."""
        try:
            return self.trees.plain(tree_id, keep=True)
        except (IntegrityError, NotFound):
            return None

    def matches(self, rel: str, st: os.stat_result, node: Node,
                planned: list[tuple[IndexEntry, Writes]]) -> list[bool | None] | None:
        """For each planned chunk of the snapshot's file ``rel``: does the destination's
        file (``st``) hold it at those offsets — True, False, or None where the base has
        no chunk at exactly those offsets (then that chunk is read and hashed) — or None
        when the record does not vouch for the file (see the module's docstring: then the
        whole file is read). A chunk id is a keyed hash of the chunk's bytes: the base's
        chunk at the same offsets with another id holds other bytes."""
        seen = self.record.get(rel)
        if (seen is None or st.st_nlink != 1
                or tuple(seen[:4]) != (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)):
            return None
        if not node.holes and node.size == st.st_size:
            if content_digest(node.content) == seen[4]:
                return [True] * len(planned)  # the very chunks: only its metadata moved
            if len(planned) == 1:
                return [False]  # one chunk, other content (a wrong False only refetches)
        base = self.node(rel)
        if (base is None or base.type != "file" or base.holes or base.size != st.st_size
                or content_digest(base.content) != seen[4]):
            return None
        had, missing = chunk_writes(self.index, base)
        if missing is not None:
            return None
        at = {tuple(ws): e.blob_id for e, ws in had}
        out: list[bool | None] = []
        for e, ws in planned:
            held = at.get(tuple(ws))
            out.append(None if held is None else held == e.blob_id)
        return out

    def node(self, rel: str) -> Node | None:
        """The base snapshot's node at ``rel`` (None: none, or its tree unreadable)."""
        head, _, name = rel.rpartition("/")
        nodes = self.dir(head)
        d = None if nodes is None else nodes.get(name)
        if d is None:
            return None
        try:
            return Node.from_dict(d)
        except (KeyError, TypeError, ValueError, IntegrityError):
            return None

    def dir(self, rel: str) -> dict[str, dict[str, Any]] | None:
        """The base's directory ``rel``: its nodes, not decoded, by name (None: none, or
        its tree unreadable or malformed)."""
        if rel in self.dirs:
            return self.dirs[rel]
        tree_id = self.root
        if rel:
            node = self.node(rel)
            tree_id = node.subtree if node is not None and node.type == "dir" else None
        plain = None if tree_id is None else self.plain(tree_id)
        nodes = None if plain is None else _by_name(plain)
        self.dirs[rel] = nodes
        return nodes


def _by_name(plain: bytes) -> dict[str, dict[str, Any]] | None:
    """A tree's nodes, not decoded, by name (None: malformed, or a name twice)."""
    try:
        raw = json.loads(plain)["nodes"]
        nodes = {d["name"]: d for d in raw}
    except (KeyError, TypeError, ValueError):
        return None
    return nodes if len(nodes) == len(raw) else None


_HEAD, _TAIL = b'{"nodes":[{', f'}}],"v":{TREE_VERSION}}}'.encode()


def held_names(plain: bytes, base: bytes, nodes: list[dict[str, Any]]) -> set[str]:
    """The names of the files and directories of the tree ``plain`` (its nodes decoded:
    ``nodes``) that the base's tree ``base`` (the same directory) lists with exactly the
    same node — without decoding ``base``: both are canonical JSON (``core.tree``), so a
    node's text is its inner text between structural ``},{`` separators. Where a name or
    another string holds ``},{`` too, ``plain`` splits into more pieces than it has
    nodes, and nothing is matched; in ``base`` such a piece cannot equal a whole node's
    text: a piece starting inside a string starts with the string's closing quote and a
    ``,:}]`` (a node's text with a quote and a key), and one ending inside a string would
    parse, from its structural start, with that string still open (a node's text closes
    all of its). Empty or not canonical: nothing."""
    if not (nodes and plain.startswith(_HEAD) and plain.endswith(_TAIL)
            and base.startswith(_HEAD) and base.endswith(_TAIL)):
        return set()
    pieces = plain[len(_HEAD):-len(_TAIL)].split(b"},{")
    if len(pieces) != len(nodes):
        return set()
    had = set(base[len(_HEAD):-len(_TAIL)].split(b"},{"))
    return {d["name"] for d, piece in zip(nodes, pieces, strict=True)
            if piece in had and d.get("type") in ("file", "dir")}


def hex_id(text: object) -> bytes | None:
    """The id the hex string ``text`` names (None: not one)."""
    try:
        return bytes.fromhex(text) if isinstance(text, str) else None
    except ValueError:
        return None

